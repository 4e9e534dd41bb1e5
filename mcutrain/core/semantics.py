"""Running IR graphs in PyTorch (batched: every tensor carries a leading batch axis).

Each op's semantics is its entry in the op table (:func:`mcutrain.core.op_table.forward_op`); this module
runs whole graphs with it (the simulator, the frontends' golden checks and the planner's scores all do),
and provides the PULP cluster's FP16 variant of the MAC ops (docs/gap9.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mcutrain.core import ir
from mcutrain.core.kernels import CLUSTER_TILED
from mcutrain.core.op_table import entry, forward_op

__all__ = ["forward", "forward_op", "forward_op_fp16", "has_fp16_operands", "node_params", "run_graph"]


def _half(t: torch.Tensor) -> torch.Tensor:
    """t rounded to float16 (nearest, ties to even), in t's dtype."""
    return t.to(torch.float16).to(t.dtype)


def has_fp16_operands(op: ir.Op) -> bool:
    """Whether the FP16 option of the PULP cluster (docs/gap9.md) runs ``op`` with float16 operands: the
    passes tiled through L1 (conv2d, conv_transpose2d and linear with ``groups == 1``)."""
    fw = entry(op).kernels.get("fw")
    return fw is not None and fw.cluster == CLUSTER_TILED and getattr(op, "groups", 1) == 1


class _HalfOperands(torch.autograd.Function):
    """A MAC op whose passes read float16-rounded operands and sum in the tensors' dtype: forward
    ``op(h(x), h(w)) + b``, input gradient from ``h(w), h(gy)``, weight and bias gradients from
    ``h(x), h(gy)``. A product of two float16 values is exact in float32, so this is what the C computes
    up to the order of its float32 sums."""

    @staticmethod
    def forward(ctx, op, x, w, b):  # type: ignore[no-untyped-def, override]
        ctx.op = op
        ctx.save_for_backward(x, w, b)
        return forward_op(op, [_half(x)], {"weight": _half(w), "bias": b})

    @staticmethod
    def backward(ctx, gy):  # type: ignore[no-untyped-def, override]
        x, w, b = ctx.saved_tensors
        with torch.enable_grad():
            xs = [t.detach().requires_grad_(True) for t in (_half(x), _half(w), b)]
            y = forward_op(ctx.op, xs[:1], {"weight": xs[1], "bias": xs[2]})
            gx, gw, gb = torch.autograd.grad(y, xs, _half(gy))
        return None, gx, gw, gb


def forward_op_fp16(op: ir.Op, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """:func:`forward_op`, with the ops of :func:`has_fp16_operands` on float16-rounded operands."""
    if not has_fp16_operands(op):
        return forward_op(op, xs, p)
    return _HalfOperands.apply(op, xs[0], p["weight"], p["bias"])


def node_params(graph: ir.Graph, node: ir.Node) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(graph.param(node.name, k).copy()) for k in node.op.param_names}


def run_graph(
    graph: ir.Graph,
    inputs: Mapping[str, torch.Tensor] | torch.Tensor,
    params: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    keep: bool = False,
    fp16_operands: bool = False,
) -> dict[str, torch.Tensor]:
    """Run the graph on a batch. ``params`` optionally overrides a node's parameters (by node name);
    ``fp16_operands`` runs the tiled MAC ops as the PULP cluster's FP16 option does (:func:`forward_op_fp16`).

    Returns the graph outputs by name, or every tensor when ``keep`` is true.
    """
    op_fn = forward_op_fp16 if fp16_operands else forward_op
    if isinstance(inputs, torch.Tensor):
        if len(graph.inputs) != 1:
            raise ValueError(f"graph {graph.name!r} has {len(graph.inputs)} inputs; pass a dict")
        inputs = {graph.inputs[0][0]: inputs}
    env: dict[str, torch.Tensor] = {}
    for name, shape in graph.inputs:
        x = inputs[name]
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"input {name!r} expects per-sample shape {shape}, got {tuple(x.shape[1:])}")
        env[name] = x
    for node in graph.nodes:
        p = params[node.name] if params is not None and node.name in params else node_params(graph, node)
        env[node.name] = op_fn(node.op, [env[i] for i in node.inputs], p)
    return env if keep else {o: env[o] for o in graph.outputs}


def forward(graph: ir.Graph, x: torch.Tensor) -> torch.Tensor:
    """The single output of a single-input graph, for a batch ``x``."""
    with torch.no_grad():
        return run_graph(graph, x)[graph.outputs[0]]
