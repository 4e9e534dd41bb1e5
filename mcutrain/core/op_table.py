"""The op table: for every IR op kind, in one entry, everything the later stages need to know about it.

* ``forward``: its semantics in PyTorch (batched), which the simulator, the frontends' checks, the
  planner's scores and the kernel tests' references run;
* ``backward_reads``: what its input-gradient pass reads besides the output gradient (its input, its
  output, or only the sign pattern of its output, kept as a 1-bit mask) — training derivation
  (:mod:`mcutrain.train.derive`) keeps exactly those activations alive;
* ``forward_in_place``, ``backward_in_place``, ``output_is_view`` and ``grad_view``: whether its output
  may overwrite its input (and its input gradient the output gradient), whether it computes nothing (a
  reshape), and whether the gradient of an input is a plain view (an offset) into the output gradient;
* ``dims``: the C dims struct its kernels take, and how its attributes fill it;
* ``int8``: whether it has an int8 forward (TFLite's integer arithmetic, :mod:`mcutrain.train.precision`);
* ``kernels``: its C kernel per pass (``fw``, ``bw_igrad``, ``bw_wgrad``, ``mask``; a variant after a
  colon, e.g. ``fw:bilinear``), whose parameters the code generator binds by name
  (:mod:`mcutrain.emit.calls`); ``args`` names the role of a parameter whose name alone does not say it.

Adding an op kind: its attribute class in :mod:`mcutrain.core.ops`, its kernels in ``firmware/runtime``,
one entry here and a frontend rule (docs/design.md, "Adding an op").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mcutrain.core import ops
from mcutrain.core.kernels import CLUSTER_ELEMENTWISE, CLUSTER_TILED, DimsStruct, Kernel, k

TorchForward = Callable[[ops.Op, list[torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]

#: What an input-gradient pass reads besides the output gradient.
READS_NOTHING, READS_INPUT, READS_OUTPUT, READS_MASK = "", "input", "output", "mask"


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
    int8: Callable[[ops.Op], bool] | None = None  # whether an op of this kind has an int8 forward kernel

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

_CONV_FIELDS = (
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left", "groups",
)  # fmt: skip
_POOL_FIELDS = (
    "c", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w", "stride_h", "stride_w",
    "pad_top", "pad_left",
)  # fmt: skip


def _conv_dims(op, ins, out):  # type: ignore[no-untyped-def]
    return (*ins[0], *out, *op.kernel, *op.stride, *op.dilation, op.padding[0], op.padding[2], op.groups)


def _pool_dims(op, ins, out):  # type: ignore[no-untyped-def]
    extra = (int(op.count_include_pad),) if isinstance(op, ops.AvgPool2d) else ()
    return (*ins[0], out[1], out[2], *op.kernel, *op.stride, op.padding[0], op.padding[2], *extra)


CONV2D_DIMS = DimsStruct("mt_conv2d_dims_t", _CONV_FIELDS, _conv_dims)
CONV_TRANSPOSE2D_DIMS = DimsStruct("mt_conv_transpose2d_dims_t", _CONV_FIELDS, _conv_dims)
LINEAR_DIMS = DimsStruct(
    "mt_linear_dims_t", ("in_features", "out_features"), lambda op, ins, out: (ins[0][0], out[0])
)
CHANNEL_AFFINE_DIMS = DimsStruct(
    "mt_channel_affine_dims_t",
    ("c", "h", "w"),
    lambda op, ins, out: (ins[0][0], *(ins[0][1:] if len(ins[0]) == 3 else (1, 1))),
)
MAX_POOL2D_DIMS = DimsStruct("mt_max_pool2d_dims_t", _POOL_FIELDS, _pool_dims)
AVG_POOL2D_DIMS = DimsStruct("mt_avg_pool2d_dims_t", (*_POOL_FIELDS, "count_include_pad"), _pool_dims)
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


def _pad_or_none(x: torch.Tensor, padding: ops.Pad4, value: float = 0.0) -> torch.Tensor:
    t, b, l, r = padding
    if t == b == l == r == 0:
        return x
    return F.pad(x, (l, r, t, b), value=value)


def _conv2d(op, xs, p):  # type: ignore[no-untyped-def]
    return F.conv2d(
        _pad_or_none(xs[0], op.padding), p["weight"], p["bias"], op.stride, 0, op.dilation, op.groups
    )


def _conv_transpose2d(op, xs, p):  # type: ignore[no-untyped-def]
    y = F.conv_transpose2d(xs[0], p["weight"], None, op.stride, 0, 0, op.groups, op.dilation)
    t, b, l, r = op.padding
    y = F.pad(y, (-l, -r, -t, -b))  # positive crops, negative extends with zeros (output_padding)
    return y + p["bias"].view(1, -1, 1, 1)


def _per_channel(x: torch.Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.dim() - 2)


def _batch_norm(op, xs, p):  # type: ignore[no-untyped-def]
    shape = _per_channel(xs[0])
    scale = p["gamma"] / torch.sqrt(p["var"] + op.eps)
    return (xs[0] - p["mean"].view(shape)) * scale.view(shape) + p["beta"].view(shape)


def _channel_affine(op, xs, p):  # type: ignore[no-untyped-def]
    shape = _per_channel(xs[0])
    return xs[0] * p["weight"].view(shape) + p["bias"].view(shape)


_ACTIVATIONS: dict[ops.ActFn, Callable[[torch.Tensor, float], torch.Tensor]] = {
    ops.ActFn.RELU: lambda x, a: F.relu(x),
    ops.ActFn.RELU6: lambda x, a: F.hardtanh(x, 0.0, 6.0),
    ops.ActFn.LEAKY_RELU: lambda x, a: F.leaky_relu(x, a),
    ops.ActFn.SIGMOID: lambda x, a: torch.sigmoid(x),
    ops.ActFn.TANH: lambda x, a: torch.tanh(x),
}


def _max_pool2d(op, xs, p):  # type: ignore[no-untyped-def]
    return F.max_pool2d(_pad_or_none(xs[0], op.padding, value=float("-inf")), op.kernel, op.stride)


def _avg_pool2d(op, xs, p):  # type: ignore[no-untyped-def]
    area = op.kernel[0] * op.kernel[1]
    s = F.avg_pool2d(_pad_or_none(xs[0], op.padding), op.kernel, op.stride) * area
    if op.count_include_pad:
        return s / area
    ones = _pad_or_none(torch.ones_like(xs[0][:1, :1]), op.padding)
    return s / (F.avg_pool2d(ones, op.kernel, op.stride) * area)


def _upsample(op, xs, p):  # type: ignore[no-untyped-def]
    x = xs[0]
    size = (x.shape[2] * op.scale[0], x.shape[3] * op.scale[1])
    if op.mode is ops.UpsampleMode.NEAREST:
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=op.align_corners)


# ---- kernels --------------------------------------------------------------------------------------

_T, _E = CLUSTER_TILED, CLUSTER_ELEMENTWISE


def _mac_kernels(op: str, dims: str, cluster: str = _T, scratch: bool = True) -> dict[str, Kernel]:
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


def _window_kernels(op: str, dims: str, igrad_reads_x: bool) -> dict[str, Kernel]:
    x = "const float *x, " if igrad_reads_x else ""
    return {
        "fw": k(f"void mt_{op}_fw_f32(const {dims} *d, const float *x, float *y)"),
        "bw_igrad": k(
            f"void mt_{op}_bw_igrad_f32(const {dims} *d, {x}const float *gy, float *gx, int32_t accumulate)"
        ),
    }


def _global_pool_kernels(op: str, igrad_reads_x: bool) -> dict[str, Kernel]:
    x = "const float *x, " if igrad_reads_x else ""
    return {
        "fw": k(f"void mt_{op}_fw_f32(int32_t c, int32_t hw, const float *x, float *y)"),
        "bw_igrad": k(
            f"void mt_{op}_bw_igrad_f32(int32_t c, int32_t hw, {x}const float *gy, float *gx, "
            f"int32_t accumulate)"
        ),
    }


_ACCUMULATE = k("void mt_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate)", _E)
_COPY = k("void mt_copy_f32(int32_t n, const float *src, float *dst)", _E)
#: an input gradient that is a copy (or sum) of the output gradient, or of its slice
_GRAD_COPY = {"src": "gy", "dst": "gx"}


def _concat_offset(op: ops.Op, idx: int, ins: list[ops.Shape]) -> int:
    from math import prod

    return sum(prod(s) for s in ins[:idx])


def _reads_by_fn(op: ops.Op) -> str:
    assert isinstance(op, ops.Activation)
    return READS_OUTPUT if op.fn in (ops.ActFn.SIGMOID, ops.ActFn.TANH) else READS_MASK


def _always(op: ops.Op) -> bool:
    return True


_ENTRIES = (
    OpEntry(ops.Conv2d, _conv2d, _mac_kernels("conv2d", "mt_conv2d_dims_t"), CONV2D_DIMS, int8=_always),
    OpEntry(
        ops.ConvTranspose2d,
        _conv_transpose2d,
        _mac_kernels("conv_transpose2d", "mt_conv_transpose2d_dims_t"),
        CONV_TRANSPOSE2D_DIMS,
    ),
    OpEntry(
        ops.Linear,
        lambda op, xs, p: F.linear(xs[0], p["weight"], p["bias"]),
        _mac_kernels("linear", "mt_linear_dims_t"),
        LINEAR_DIMS,
        int8=_always,
    ),
    OpEntry(
        ops.ChannelAffine,
        _channel_affine,
        _mac_kernels("channel_affine", "mt_channel_affine_dims_t", cluster="", scratch=False),
        CHANNEL_AFFINE_DIMS,
    ),
    OpEntry(ops.BatchNorm, _batch_norm, {}),  # folded before training (mcutrain.core.passes)
    OpEntry(
        ops.Activation,
        lambda op, xs, p: _ACTIVATIONS[op.fn](xs[0], op.alpha),
        {
            "fw": k(
                "void mt_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y)", _E
            ),
            "mask": k(
                "void mt_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask)", _E
            ),
            "bw_igrad:mask": k(
                "void mt_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, "
                "const float *gy, float *gx, int32_t accumulate)",
                _E,
            ),
            "bw_igrad:output": k(
                "void mt_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, "
                "const float *gy, "
                "float *gx, int32_t accumulate)",
                _E,
            ),
        },
        backward_reads=_reads_by_fn,
        forward_in_place=True,
        backward_in_place=True,
        int8=lambda op: op.fn in (ops.ActFn.RELU, ops.ActFn.RELU6),
    ),
    OpEntry(
        ops.MaxPool2d,
        _max_pool2d,
        _window_kernels("max_pool2d", "mt_max_pool2d_dims_t", igrad_reads_x=True),
        MAX_POOL2D_DIMS,
        backward_reads=lambda op: READS_INPUT,
        int8=_always,
    ),
    OpEntry(
        ops.AvgPool2d,
        _avg_pool2d,
        _window_kernels("avg_pool2d", "mt_avg_pool2d_dims_t", False),
        AVG_POOL2D_DIMS,
        int8=lambda op: not op.count_include_pad or not any(op.padding),  # TFLite's average
    ),
    OpEntry(
        ops.GlobalAvgPool,
        lambda op, xs, p: xs[0].mean(dim=(2, 3)),
        _global_pool_kernels("global_avg_pool", False),
        int8=_always,
    ),
    OpEntry(
        ops.GlobalMaxPool,
        lambda op, xs, p: xs[0].amax(dim=(2, 3)),
        _global_pool_kernels("global_max_pool", igrad_reads_x=True),
        backward_reads=lambda op: READS_INPUT,
    ),
    OpEntry(
        ops.Reshape,  # no forward kernel: the output is a view of the input
        lambda op, xs, p: xs[0].reshape(xs[0].shape[0], *op.shape),
        {"bw_igrad": _ACCUMULATE},
        output_is_view=True,
        grad_view=lambda op, idx, ins: 0,
        args={"bw_igrad": _GRAD_COPY},
        int8=_always,
    ),
    OpEntry(
        ops.Add,
        lambda op, xs, p: xs[0] + xs[1],
        {
            "fw": k("void mt_add_fw_f32(int32_t n, const float *a, const float *b, float *y)", _E),
            "bw_igrad": _ACCUMULATE,
        },
        forward_in_place=True,
        grad_view=lambda op, idx, ins: 0,
        args={"fw": {"a": "x0", "b": "x1"}, "bw_igrad": _GRAD_COPY},
        int8=_always,
    ),
    OpEntry(
        ops.Concat,  # forward: each input copied into its slice, unless its producer wrote it there already
        lambda op, xs, p: torch.cat(xs, dim=1),
        {"fw": _COPY, "bw_igrad": _ACCUMULATE},
        grad_view=_concat_offset,
        args={
            "fw": {"n": "slice_numel", "src": "x_slice", "dst": "y_slice"},
            "bw_igrad": {"n": "slice_numel", "src": "gy_slice", "dst": "gx"},
        },
        int8=_always,
    ),
    OpEntry(
        ops.Upsample,
        _upsample,
        {
            f"{p}:{m}": kern
            for m in ("nearest", "bilinear")
            for p, kern in _window_kernels(f"upsample_{m}", "mt_upsample_dims_t", False).items()
        },
        UPSAMPLE_DIMS,
        variant=lambda op: op.mode.value,
    ),
    OpEntry(
        ops.Pad,
        lambda op, xs, p: _pad_or_none(xs[0], op.padding, value=op.value),
        {
            "fw": k("void mt_pad_fw_f32(const mt_pad_dims_t *d, float value, const float *x, float *y)"),
            "bw_igrad": k(
                "void mt_pad_bw_igrad_f32(const mt_pad_dims_t *d, const float *gy, float *gx, "
                "int32_t accumulate)"
            ),
        },
        PAD_DIMS,
        int8=lambda op: op.value == 0.0,  # pads with the zero point
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
        int8=_always,
    ),
)

#: op attribute class -> its entry; every op kind of :data:`mcutrain.core.ops.OP_TYPES` has one.
OP_TABLE: dict[type[ops.Op], OpEntry] = {e.op: e for e in _ENTRIES}
assert set(OP_TABLE) == set(ops.OP_TYPES.values()), "every op kind needs an op-table entry"


def entry(op: ops.Op | type[ops.Op]) -> OpEntry:
    return OP_TABLE[op if isinstance(op, type) else type(op)]


def forward_op(op: ops.Op, xs: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The op's output for a batch (its PyTorch semantics)."""
    return entry(op).forward(op, xs, p)


def op_kernels() -> list[Kernel]:
    """Every kernel an op kind calls (in table order)."""
    return [kern for e in _ENTRIES for kern in e.kernels.values()]


def dims_structs() -> list[DimsStruct]:
    """Every dims struct of the table (each once)."""
    return list({e.dims.ctype: e.dims for e in _ENTRIES if e.dims is not None}.values())
