"""The types of the op table (:mod:`mcutrain.core.op_table`) and what its entries share: the dims structs,
kernel prototype builders and the PyTorch padding helper."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mcutrain.core import ops
from mcutrain.core.graph import Graph, Node
from mcutrain.core.kernels import CLUSTER_ELEMENTWISE, CLUSTER_TILED, DimsStruct, Kernel, k

TorchForward = Callable[[ops.Op, list[torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]

#: What an input-gradient pass reads besides the output gradient.
READS_NOTHING, READS_INPUT, READS_OUTPUT, READS_MASK = "", "input", "output", "mask"


def always(graph: Graph, node: Node) -> bool:
    return True


def shares_quant(graph: Graph, node: Node) -> bool:
    """Whether ``node``'s first input and its output share scale and zero point (what TFLite's int8
    pooling, pad, reshape and a standalone relu or relu6 require: their integers pass through)."""
    x, y = graph.quant[node.inputs[0]], graph.quant[node.name]
    return x.scale == y.scale and x.zero_point == y.zero_point


@dataclass(frozen=True)
class Int8Spec:
    """An op kind's int8 forward: TFLite's integer arithmetic, the same in NumPy (the simulator) and in C.

    ``kernels`` are its C kernels by variant (``variant(op)``; none: the op is a view);
    ``params(graph, node)`` the integer parameters a kernel takes (a
    :class:`~mcutrain.core.int8_params.Q8Params`, a table, or plain ints), from the graph's quantization;
    ``forward(node, xs, params, q8)`` the output integers of one sample from the input integers and the
    int8/int32 parameter values; ``supports(graph, node)`` whether this node (its attributes and
    quantization) has it.
    """

    kernels: Mapping[str, Kernel]
    params: Callable[[Graph, Node], Any]
    forward: Callable[[Node, list[np.ndarray], Mapping[str, np.ndarray], Any], np.ndarray]
    supports: Callable[[Graph, Node], bool] = always
    variant: Callable[[ops.Op], str] = lambda op: ""
    args: Mapping[str, str] = field(default_factory=dict)  # roles of the kernel's parameters

    def kernel(self, op: ops.Op) -> Kernel | None:
        return self.kernels.get(self.variant(op))


@dataclass(frozen=True)
class OpEntry:
    op: type[ops.Op]
    forward: TorchForward
    kernels: Mapping[str, Kernel]
    dims: DimsStruct | None = None
    backward_reads: Callable[[ops.Op], str] = lambda op: READS_NOTHING
    forward_in_place: bool = False  # the output may take the storage of the input that dies there
    backward_in_place: bool = False  # likewise the input gradient, of the output gradient
    output_is_view: bool = False  # no forward kernel: the output is the input's buffer (reshape)
    grad_view: Callable[[ops.Op, int, list[ops.Shape]], int] | None = None  # input -> element offset
    args: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # pass -> {param: role}
    variant: Callable[[ops.Op], str] = lambda op: ""
    int8: Int8Spec | None = None  # its int8 forward, where it has one (mcutrain.train.precision)

    def kernel(self, pass_: str, op: ops.Op, via: str = "") -> Kernel:
        """The kernel of ``pass_`` for ``op`` (its variant, or ``via`` for a backward that reads a mask
        or the output)."""
        key = f"{pass_}:{via or self.variant(op)}"
        kern = self.kernels.get(key) or self.kernels.get(pass_)
        if kern is None:
            raise KeyError(f"op {op.kind!r} has no kernel for pass {pass_!r}")
        return kern

    def roles(self, pass_: str) -> Mapping[str, str]:
        return self.args.get(pass_, {})


# ---- dims structs ---------------------------------------------------------------------------------

CONV_FIELDS = (
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left", "groups",
)  # fmt: skip
POOL_FIELDS = (
    "c", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w", "stride_h", "stride_w",
    "pad_top", "pad_left",
)  # fmt: skip


def conv_dims(op, ins, out):  # type: ignore[no-untyped-def]
    return (*ins[0], *out, *op.kernel, *op.stride, *op.dilation, op.padding[0], op.padding[2], op.groups)


def pool_dims(op, ins, out):  # type: ignore[no-untyped-def]
    extra = (int(op.count_include_pad),) if isinstance(op, ops.AvgPool2d) else ()
    return (*ins[0], out[1], out[2], *op.kernel, *op.stride, op.padding[0], op.padding[2], *extra)


CONV2D_DIMS = DimsStruct("mt_conv2d_dims_t", CONV_FIELDS, conv_dims)
CONV_TRANSPOSE2D_DIMS = DimsStruct("mt_conv_transpose2d_dims_t", CONV_FIELDS, conv_dims)
LINEAR_DIMS = DimsStruct(
    "mt_linear_dims_t", ("in_features", "out_features"), lambda op, ins, out: (ins[0][0], out[0])
)
CHANNEL_AFFINE_DIMS = DimsStruct(
    "mt_channel_affine_dims_t",
    ("c", "h", "w"),
    lambda op, ins, out: (ins[0][0], *(ins[0][1:] if len(ins[0]) == 3 else (1, 1))),
)
MAX_POOL2D_DIMS = DimsStruct("mt_max_pool2d_dims_t", POOL_FIELDS, pool_dims)
AVG_POOL2D_DIMS = DimsStruct("mt_avg_pool2d_dims_t", (*POOL_FIELDS, "count_include_pad"), pool_dims)
UPSAMPLE_DIMS = DimsStruct(
    "mt_upsample_dims_t",
    ("c", "in_h", "in_w", "scale_h", "scale_w", "align_corners"),
    lambda op, ins, out: (*ins[0], *op.scale, int(op.align_corners)),
)
PAD_DIMS = DimsStruct(
    "mt_pad_dims_t",
    ("c", "in_h", "in_w", "pad_top", "pad_bottom", "pad_left", "pad_right"),
    lambda op, ins, out: (*ins[0], *op.padding),
)


# ---- PyTorch semantics (batched) ------------------------------------------------------------------


def pad_or_none(x: torch.Tensor, padding: ops.Pad4, value: float = 0.0) -> torch.Tensor:
    t, b, l, r = padding
    if t == b == l == r == 0:
        return x
    return F.pad(x, (l, r, t, b), value=value)


def per_channel(x: torch.Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.dim() - 2)


# ---- kernels --------------------------------------------------------------------------------------

T, E = CLUSTER_TILED, CLUSTER_ELEMENTWISE


def mac_kernels(op: str, dims: str, cluster: str = T, scratch: bool = True) -> dict[str, Kernel]:
    """fw / bw_wgrad / bw_igrad of a layer with weight rows per output channel (``[co_begin, co_end)``)."""
    s = ", float *scratch" if scratch else ""
    d = f"const {dims} *d, int32_t co_begin, int32_t co_end"
    return {
        "fw": k(
            f"void mt_{op}_fw_f32({d}, const float *x, const float *w, const float *b, float *y{s})", cluster
        ),
        "bw_wgrad": k(
            f"void mt_{op}_bw_wgrad_f32({d}, const float *x, const float *gy, float *gw, float *gb, "
            f"int32_t accumulate{s})",
            cluster,
        ),
        "bw_igrad": k(
            f"void mt_{op}_bw_igrad_f32({d}, const float *w, const float *gy, float *gx, "
            f"int32_t accumulate{s})",
            cluster,
        ),
    }


def window_kernels(op: str, dims: str, igrad_reads_x: bool) -> dict[str, Kernel]:
    x = "const float *x, " if igrad_reads_x else ""
    return {
        "fw": k(f"void mt_{op}_fw_f32(const {dims} *d, const float *x, float *y)"),
        "bw_igrad": k(
            f"void mt_{op}_bw_igrad_f32(const {dims} *d, {x}const float *gy, float *gx, int32_t accumulate)"
        ),
    }


def global_pool_kernels(op: str, igrad_reads_x: bool) -> dict[str, Kernel]:
    x = "const float *x, " if igrad_reads_x else ""
    return {
        "fw": k(f"void mt_{op}_fw_f32(int32_t c, int32_t hw, const float *x, float *y)"),
        "bw_igrad": k(
            f"void mt_{op}_bw_igrad_f32(int32_t c, int32_t hw, {x}const float *gy, float *gx, "
            f"int32_t accumulate)"
        ),
    }


ACCUMULATE = k("void mt_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate)", E)
COPY = k("void mt_copy_f32(int32_t n, const float *src, float *dst)", E)
#: an input gradient that is a copy (or sum) of the output gradient, or of its slice
GRAD_COPY = {"src": "gy", "dst": "gx"}
