"""FX graph -> IR conversion of the PyTorch frontend (:mod:`mcutrain.frontends.torch`): a :class:`Converter`
walks the FX graph of one exported program, evaluates eagerly what reads no activation, and hands every
other op to its handler (:mod:`mcutrain.frontends.torch_rules`, :mod:`mcutrain.frontends.torch_shape_rules`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

import mcutrain.frontends.torch_shape_rules  # noqa: F401  (registers the shape-op handlers in HANDLERS)
from mcutrain.core import ir
from mcutrain.frontends import FrontendError
from mcutrain.frontends.torch_rules import HANDLERS, Act, UnsupportedOpError, alternative, first_tensor

__all__ = ["Converter"]


def first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


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
                    self._where(node, f"cannot evaluate this constant: {first_line(e)}")
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
