"""PyTorch implementations of the IR ops (batched: every tensor carries a leading batch axis).

This is the single definition of each op's semantics on the host: the simulator, the frontends' golden
checks and the planner's scoring all run graphs through :func:`forward_op`, and the C kernels are tested
against these functions under ``torch.autograd``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch

import torch
import torch.nn.functional as F

from mcutrain.core import ir


def _pad_or_none(x: torch.Tensor, padding: ir.Pad4, value: float = 0.0) -> torch.Tensor:
    t, b, l, r = padding
    if t == b == l == r == 0:
        return x
    return F.pad(x, (l, r, t, b), value=value)


@singledispatch
def forward_op(op: ir.Op, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    raise NotImplementedError(f"no PyTorch implementation for op {op.kind!r}")


@forward_op.register
def _(op: ir.Conv2d, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    x = _pad_or_none(xs[0], op.padding)
    return F.conv2d(x, p["weight"], p["bias"], op.stride, 0, op.dilation, op.groups)


@forward_op.register
def _(op: ir.ConvTranspose2d, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    y = F.conv_transpose2d(xs[0], p["weight"], None, op.stride, 0, 0, op.groups, op.dilation)
    t, b, l, r = op.padding
    y = F.pad(y, (-l, -r, -t, -b))  # positive crops, negative extends with zeros (output_padding)
    return y + p["bias"].view(1, -1, 1, 1)


@forward_op.register
def _(op: ir.Linear, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return F.linear(xs[0], p["weight"], p["bias"])


@forward_op.register
def _(op: ir.BatchNorm, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    shape = (1, -1) + (1,) * (xs[0].dim() - 2)
    scale = p["gamma"] / torch.sqrt(p["var"] + op.eps)
    return (xs[0] - p["mean"].view(shape)) * scale.view(shape) + p["beta"].view(shape)


@forward_op.register
def _(op: ir.ChannelAffine, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    shape = (1, -1) + (1,) * (xs[0].dim() - 2)
    return xs[0] * p["weight"].view(shape) + p["bias"].view(shape)


@forward_op.register
def _(op: ir.Activation, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    if op.fn is ir.ActFn.RELU:
        return F.relu(x)
    if op.fn is ir.ActFn.RELU6:
        return F.hardtanh(x, 0.0, 6.0)
    if op.fn is ir.ActFn.LEAKY_RELU:
        return F.leaky_relu(x, op.alpha)
    if op.fn is ir.ActFn.SIGMOID:
        return torch.sigmoid(x)
    if op.fn is ir.ActFn.TANH:
        return torch.tanh(x)
    raise NotImplementedError(op.fn)


@forward_op.register
def _(op: ir.MaxPool2d, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    x = _pad_or_none(xs[0], op.padding, value=float("-inf"))
    return F.max_pool2d(x, op.kernel, op.stride)


@forward_op.register
def _(op: ir.AvgPool2d, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    x = _pad_or_none(xs[0], op.padding)
    s = F.avg_pool2d(x, op.kernel, op.stride) * (op.kernel[0] * op.kernel[1])
    if op.count_include_pad:
        return s / (op.kernel[0] * op.kernel[1])
    ones = _pad_or_none(torch.ones_like(xs[0][:1, :1]), op.padding)
    count = F.avg_pool2d(ones, op.kernel, op.stride) * (op.kernel[0] * op.kernel[1])
    return s / count


@forward_op.register
def _(op: ir.GlobalAvgPool, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return xs[0].mean(dim=(2, 3))


@forward_op.register
def _(op: ir.GlobalMaxPool, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return xs[0].amax(dim=(2, 3))


@forward_op.register
def _(op: ir.Reshape, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return xs[0].reshape(xs[0].shape[0], *op.shape)


@forward_op.register
def _(op: ir.Add, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return xs[0] + xs[1]


@forward_op.register
def _(op: ir.Concat, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat(xs, dim=1)


@forward_op.register
def _(op: ir.Upsample, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    size = (x.shape[2] * op.scale[0], x.shape[3] * op.scale[1])
    if op.mode is ir.UpsampleMode.NEAREST:
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=op.align_corners)


@forward_op.register
def _(op: ir.Pad, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return _pad_or_none(xs[0], op.padding, value=op.value)


@forward_op.register
def _(op: ir.Softmax, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.softmax(xs[0], dim=1)


def _half(t: torch.Tensor) -> torch.Tensor:
    """t rounded to float16 (nearest, ties to even), in t's dtype."""
    return t.to(torch.float16).to(t.dtype)


def has_fp16_operands(op: ir.Op) -> bool:
    """Whether the FP16 option of the PULP cluster (docs/gap9.md) runs ``op`` with float16 operands: the
    tiled conv2d, conv_transpose2d and linear (groups == 1)."""
    if isinstance(op, ir.Linear):
        return True
    return isinstance(op, (ir.Conv2d, ir.ConvTranspose2d)) and op.groups == 1


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
