"""PyTorch frontend: ``nn.Module`` / ``torch.export`` program -> :class:`mcutrain.core.graph.Graph`.

Entry points: :func:`load_module` (a live module and a batch-1 example input), :func:`load_exported`
(a ``.pt2`` file written by ``torch.export.save``) and :func:`load_factory` (``"package.module:factory"``,
a callable without arguments that returns an ``nn.Module``). All three fold batch norms by default
(:func:`mcutrain.passes.fold_batchnorm`); pass ``fold_bn=False`` for the graph exactly as imported.

The module is exported with ``torch.export.export`` in eval mode. The program is functionalized
(``run_decompositions({})``) only when it holds in-place ops, and fully decomposed only as a second
attempt when an op has no handler. :class:`~mcutrain.frontends.torch_converter.Converter` walks the FX
graph; the per-op handlers live in :mod:`mcutrain.frontends.torch_rules` and
:mod:`mcutrain.frontends.torch_shape_rules`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch.export import ExportedProgram

from mcutrain.core import ir
from mcutrain.core.passes import fold_batchnorm, remove_identities
from mcutrain.frontends import FrontendError
from mcutrain.frontends.torch_converter import Converter, first_line
from mcutrain.frontends.torch_rules import UnsupportedOpError

__all__ = ["load_exported", "load_factory", "load_module", "program_to_graph"]

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
        with _quiet_torch_logs():
            ep = torch.export.load(p)
    except Exception as e:
        raise FrontendError(
            f"{p} is not a readable torch.export program (expected a .pt2 written by torch.export.save): "
            f"{first_line(e)}"
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
    try:
        with torch.no_grad():
            model.eval()(example)
    except Exception as e:
        raise FrontendError(
            f"{spec} does not run on an input of shape {tuple(example.shape)} ({first_line(e)}): give the "
            "input's shape with the batch axis first (CLI --input-shape, e.g. 1,16 or 1,3,32,32)"
        ) from None
    return load_module(model, example, name=name or spec.rpartition(":")[2].split(".")[-1], fold_bn=fold_bn)


def call_factory(spec: str) -> torch.nn.Module:
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise FrontendError(f"bad model spec {spec!r}: expected 'package.module:factory'")
    try:
        mod = importlib.import_module(module_name)
    except Exception as e:
        raise FrontendError(f"cannot import {module_name!r} (from {spec!r}): {first_line(e)}") from None
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
        raise FrontendError(f"factory {spec!r} raised {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _finish(graph: ir.Graph, fold_bn: bool) -> ir.Graph:
    graph = remove_identities(graph)
    return fold_batchnorm(graph) if fold_bn else graph


# ---------------------------------------------------------------------------------------------------
# Export and program preparation
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch logs the tracebacks of a failed export or load itself (at ERROR level); the frontend turns
    the failure into one FrontendError instead, so those logs stay quiet meanwhile."""
    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def export_module(module: torch.nn.Module, example: torch.Tensor) -> ExportedProgram:
    was_training = module.training
    module.eval()
    try:
        with _quiet_torch_logs():
            return torch.export.export(module, (example,))
    except Exception as e:
        raise FrontendError(
            f"torch.export failed for {type(module).__name__}: {first_line(e)}\n{_EXPORT_HINT}"
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
        raise FrontendError(f"torch.export could not decompose the program: {first_line(e)}") from e
