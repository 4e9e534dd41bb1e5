"""The op table's entries of the ops without weights: activations, pooling, reshape, add, concat, upsample,
pad and softmax. See :mod:`mcutrain.core.op_table`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mcutrain.core import int8_params as q8
from mcutrain.core import int8_semantics as s8
from mcutrain.core import ops
from mcutrain.core.graph import Graph, Node
from mcutrain.core.kernels import Kernel, k
from mcutrain.core.op_spec import (
    ACCUMULATE,
    AVG_POOL2D_DIMS,
    COPY,
    GRAD_COPY,
    MAX_POOL2D_DIMS,
    PAD_DIMS,
    READS_INPUT,
    READS_MASK,
    READS_OUTPUT,
    UPSAMPLE_DIMS,
    E,
    Int8Spec,
    OpEntry,
    global_pool_kernels,
    pad_or_none,
    shares_quant,
    window_kernels,
)  # fmt: skip

_ACTIVATIONS: dict[ops.ActFn, Callable[[torch.Tensor, float], torch.Tensor]] = {
    ops.ActFn.RELU: lambda x, a: F.relu(x),
    ops.ActFn.RELU6: lambda x, a: F.hardtanh(x, 0.0, 6.0),
    ops.ActFn.LEAKY_RELU: lambda x, a: F.leaky_relu(x, a),
    ops.ActFn.SIGMOID: lambda x, a: torch.sigmoid(x),
    ops.ActFn.TANH: lambda x, a: torch.tanh(x),
}


def _max_pool2d(op, xs, p):  # type: ignore[no-untyped-def]
    return F.max_pool2d(pad_or_none(xs[0], op.padding, value=float("-inf")), op.kernel, op.stride)


def _avg_pool2d(op, xs, p):  # type: ignore[no-untyped-def]
    area = op.kernel[0] * op.kernel[1]
    s = F.avg_pool2d(pad_or_none(xs[0], op.padding), op.kernel, op.stride) * area
    if op.count_include_pad:
        return s / area
    ones = pad_or_none(torch.ones_like(xs[0][:1, :1]), op.padding)
    return s / (F.avg_pool2d(ones, op.kernel, op.stride) * area)


def _upsample(op, xs, p):  # type: ignore[no-untyped-def]
    x = xs[0]
    size = (x.shape[2] * op.scale[0], x.shape[3] * op.scale[1])
    if op.mode is ops.UpsampleMode.NEAREST:
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=op.align_corners)


def _concat_offset(op: ops.Op, idx: int, ins: list[ops.Shape]) -> int:
    from math import prod

    return sum(prod(s) for s in ins[:idx])


def _reads_by_fn(op: ops.Op) -> str:
    assert isinstance(op, ops.Activation)
    return READS_OUTPUT if op.fn in (ops.ActFn.SIGMOID, ops.ActFn.TANH) else READS_MASK


def _q(graph: Graph, *keys: str):  # type: ignore[no-untyped-def]
    return [graph.quant[k] for k in keys]


def _act_params(graph: Graph, node: Node) -> object:
    """relu / relu6: the clamp (lo, hi); leaky relu: its multipliers; sigmoid: the logistic table."""
    op = node.op
    assert isinstance(op, ops.Activation)
    x, y = _q(graph, node.inputs[0], node.name)
    if op.fn is ops.ActFn.LEAKY_RELU:
        return q8.leaky_relu_q8(x, y, op.alpha)
    if op.fn is ops.ActFn.SIGMOID:
        return q8.logistic_q8(x, y)
    return q8.activation_range(op.fn.value, y)


def _act_s8(n: Node, xs: list[np.ndarray], p: object, q: object) -> np.ndarray:
    op = n.op
    assert isinstance(op, ops.Activation)
    if op.fn is ops.ActFn.LEAKY_RELU:
        return s8.leaky_relu_s8(xs[0], q)  # type: ignore[arg-type]
    if op.fn is ops.ActFn.SIGMOID:
        return s8.logistic_s8(xs[0], q)  # type: ignore[arg-type]
    lo, hi = q  # type: ignore[misc]
    return np.clip(xs[0], lo, hi).astype(np.int8)


def _act_supported(graph: Graph, node: Node) -> bool:
    op = node.op
    assert isinstance(op, ops.Activation)
    if op.fn in (ops.ActFn.RELU, ops.ActFn.RELU6):
        return shares_quant(graph, node)  # a clamp of the input integers
    return op.fn in _ACT_S8


_CLAMP_S8 = k("void mt_clamp_fw_s8(int32_t lo, int32_t hi, int32_t n, const int8_t *x, int8_t *y)")
_ACT_S8 = {
    ops.ActFn.RELU: _CLAMP_S8,
    ops.ActFn.RELU6: _CLAMP_S8,
    ops.ActFn.LEAKY_RELU: k(
        "void mt_leaky_relu_fw_s8(const mt_leaky_relu_q8_t *q, int32_t n, const int8_t *x, int8_t *y)"
    ),
    ops.ActFn.SIGMOID: k("void mt_logistic_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y)"),
}


def _pool_s8(op: str, dims: str) -> dict[str, Kernel]:
    return {"": k(f"void mt_{op}_fw_s8(const {dims} *d, const mt_pool_q8_t *q, const int8_t *x, int8_t *y)")}


def _pool_params(graph: Graph, node: Node) -> q8.PoolQ8:
    return q8.pool_q8(*_q(graph, node.inputs[0], node.name))


def _mean_params(graph: Graph, node: Node) -> q8.MeanQ8:
    _, h, w = graph.shapes[node.inputs[0]]
    return q8.global_avg_pool_q8(*_q(graph, node.inputs[0], node.name), h * w)


def _one(prototype: str, cluster: str = "") -> dict[str, Kernel]:
    return {"": k(prototype, cluster)}


TENSOR_ENTRIES = (
    OpEntry(
        ops.Activation,
        lambda op, xs, p: _ACTIVATIONS[op.fn](xs[0], op.alpha),
        {
            "fw": k(
                "void mt_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y)", E
            ),
            "mask": k(
                "void mt_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask)", E
            ),
            "bw_igrad:mask": k(
                "void mt_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, "
                "const float *gy, float *gx, int32_t accumulate)",
                E,
            ),
            "bw_igrad:output": k(
                "void mt_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, "
                "const float *gy, "
                "float *gx, int32_t accumulate)",
                E,
            ),
        },
        backward_reads=_reads_by_fn,
        forward_in_place=True,
        backward_in_place=True,
        int8=Int8Spec(
            _ACT_S8,
            _act_params,
            _act_s8,
            supports=_act_supported,
            variant=lambda op: op.fn.value,  # type: ignore[attr-defined]
        ),
    ),
    OpEntry(
        ops.MaxPool2d,
        _max_pool2d,
        window_kernels("max_pool2d", "mt_max_pool2d_dims_t", igrad_reads_x=True),
        MAX_POOL2D_DIMS,
        backward_reads=lambda op: READS_INPUT,
        int8=Int8Spec(
            _pool_s8("max_pool2d", "mt_max_pool2d_dims_t"),
            _pool_params,
            lambda n, xs, p, q: s8.max_pool2d_s8(xs[0], n.op, q),  # type: ignore[arg-type]
            supports=shares_quant,
        ),
    ),
    OpEntry(
        ops.AvgPool2d,
        _avg_pool2d,
        window_kernels("avg_pool2d", "mt_avg_pool2d_dims_t", False),
        AVG_POOL2D_DIMS,
        int8=Int8Spec(
            _pool_s8("avg_pool2d", "mt_avg_pool2d_dims_t"),
            _pool_params,
            lambda n, xs, p, q: s8.avg_pool2d_s8(xs[0], n.op, q),  # type: ignore[arg-type]
            supports=lambda g, n: (
                shares_quant(g, n) and (not n.op.count_include_pad or not any(n.op.padding))
            ),  # type: ignore[attr-defined]
        ),
    ),
    OpEntry(
        ops.GlobalAvgPool,
        lambda op, xs, p: xs[0].mean(dim=(2, 3)),
        global_pool_kernels("global_avg_pool", False),
        int8=Int8Spec(
            _one(
                "void mt_global_avg_pool_fw_s8(const mt_global_avg_pool_q8_t *q, int32_t c, int32_t hw, "
                "const int8_t *x, int8_t *y)"
            ),
            _mean_params,
            lambda n, xs, p, q: s8.global_avg_pool_s8(xs[0], q),
        ),
    ),
    OpEntry(
        ops.GlobalMaxPool,
        lambda op, xs, p: xs[0].amax(dim=(2, 3)),
        global_pool_kernels("global_max_pool", igrad_reads_x=True),
        backward_reads=lambda op: READS_INPUT,
    ),
    OpEntry(
        ops.Reshape,  # no forward kernel: the output is a view of the input
        lambda op, xs, p: xs[0].reshape(xs[0].shape[0], *op.shape),
        {"bw_igrad": ACCUMULATE},
        output_is_view=True,
        grad_view=lambda op, idx, ins: 0,
        args={"bw_igrad": GRAD_COPY},
        int8=Int8Spec(
            {},
            lambda g, n: None,
            lambda n, xs, p, q: s8.reshape_s8(xs[0], n.op.shape),  # type: ignore[attr-defined]
            supports=shares_quant,
        ),
    ),
    OpEntry(
        ops.Add,
        lambda op, xs, p: xs[0] + xs[1],
        {
            "fw": k("void mt_add_fw_f32(int32_t n, const float *a, const float *b, float *y)", E),
            "bw_igrad": ACCUMULATE,
        },
        forward_in_place=True,
        grad_view=lambda op, idx, ins: 0,
        args={"fw": {"a": "x0", "b": "x1"}, "bw_igrad": GRAD_COPY},
        int8=Int8Spec(
            _one(
                "void mt_add_fw_s8(const mt_add_q8_t *q, int32_t n, const int8_t *a, const int8_t *b, "
                "int8_t *y)"
            ),
            lambda g, n: q8.add_q8(*_q(g, n.inputs[0], n.inputs[1], n.name)),
            lambda n, xs, p, q: s8.add_s8(xs[0], xs[1], q),
            args={"a": "x0", "b": "x1"},
        ),
    ),
    OpEntry(
        ops.Concat,  # forward: each input copied into its slice, unless its producer wrote it there already
        lambda op, xs, p: torch.cat(xs, dim=1),
        {"fw": COPY, "bw_igrad": ACCUMULATE},
        grad_view=_concat_offset,
        args={
            "fw": {"n": "slice_numel", "src": "x_slice", "dst": "y_slice"},
            "bw_igrad": {"n": "slice_numel", "src": "gy_slice", "dst": "gx"},
        },
        int8=Int8Spec(
            _one("void mt_concat_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y)"),
            lambda g, n: q8.concat_q8([g.quant[i] for i in n.inputs], g.quant[n.name]),
            lambda n, xs, p, q: s8.concat_s8(xs, q),
        ),
    ),
    OpEntry(
        ops.Upsample,
        _upsample,
        {
            f"{p}:{m}": kern
            for m in ("nearest", "bilinear")
            for p, kern in window_kernels(f"upsample_{m}", "mt_upsample_dims_t", False).items()
        },
        UPSAMPLE_DIMS,
        variant=lambda op: op.mode.value,
    ),
    OpEntry(
        ops.Pad,
        lambda op, xs, p: pad_or_none(xs[0], op.padding, value=op.value),
        {
            "fw": k("void mt_pad_fw_f32(const mt_pad_dims_t *d, float value, const float *x, float *y)"),
            "bw_igrad": k(
                "void mt_pad_bw_igrad_f32(const mt_pad_dims_t *d, const float *gy, float *gx, "
                "int32_t accumulate)"
            ),
        },
        PAD_DIMS,
        int8=Int8Spec(
            _one("void mt_pad_fw_s8(const mt_pad_dims_t *d, int8_t value, const int8_t *x, int8_t *y)"),
            lambda g, n: q8.pad_value(*_q(g, n.inputs[0], n.name)),
            lambda n, xs, p, q: s8.pad_s8(xs[0], n.op, q),  # type: ignore[arg-type]
            # pads with the zero point: the float value 0
            supports=lambda g, n: n.op.value == 0.0 and shares_quant(g, n),  # type: ignore[attr-defined]
        ),
    ),
    OpEntry(
        ops.Softmax,
        lambda op, xs, p: torch.softmax(xs[0], dim=1),
        {
            "fw": k("void mt_softmax_fw_f32(int32_t n, const float *x, float *y)"),
            "bw_igrad": k(
                "void mt_softmax_bw_igrad_f32(int32_t n, const float *y, const float *gy, float *gx, "
                "int32_t accumulate)"
            ),
        },
        backward_reads=lambda op: READS_OUTPUT,
        int8=Int8Spec(
            _one("void mt_softmax_fw_s8(const mt_softmax_q8_t *q, int32_t n, const int8_t *x, int8_t *y)"),
            lambda g, n: q8.softmax_q8(*_q(g, n.inputs[0], n.name)),
            lambda n, xs, p, q: s8.softmax_s8(xs[0], q),
        ),
    ),
)
