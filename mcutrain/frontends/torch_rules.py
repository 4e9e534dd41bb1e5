"""ATen op handlers of the PyTorch frontend: one function per op family, registered by overload packet.

A handler receives the converter, the FX node and the op's arguments by schema name (defaults filled
in; FX nodes replaced by their values: :class:`Act` for activations, ``torch.Tensor`` for constants).
It emits IR nodes through ``cv.emit`` and returns the value of the FX node. Arguments that the IR cannot
express raise ``ValueError`` (the converter adds the op, the node and the module to the message).
This module holds the registry, the helpers and the handlers of layers with weights, activations,
pooling and reductions; :mod:`mcutrain.frontends.torch_shape_rules` holds those of shape ops, joins,
resampling and identities (the converter imports both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx as fx

from mcutrain.core import ir
from mcutrain.frontends import FrontendError

if TYPE_CHECKING:
    from mcutrain.frontends.torch_converter import Converter

aten = torch.ops.aten


@dataclass(frozen=True)
class Act:
    """A value computed from the model input: the name of an IR tensor."""

    name: str


class UnsupportedOpError(FrontendError):
    """An ATen op without a handler (as opposed to a supported op with unsupported arguments)."""


Handler = Callable[["Converter", fx.Node, dict[str, Any]], Any]
HANDLERS: dict[Any, Handler] = {}

_RELU_ALT = "relu or relu6 (swap the activation, then fine-tune briefly)"
AFFINE_ALT = (
    "a per-channel scale/shift: BatchNorm (folds into the preceding conv/linear, else channel_affine)"
)
_SLICE_ALT = "separate convolutions joined with cat on the channel axis"
_POOL_ALT = "global average pooling (mean over H and W, adaptive_avg_pool2d(1))"

#: The nearest supported choice for common unsupported ops, by ATen op name (no overload, no ``_``).
ALTERNATIVES: dict[str, str] = {
    **dict.fromkeys(("gelu", "silu", "hardswish", "mish", "elu", "selu", "celu", "softplus"), _RELU_ALT),
    "hardsigmoid": "sigmoid",
    "prelu": "leaky_relu with a fixed slope",
    **dict.fromkeys(("mul", "div", "sub", "rsub"), AFFINE_ALT),
    **dict.fromkeys(("mean", "sum", "avg_pool1d"), _POOL_ALT),
    **dict.fromkeys(("max", "amax", "max_pool1d"), "global max pooling (amax over H and W) or max_pool2d"),
    **dict.fromkeys(
        ("layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "instance_norm"),
        "BatchNorm2d (folded into the preceding conv at import)",
    ),
    **dict.fromkeys(("permute", "transpose", "t"), "flatten/reshape that keeps the element order"),
    **dict.fromkeys(("slice", "select", "narrow", "split", "split_with_sizes", "chunk", "index"), _SLICE_ALT),
    **dict.fromkeys(("conv1d", "conv3d"), "conv2d"),
    **dict.fromkeys(("bmm", "baddbmm"), "linear with a constant weight"),
    "upsample_bicubic2d": "bilinear upsampling",
    "pixel_shuffle": "conv_transpose2d, or upsample followed by a conv",
    **dict.fromkeys(("log_softmax", "_log_softmax"), "softmax"),
    **dict.fromkeys(("reflection_pad2d", "replication_pad2d"), "constant (zero) padding"),
}


def handles(*packets: Any) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for p in packets:
            HANDLERS[p] = fn
        return fn

    return register


def alternative(packet_name: str) -> str:
    return ALTERNATIVES.get(packet_name.rstrip("_"), "see docs/frontends-torch.md for the supported ops")


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def pair(v: Any) -> ir.Pair:
    if isinstance(v, int):
        return (v, v)
    vals = [int(x) for x in v]
    check(len(vals) in (1, 2), f"expected 1 or 2 values, got {vals}")
    return (vals[0], vals[-1])


def scalar(v: Any) -> Any:
    return v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v


def first_tensor(val: Any) -> Any:
    return val[0] if isinstance(val, (tuple, list)) else val


def norm_dims(dims: Any, rank: int) -> set[int]:
    return {int(d) % rank for d in ([dims] if isinstance(dims, int) else dims)}


def out_hw(node: fx.Node) -> tuple[int, int]:
    shape = first_tensor(node.meta["val"]).shape
    return int(shape[-2]), int(shape[-1])


def packet(node: fx.Node) -> Any:
    return node.target.overloadpacket


def maybe_tuple(node: fx.Node, result: Act) -> Any:
    """Ops with several outputs return a tuple whose extra outputs (indices, statistics) are unusable."""
    n = len(node.target._schema.returns)
    return result if n == 1 else (result, *([None] * (n - 1)))


def ceil_extra(size: int, k: int, s: int, p: int) -> int:
    """Extra bottom/right padding that reproduces PyTorch's ``ceil_mode=True`` window count."""
    out = math.ceil((size + 2 * p - k) / s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return max(0, (out - 1) * s + k - (size + 2 * p))


def conv_padding(p: Any, kernel: ir.Pair, dilation: ir.Pair) -> ir.Pad4:
    if p == "valid":
        return (0, 0, 0, 0)
    if p == "same":  # PyTorch puts the odd extra pixel at the bottom/right
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = pair(p)
    return (ph, ph, pw, pw)


# ---------------------------------------------------------------------------------------------------
# layers with weights
# ---------------------------------------------------------------------------------------------------


@handles(aten.conv2d, aten.convolution, aten._convolution, aten.conv_transpose2d)
def _conv(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(a["input"])
    w = cv.const(a["weight"])
    check(cv.rank(x) == 4 and w.ndim == 4, "only 2-D convolutions on (N, C, H, W) tensors are supported")
    transposed = bool(a.get("transposed", packet(node) is aten.conv_transpose2d))
    stride, dilation, groups = pair(a["stride"]), pair(a["dilation"]), int(a["groups"])
    kernel = (int(w.shape[2]), int(w.shape[3]))
    op: ir.Op
    if transposed:
        (ph, pw), (oph, opw) = pair(a["padding"]), pair(a["output_padding"])
        op = ir.ConvTranspose2d(
            w.shape[1] * groups, kernel, stride, (ph, ph - oph, pw, pw - opw), dilation, groups
        )
    else:
        op = ir.Conv2d(
            w.shape[0], kernel, stride, conv_padding(a["padding"], kernel, dilation), dilation, groups
        )
    cout = op.out_channels
    bias = np.zeros(cout) if a["bias"] is None else cv.const(a["bias"], "bias")
    return cv.emit(node, op, [x], weight=w, bias=cv.absorb_bias_adds(node, bias))


@handles(aten.linear, aten.addmm, aten.mm, aten.matmul)
def _linear(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    p, beta = packet(node), 1.0
    if p is aten.linear:
        x, w, b = a["input"], cv.const(a["weight"]), a["bias"]
    elif p is aten.addmm:
        x, w, b = a["mat1"], cv.const(a["mat2"]).T * float(a["alpha"]), a["self"]
        beta = float(a["beta"])
    else:
        x, w, b = a["self"], cv.const(a.get("mat2", a.get("other"))).T, None
    x = cv.act(x)
    check(
        len(cv.shapes[x]) == 1 and w.ndim == 2 and w.shape[1] == cv.shapes[x][0],
        f"linear needs a flat (N, F) input and an [out, F] weight, got input {cv.shapes[x]} and weight "
        f"{tuple(w.shape)}; flatten first",
    )
    out = int(w.shape[0])
    bias = np.zeros(out) if b is None else beta * np.broadcast_to(cv.const(b, "bias"), (1, out)).reshape(out)
    return cv.emit(node, ir.Linear(out), [x], weight=w, bias=cv.absorb_bias_adds(node, bias))


@handles(
    aten.batch_norm,
    aten.native_batch_norm,
    aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training,
    aten._native_batch_norm_legit_functional,
)
def _batch_norm(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Any:
    x = cv.act(a["input"])
    check(not a.get("training"), "batch norm in training mode: call model.eval() before torch.export")
    check(
        a.get("running_mean") is not None and a.get("running_var") is not None,
        "batch norm without running statistics (track_running_stats=False) is not supported",
    )
    mean, var = cv.const(a["running_mean"], "running_mean"), cv.const(a["running_var"], "running_var")
    c = mean.shape[0]
    gamma = np.ones(c) if a["weight"] is None else cv.const(a["weight"], "weight")
    beta = np.zeros(c) if a["bias"] is None else cv.const(a["bias"], "bias")
    y = cv.emit(node, ir.BatchNorm(float(a["eps"])), [x], gamma=gamma, beta=beta, mean=mean, var=var)
    return maybe_tuple(node, y)


# ---------------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------------

_SIMPLE_ACTS = {
    aten.relu: ir.ActFn.RELU,
    aten.relu6: ir.ActFn.RELU6,
    aten.sigmoid: ir.ActFn.SIGMOID,
    aten.tanh: ir.ActFn.TANH,
}


@handles(*_SIMPLE_ACTS)
def _activation(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    return cv.emit(node, ir.Activation(_SIMPLE_ACTS[packet(node)]), [cv.act(cv.first(a))])


@handles(aten.leaky_relu)
def _leaky_relu(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    alpha = float(scalar(a["negative_slope"]))
    return cv.emit(node, ir.Activation(ir.ActFn.LEAKY_RELU, alpha), [cv.act(a["self"])])


@handles(aten.hardtanh, aten.clamp, aten.clamp_min)
def _clamp(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    if packet(node) is aten.hardtanh:
        lo, hi = a["min_val"], a["max_val"]
    else:
        lo, hi = a["min"], a.get("max")
    lo, hi = scalar(lo), scalar(hi)
    if lo == 0 and hi is None:
        fn = ir.ActFn.RELU
    elif lo == 0 and hi == 6:
        fn = ir.ActFn.RELU6
    else:
        raise ValueError(f"clamping to [{lo}, {hi}] is not supported; nearest: relu6 [0, 6] or relu [0, inf)")
    return cv.emit(node, ir.Activation(fn), [cv.act(cv.first(a))])


# ---------------------------------------------------------------------------------------------------
# pooling and reductions
# ---------------------------------------------------------------------------------------------------


def _window(cv: Converter, x: str, a: dict[str, Any]) -> tuple[ir.Pair, ir.Pair, ir.Pair]:
    check(cv.rank(x) == 4, "2-D pooling needs an (N, C, H, W) tensor")
    k = pair(a["kernel_size"])
    s = pair(a["stride"]) if a["stride"] else k
    return k, s, pair(a["padding"])


@handles(aten.max_pool2d, aten.max_pool2d_with_indices)
def _max_pool(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Any:
    x = cv.act(a["self"])
    k, s, (ph, pw) = _window(cv, x, a)
    check(pair(a["dilation"]) == (1, 1), "max_pool2d with dilation is not supported")
    eh = ew = 0
    if a["ceil_mode"]:
        _, h, w = cv.shapes[x]
        eh, ew = ceil_extra(h, k[0], s[0], ph), ceil_extra(w, k[1], s[1], pw)
    return maybe_tuple(node, cv.emit(node, ir.MaxPool2d(k, s, (ph, ph + eh, pw, pw + ew)), [x]))


@handles(aten.avg_pool2d)
def _avg_pool(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(a["self"])
    k, s, (ph, pw) = _window(cv, x, a)
    _, h, w = cv.shapes[x]
    ceil_matters = ceil_extra(h, k[0], s[0], ph) or ceil_extra(w, k[1], s[1], pw)
    check(not (a["ceil_mode"] and ceil_matters), "avg_pool2d with ceil_mode=True is not supported here")
    check(a["divisor_override"] is None, "avg_pool2d with divisor_override is not supported")
    op = ir.AvgPool2d(k, s, (ph, ph, pw, pw), bool(a["count_include_pad"]))
    return cv.emit(node, op, [x])


@handles(aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d)
def _adaptive_pool(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Any:
    x = cv.act(a["self"])
    check(cv.rank(x) == 4, "adaptive pooling needs an (N, C, H, W) tensor")
    is_max = packet(node) is aten.adaptive_max_pool2d
    c, h, w = cv.shapes[x]
    oh, ow = out_hw(node)
    if (oh, ow) == (1, 1):
        y = cv.emit(node, ir.GlobalMaxPool() if is_max else ir.GlobalAvgPool(), [x])
        y = cv.reshape(node, y.name, (c, 1, 1))
    elif h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        y = (
            cv.emit(node, ir.MaxPool2d(k, k) if is_max else ir.AvgPool2d(k, k), [x])
            if k != (1, 1)
            else Act(x)
        )
    else:
        raise ValueError(f"adaptive pooling {h}x{w} -> {oh}x{ow} needs integer windows; nearest: {_POOL_ALT}")
    return maybe_tuple(node, y)


@handles(aten.mean, aten.amax)
def _reduce_hw(cv: Converter, node: fx.Node, a: dict[str, Any]) -> Act:
    x = cv.act(a["self"])
    is_max = packet(node) is aten.amax
    dims = a.get("dim")
    check(
        cv.rank(x) == 4 and bool(dims) and norm_dims(dims, 4) == {2, 3},
        f"reductions are supported over (H, W) of an (N, C, H, W) tensor only (got dims {dims}); "
        f"nearest: {alternative('amax' if is_max else 'mean')}",
    )
    check(a.get("dtype") is None, "mean with a dtype argument is not supported")
    y = cv.emit(node, ir.GlobalMaxPool() if is_max else ir.GlobalAvgPool(), [x])
    return cv.reshape(node, y.name, (cv.shapes[x][0], 1, 1)) if a["keepdim"] else y
