"""PyTorch frontend: ``nn.Module`` / ``torch.export`` program -> :class:`mcutrain.ir.Graph`.

Entry points: :func:`load_module` (a live module and a batch-1 example input), :func:`load_exported`
(a ``.pt2`` file written by ``torch.export.save``) and :func:`load_factory` (``"package.module:factory"``,
a callable without arguments that returns an ``nn.Module``). All three fold batch norms by default
(:func:`mcutrain.passes.fold_batchnorm`); pass ``fold_bn=False`` for the graph exactly as imported.

The module is exported with ``torch.export.export`` in eval mode. The program is functionalized
(``run_decompositions({})``) only when it holds in-place ops, and fully decomposed only as a second
attempt when an op has no handler. :class:`Converter` walks the FX graph; the per-op handlers live in
:mod:`mcutrain.frontends.torch_ops`.
"""

from __future__ import annotations

import functools
import importlib
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from mcutrain.core import ir
from mcutrain.core.passes import fold_batchnorm, remove_identities
from mcutrain.frontends import FrontendError
from mcutrain.frontends.torch_rules import HANDLERS, Act, UnsupportedOpError, alternative, first_tensor

__all__ = ["Converter", "load_exported", "load_factory", "load_module", "program_to_graph"]

_EXPORT_HINT = (
    "hint: torch.export traces forward() once with the example input; Python control flow on tensor "
    "values (if x.sum() > 0, .item(), loops over tensor data) is not allowed. Make forward() static "
    "(torch.where instead of if, fixed shapes) and check that it runs on the example input."
)


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------


def load_module(
    module: torch.nn.Module, example_input: torch.Tensor, name: str | None = None, fold_bn: bool = True
) -> ir.Graph:
    """Export ``module`` (in eval mode; its training flag is restored afterwards) on ``example_input``
    of shape ``(1, C, H, W)`` or ``(1, F)`` and convert it. Graph shapes are per sample."""
    if not isinstance(module, torch.nn.Module):
        raise FrontendError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2 or example_input.shape[0] != 1:
        got = (
            tuple(example_input.shape)
            if isinstance(example_input, torch.Tensor)
            else type(example_input).__name__
        )
        raise FrontendError(
            "the example input must be a batched tensor with batch size 1, e.g. torch.randn(1, C, H, W); "
            f"got {got}"
        )
    ep = export_module(module, example_input)
    return _finish(program_to_graph(ep, name or type(module).__name__), fold_bn)


def load_exported(path: str | Path, name: str | None = None, fold_bn: bool = True) -> ir.Graph:
    """Import a ``.pt2`` file saved by ``torch.export.save`` from a batch-1 export of an eval-mode model."""
    p = Path(path)
    if not p.is_file():
        raise FrontendError(f"no such model file: {p}")
    try:
        ep = torch.export.load(p)
    except Exception as e:
        raise FrontendError(
            f"{p} is not a readable torch.export program (expected a .pt2 written by torch.export.save): "
            f"{_first_line(e)}"
        ) from None
    return _finish(program_to_graph(ep, name or p.stem), fold_bn)


def load_factory(
    spec: str, input_shape: Sequence[int] | None = None, name: str | None = None, fold_bn: bool = True
) -> ir.Graph:
    """Import ``"package.module:factory"``. The per-sample input shape is ``input_shape`` or else the
    ``example_input_shape`` attribute of the returned module (e.g. ``(3, 32, 32)``, no batch axis)."""
    model = call_factory(spec)
    shape = input_shape if input_shape is not None else getattr(model, "example_input_shape", None)
    if shape is None:
        raise FrontendError(
            f"{spec}: the per-sample input shape is unknown; pass input_shape (e.g. (3, 32, 32)) or set "
            "`example_input_shape` on the module the factory returns"
        )
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        dims = ()
    if not dims or min(dims) <= 0:
        raise FrontendError(f"{spec}: invalid per-sample input shape {shape!r}; expected e.g. (3, 32, 32)")
    example = torch.randn((1, *dims), generator=torch.Generator().manual_seed(0))
    return load_module(model, example, name=name or spec.rpartition(":")[2].split(".")[-1], fold_bn=fold_bn)


def call_factory(spec: str) -> torch.nn.Module:
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise FrontendError(f"bad model spec {spec!r}: expected 'package.module:factory'")
    try:
        mod = importlib.import_module(module_name)
    except Exception as e:
        raise FrontendError(f"cannot import {module_name!r} (from {spec!r}): {_first_line(e)}") from None
    try:
        factory = functools.reduce(getattr, attr.split("."), mod)
    except AttributeError:
        raise FrontendError(f"module {module_name!r} has no factory {attr!r} (from {spec!r})") from None
    if not callable(factory):
        raise FrontendError(
            f"{spec!r} is not callable; the factory must take no arguments and return an nn.Module"
        )
    try:
        model = factory()
    except Exception as e:
        raise FrontendError(f"factory {spec!r} raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _finish(graph: ir.Graph, fold_bn: bool) -> ir.Graph:
    graph = remove_identities(graph)
    return fold_batchnorm(graph) if fold_bn else graph


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


# ---------------------------------------------------------------------------------------------------
# Export and program preparation
# ---------------------------------------------------------------------------------------------------


def export_module(module: torch.nn.Module, example: torch.Tensor) -> ExportedProgram:
    was_training = module.training
    module.eval()
    try:
        return torch.export.export(module, (example,))
    except Exception as e:
        raise FrontendError(
            f"torch.export failed for {type(module).__name__}: {_first_line(e)}\n{_EXPORT_HINT}"
        ) from e
    finally:
        module.train(was_training)


def program_to_graph(ep: ExportedProgram, name: str) -> ir.Graph:
    """Convert an exported program (unfolded). Functionalizes first if the program mutates tensors;
    if an op has no handler, retries once on the fully decomposed program before reporting it."""
    if any(_is_mutating(n) for n in ep.graph.nodes):
        ep = _decompose(ep, {})
    try:
        return Converter(ep, name).run()
    except UnsupportedOpError as first:
        try:
            return Converter(_decompose(ep, None), name).run()
        except FrontendError:
            raise first from None


def _is_mutating(node: fx.Node) -> bool:
    return isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable


def _decompose(ep: ExportedProgram, table: dict[Any, Any] | None) -> ExportedProgram:
    try:
        return ep.run_decompositions(table) if table is not None else ep.run_decompositions()
    except Exception as e:
        raise FrontendError(f"torch.export could not decompose the program: {_first_line(e)}") from e


# ---------------------------------------------------------------------------------------------------
# FX -> IR
# ---------------------------------------------------------------------------------------------------


def op_name(node: fx.Node) -> str:
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        return f"aten.{t.overloadpacket.__name__}.{t._overloadname}"
    return getattr(t, "__name__", str(t))


def module_path(node: fx.Node) -> tuple[str, str]:
    """(qualified path, type name) of the innermost module the node came from."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, typ = list(stack.values())[-1]
    if not isinstance(typ, str):
        typ = f"{typ.__module__}.{typ.__qualname__}"
    return str(path), typ


class Converter:
    """One conversion of one exported program; :meth:`run` returns the graph (batch norms unfolded).

    Values of FX nodes: :class:`Act` (IR tensors), constant tensors (parameters, buffers and anything
    computed from them alone, evaluated eagerly), tuples of those for multi-output ops.
    """

    def __init__(self, ep: ExportedProgram, name: str) -> None:
        self.ep = ep
        self.fx = ep.graph
        self.b = ir.GraphBuilder(name)
        self.env: dict[fx.Node, Any] = {}
        self.shapes: dict[str, ir.Shape] = {}
        self.alias: dict[fx.Node, fx.Node] = {}  # node -> earlier node it was fused into
        self.batch: Any = 1

    def run(self) -> ir.Graph:
        self._placeholders()
        self._fold_constants()
        live = self._live_nodes()
        for node in self.fx.nodes:
            if node in live and node not in self.env:
                if node.op != "call_function":
                    raise FrontendError(f"unsupported FX node {node.name!r} ({node.op} {node.target})")
                self.env[node] = self._convert(node)
        return self.b.build(self._outputs())

    # -- inputs, constants, outputs -----------------------------------------------------------------

    def _placeholders(self) -> None:
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs if hasattr(s.arg, "name")}
        for node in self.fx.nodes:
            if node.op != "placeholder":
                continue
            spec = specs[node.name]
            if spec.kind is InputKind.USER_INPUT:
                self.env[node] = self._user_input(node)
            elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                t = self.ep.state_dict.get(spec.target)
                self.env[node] = self.ep.constants[spec.target] if t is None else t
            else:
                raise FrontendError(f"unsupported program input {node.name!r} of kind {spec.kind.name}")

    def _user_input(self, node: fx.Node) -> Act:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dim() < 2:
            raise FrontendError(f"model input {node.name!r} must be a batched tensor, got {val!r}")
        n = val.shape[0]
        if isinstance(n, int) and n != 1:
            raise FrontendError(
                f"model input {node.name!r} was exported with batch size {n} (shape {tuple(val.shape)}); "
                "export with a single-sample example such as x[:1]"
            )
        self.batch = n
        shape = self._sample_shape(node, val)
        name = self.b.input(node.name, shape)
        self.shapes[name] = shape
        return Act(name)

    def _fold_constants(self) -> None:
        """Evaluate every op that reads no activation (weight transposes, lifted constants, ...)."""
        for node in self.fx.nodes:
            if node.op != "call_function" or not all(self._is_const(i) for i in node.all_input_nodes):
                continue
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: self.env[n])
            try:
                with torch.no_grad():
                    self.env[node] = node.target(*args, **kwargs)
            except Exception as e:
                raise FrontendError(
                    self._where(node, f"cannot evaluate this constant: {_first_line(e)}")
                ) from e

    def _is_const(self, node: fx.Node) -> bool:
        return node in self.env and not isinstance(self.env[node], Act)

    def _live_nodes(self) -> set[fx.Node]:
        live: set[fx.Node] = set()
        todo = list(self.fx.output_node().all_input_nodes)
        while todo:
            n = todo.pop()
            if n not in live:
                live.add(n)
                todo.extend(n.all_input_nodes)
        return live

    def _outputs(self) -> list[str]:
        values = self.fx.output_node().args[0]
        values = values if isinstance(values, (list, tuple)) else (values,)
        names = []
        for spec, v in zip(self.ep.graph_signature.output_specs, values, strict=True):
            if spec.kind is not OutputKind.USER_OUTPUT:
                continue
            val = self.env.get(v) if isinstance(v, fx.Node) else v
            if not isinstance(val, Act):
                raise FrontendError(
                    f"model output {spec.arg.name!r} does not depend on the input; not supported"
                )
            names.append(val.name)
        if not names:
            raise FrontendError("the exported program has no tensor outputs")
        return names

    # -- one node -----------------------------------------------------------------------------------

    def _convert(self, node: fx.Node) -> Any:
        if node in self.alias:
            return self.env[self.alias[node]]
        if node.target is operator.getitem:
            return self._getitem(node)
        handler = HANDLERS.get(getattr(node.target, "overloadpacket", None))
        if handler is None:
            alt = alternative(getattr(node.target, "__name__", "").split(".")[0])
            raise UnsupportedOpError(
                self._where(node, f"op not supported; nearest supported alternative: {alt}")
            )
        try:
            result = handler(self, node, self.bind(node))
        except FrontendError:
            raise
        except (ValueError, ir.IRError) as e:
            raise FrontendError(self._where(node, str(e))) from None
        self._check_shape(node, result)
        return result

    def _getitem(self, node: fx.Node) -> Any:
        src, idx = node.args[0], node.args[1]
        val = self.env[src][idx]
        if val is None:
            raise FrontendError(
                self._where(src, f"output {idx} (indices or statistics) is used; not supported")
            )
        return val

    def _where(self, node: fx.Node, msg: str) -> str:
        path, _ = module_path(node)
        mod = f" in module {path!r}" if path else ""
        return f"{op_name(node)} at FX node {node.name!r}{mod}: {msg}"

    def _check_shape(self, node: fx.Node, result: Any) -> None:
        result = first_tensor(result)
        if isinstance(result, Act):
            want = self.sample_shape(node)
            if self.shapes[result.name] != want:
                msg = f"internal: converted shape {self.shapes[result.name]} differs from torch's {want}"
                raise FrontendError(self._where(node, msg))

    # -- helpers for the handlers -------------------------------------------------------------------

    def bind(self, node: fx.Node) -> dict[str, Any]:
        """The op's arguments by schema name (defaults filled in), FX nodes replaced by their values."""
        out: dict[str, Any] = {}
        for i, arg in enumerate(node.target._schema.arguments):
            if i < len(node.args) and not arg.kwarg_only:
                v = node.args[i]
            elif arg.name in node.kwargs:
                v = node.kwargs[arg.name]
            else:
                v = arg.default_value if arg.has_default_value() else None
            out[arg.name] = fx.node.map_arg(v, lambda n: self.env[n])
        return out

    @staticmethod
    def first(a: dict[str, Any]) -> Any:
        return next(iter(a.values()))

    @staticmethod
    def act(v: Any, what: str = "the input") -> str:
        if not isinstance(v, Act):
            raise ValueError(f"{what} is a constant; ops must read the model's activations")
        return v.name

    @staticmethod
    def const(v: Any, what: str = "weight") -> np.ndarray:
        if not isinstance(v, torch.Tensor):
            raise ValueError(
                f"{what} must be a constant tensor (a parameter or buffer), not computed from the input"
            )
        return v.detach().to(torch.float64).cpu().numpy()

    def rank(self, name: str) -> int:
        """Rank as ATen sees it (with the batch axis)."""
        return len(self.shapes[name]) + 1

    def emit(self, node: fx.Node, op: ir.Op, inputs: Sequence[str], **params: np.ndarray) -> Act:
        shape = op.out_shape([self.shapes[i] for i in inputs])
        name = self.b.add(self._ir_name(node), op, inputs, **params)
        self.shapes[name] = shape
        return Act(name)

    def reshape(self, node: fx.Node, x: str, shape: ir.Shape) -> Act:
        if self.shapes[x] == tuple(shape):
            return Act(x)
        return self.emit(node, ir.Reshape(tuple(shape)), [x])

    def sample_shape(self, node: fx.Node) -> ir.Shape:
        return self._sample_shape(node, first_tensor(node.meta.get("val")))

    def _sample_shape(self, node: fx.Node, val: Any) -> ir.Shape:
        if not isinstance(val, torch.Tensor) or val.dim() < 1:
            raise FrontendError(self._where(node, "produces no batched tensor"))
        if str(val.shape[0]) != str(self.batch):
            raise FrontendError(
                self._where(
                    node, f"moves the batch axis (shape {tuple(val.shape)}); keep axis 0 as the batch"
                )
            )
        rest = list(val.shape[1:])
        if not all(isinstance(d, int) for d in rest):
            raise FrontendError(self._where(node, f"has a dynamic non-batch shape {tuple(val.shape)}"))
        return tuple(rest)

    def absorb_bias_adds(self, node: fx.Node, bias: np.ndarray) -> np.ndarray:
        """Fold ``y + c`` after a conv/linear into its bias when ``c`` is a per-channel constant and ``y``
        has no other use (covers the ``mm`` + ``add`` pattern of decomposed linears)."""
        bias = np.array(bias, dtype=np.float64)
        per_channel = (1, bias.shape[0]) + (1,) * (first_tensor(node.meta["val"]).dim() - 2)
        while len(node.users) == 1:
            user = next(iter(node.users))
            if user.target is not torch.ops.aten.add.Tensor or user.kwargs.get("alpha", 1) != 1:
                break
            other = user.args[1] if user.args[0] is node else user.args[0]
            c = self.env.get(other) if isinstance(other, fx.Node) else other
            if c is None or isinstance(c, Act):
                break
            c = torch.as_tensor(c, dtype=torch.float64)
            if torch.broadcast_shapes(c.shape, per_channel) != per_channel:
                break
            bias += c.broadcast_to(per_channel).reshape(-1).numpy()
            self.alias[user] = node
            node = user
        return bias

    def _ir_name(self, node: fx.Node) -> str:
        """The module path for ops of torch.nn leaf modules (``layer1.conv1``), else the FX name."""
        path, typ = module_path(node)
        return path if path and typ.startswith("torch.nn.modules.") else node.name
