"""The op table's entries of the layers with weights: conv2d (depthwise included), conv_transpose2d,
linear, channel_affine, and batch norm (folded before training). See :mod:`mcutrain.core.op_table`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mcutrain.core import int8_params as q8
from mcutrain.core import int8_semantics as s8
from mcutrain.core import ops
from mcutrain.core.graph import Graph, Node
from mcutrain.core.kernels import CLUSTER_TILED, Kernel, k
from mcutrain.core.op_spec import (
    CHANNEL_AFFINE_DIMS,
    CONV2D_DIMS,
    CONV_TRANSPOSE2D_DIMS,
    LINEAR_DIMS,
    Int8Spec,
    OpEntry,
    mac_kernels,
    pad_or_none,
    per_channel,
)  # fmt: skip


def _conv2d(op, xs, p):  # type: ignore[no-untyped-def]
    return F.conv2d(
        pad_or_none(xs[0], op.padding), p["weight"], p["bias"], op.stride, 0, op.dilation, op.groups
    )


def _conv_transpose2d(op, xs, p):  # type: ignore[no-untyped-def]
    y = F.conv_transpose2d(xs[0], p["weight"], None, op.stride, 0, 0, op.groups, op.dilation)
    t, b, l, r = op.padding
    y = F.pad(y, (-l, -r, -t, -b))  # positive crops, negative extends with zeros (output_padding)
    return y + p["bias"].view(1, -1, 1, 1)


def _batch_norm(op, xs, p):  # type: ignore[no-untyped-def]
    shape = per_channel(xs[0])
    scale = p["gamma"] / torch.sqrt(p["var"] + op.eps)
    return (xs[0] - p["mean"].view(shape)) * scale.view(shape) + p["beta"].view(shape)


def _channel_affine(op, xs, p):  # type: ignore[no-untyped-def]
    shape = per_channel(xs[0])
    return xs[0] * p["weight"].view(shape) + p["bias"].view(shape)


def _q(graph: Graph, node: Node, *keys: str):  # type: ignore[no-untyped-def]
    return [graph.quant[k] for k in keys]


def _conv_params(graph: Graph, node: Node) -> q8.ConvQ8:
    x, w, y = _q(graph, node, node.inputs[0], node.param_key("weight"), node.name)
    return q8.conv2d_q8(x, w, y, graph.shapes[node.name][0])


def _linear_params(graph: Graph, node: Node) -> q8.LinearQ8:
    x, w, y = _q(graph, node, node.inputs[0], node.param_key("weight"), node.name)
    return q8.linear_q8(x, w, y, graph.shapes[node.name][0])


def _s8_mac(op: str, dims: str) -> dict[str, Kernel]:
    return {
        "": k(
            f"void mt_{op}_fw_s8(const {dims} *d, const mt_{op}_q8_t *q, int32_t co_begin, int32_t co_end, "
            "const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch)",
            CLUSTER_TILED,  # mt_cl_<op>_fw_s8: L1 tiles of output channels (firmware/pulp/mt_cl_conv_s8.c)
        )
    }


LAYER_ENTRIES = (
    OpEntry(
        ops.Conv2d,
        _conv2d,
        mac_kernels("conv2d", "mt_conv2d_dims_t"),
        CONV2D_DIMS,
        int8=Int8Spec(
            _s8_mac("conv2d", "mt_conv2d_dims_t"),
            _conv_params,
            lambda n, xs, p, q: s8.conv2d_s8(xs[0], p["weight"], p["bias"], n.op, q),  # type: ignore[arg-type]
        ),
    ),
    OpEntry(
        ops.ConvTranspose2d,
        _conv_transpose2d,
        mac_kernels("conv_transpose2d", "mt_conv_transpose2d_dims_t"),
        CONV_TRANSPOSE2D_DIMS,
    ),
    OpEntry(
        ops.Linear,
        lambda op, xs, p: F.linear(xs[0], p["weight"], p["bias"]),
        mac_kernels("linear", "mt_linear_dims_t"),
        LINEAR_DIMS,
        int8=Int8Spec(
            _s8_mac("linear", "mt_linear_dims_t"),
            _linear_params,
            lambda n, xs, p, q: s8.linear_s8(xs[0], p["weight"], p["bias"], q),
        ),
    ),
    OpEntry(
        ops.ChannelAffine,
        _channel_affine,
        mac_kernels("channel_affine", "mt_channel_affine_dims_t", cluster="", scratch=False),
        CHANNEL_AFFINE_DIMS,
    ),
    OpEntry(ops.BatchNorm, _batch_norm, {}),  # folded before training (mcutrain.core.passes)
)
