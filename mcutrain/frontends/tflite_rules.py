"""Per-operator conversion rules of the TFLite frontend (see :mod:`mcutrain.frontends.tflite`).

Each rule reads one TFLite operator through the :class:`~mcutrain.frontends.tflite.Converter` context
and emits IR nodes. TFLite tensors are NHWC with a batch axis of 1; a :class:`Value` records the
per-sample TFLite shape of each converted tensor next to its IR (channels-first) name.
This module holds :class:`Value`, :class:`OpView`, the shape and padding helpers and the rules of
convolutions, dense layers, elementwise ops, pooling and reductions; the shape, padding and resizing
rules are in :mod:`mcutrain.frontends.tflite_shape_rules`, the tables of rules and hints in
:mod:`mcutrain.frontends.tflite_rule_table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_edge_litert.schema_py_generated import ActivationFunctionType as Act
from ai_edge_litert.schema_py_generated import Padding

from mcutrain.core import ir

if TYPE_CHECKING:
    from mcutrain.frontends.tflite import Converter

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Value:
    """A converted activation tensor.

    ``shape`` is the TFLite per-sample shape: ``(H, W, C)`` for images, ``(F,)`` for vectors; the IR
    tensor ``name`` is ``(C, H, W)`` or ``(F,)``. ``flat_hwc`` is set when an NHWC ``(H, W, C)`` tensor
    with ``H*W > 1`` was flattened: TFLite's vector is in HWC order, the IR's in CHW order.
    """

    name: str
    shape: Shape
    flat_hwc: tuple[int, int, int] | None = None

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    @property
    def ir_shape(self) -> Shape:
        return ir_shape(self.shape)


@dataclass(frozen=True)
class OpView:
    """One TFLite operator: its position, builtin code and name, tensor indices and options."""

    index: int
    code: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any

    def opt(self, field: str, default: Any = None) -> Any:
        return getattr(self.options, field, default) if self.options is not None else default


def ir_shape(tfl_shape: Shape) -> Shape:
    """Per-sample TFLite shape -> IR shape: ``(H, W, C) -> (C, H, W)``, vectors unchanged."""
    if len(tfl_shape) == 3:
        h, w, c = tfl_shape
        return (c, h, w)
    return tuple(tfl_shape)


def same_padding(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding of one axis: ``(before, after)``, the extra pixel after."""
    eff = (k - 1) * d + 1
    out = (size + s - 1) // s
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def window_padding(
    padding: int, hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int], d: tuple[int, int] = (1, 1)
) -> ir.Pad4:
    if padding == Padding.VALID:
        return (0, 0, 0, 0)
    t, b = same_padding(hw[0], k[0], s[0], d[0])
    l, r = same_padding(hw[1], k[1], s[1], d[1])
    return (t, b, l, r)


def transpose_conv_crop(padding: int, in_size: int, out_size: int, k: int, s: int) -> tuple[int, int]:
    """Crop ``(before, after)`` of the full transposed-conv output ``(in-1)*s + k`` to ``out_size``.

    TFLite derives ``before`` as the padding of the forward conv ``out_size -> in``; ``after`` is what
    remains (negative: the output extends past the full size with zeros, like ``output_padding``).
    """
    n = (out_size + s - 1) // s if padding == Padding.SAME else (out_size - k + s) // s
    before = max((n - 1) * s + k - out_size, 0) // 2
    return before, (in_size - 1) * s + k - before - out_size


FUSED: dict[int, ir.ActFn] = {Act.RELU: ir.ActFn.RELU, Act.RELU6: ir.ActFn.RELU6, Act.TANH: ir.ActFn.TANH}


# ---------------------------------------------------------------------------------------------------
# Convolutions and dense layers
# ---------------------------------------------------------------------------------------------------


def _conv_geometry(op: OpView) -> tuple[tuple[int, int], tuple[int, int]]:
    stride = (int(op.opt("strideH", 1)), int(op.opt("strideW", 1)))
    dilation = (int(op.opt("dilationHFactor", 1) or 1), int(op.opt("dilationWFactor", 1) or 1))
    return stride, dilation


def conv_2d(cx: Converter, op: OpView) -> None:
    x = cx.spatial(op, 0)
    w = cx.weight(op, 1, "filter")  # [Cout, kh, kw, Cin/groups]
    if w.ndim != 4 or x.shape[2] % w.shape[3]:
        raise cx.fail(op, f"filter shape {w.shape} does not match input channels {x.shape[2]}")
    cout, kh, kw, cin_g = w.shape
    stride, dil = _conv_geometry(op)
    pad = window_padding(op.opt("padding"), x.shape[:2], (kh, kw), stride, dil)
    conv = ir.Conv2d(cout, (kh, kw), stride, pad, dil, groups=x.shape[2] // cin_g)
    weight = w.transpose(0, 3, 1, 2)
    y = cx.emit(cx.hint(op, 1), conv, [x], weight=weight, bias=cx.bias(op, 2, cout))
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


def depthwise_conv_2d(cx: Converter, op: OpView) -> None:
    x = cx.spatial(op, 0)
    w = cx.weight(op, 1, "filter")  # [1, kh, kw, Cin * multiplier]
    cin = x.shape[2]
    if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] % cin:
        raise cx.fail(op, f"depthwise filter shape {w.shape} does not match input channels {cin}")
    _, kh, kw, cout = w.shape
    stride, dil = _conv_geometry(op)
    pad = window_padding(op.opt("padding"), x.shape[:2], (kh, kw), stride, dil)
    conv = ir.Conv2d(cout, (kh, kw), stride, pad, dil, groups=cin)
    weight = w[0].transpose(2, 0, 1)[:, None]  # output channel ic*M + m belongs to group ic
    y = cx.emit(cx.hint(op, 1), conv, [x], weight=weight, bias=cx.bias(op, 2, cout))
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


def transpose_conv(cx: Converter, op: OpView) -> None:
    x = cx.spatial(op, 2)  # inputs: output_shape, weights, input[, bias]
    w = cx.weight(op, 1, "filter")  # [Cout, kh, kw, Cin]
    if w.ndim != 4 or w.shape[3] != x.shape[2]:
        raise cx.fail(op, f"filter shape {w.shape} does not match input channels {x.shape[2]}")
    cout, kh, kw, _ = w.shape
    ho, wo, _ = cx.out_shape(op)
    s = (int(op.opt("strideH", 1)), int(op.opt("strideW", 1)))
    t, b = transpose_conv_crop(op.opt("padding"), x.shape[0], ho, kh, s[0])
    l, r = transpose_conv_crop(op.opt("padding"), x.shape[1], wo, kw, s[1])
    conv = ir.ConvTranspose2d(cout, (kh, kw), s, (t, b, l, r))
    weight = w.transpose(3, 0, 1, 2)
    y = cx.emit(cx.hint(op, 1), conv, [x], weight=weight, bias=cx.bias(op, 3, cout))
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


def fully_connected(cx: Converter, op: OpView) -> None:
    if op.opt("weightsFormat", 0) != 0:
        raise cx.fail(op, "shuffled weight formats are not supported; export plain float32 weights")
    x = cx.value(op, 0, allow_flat=True)
    if x.spatial:  # FULLY_CONNECTED flattens a 4-D input implicitly
        x = cx.flatten(op, x)
    w = cx.weight(op, 1, "weights")  # [out, in]
    if w.ndim != 2 or w.shape[1] != x.shape[0]:
        raise cx.fail(op, f"weights of shape {w.shape} do not match an input of {x.shape[0]} features")
    if x.flat_hwc is not None:  # reorder the input columns from HWC to the IR's CHW flatten order
        h, wd, c = x.flat_hwc
        w = w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
        x = Value(x.name, x.shape)
    y = cx.emit(cx.hint(op, 1), ir.Linear(w.shape[0]), [x], weight=w, bias=cx.bias(op, 2, w.shape[0]))
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


# ---------------------------------------------------------------------------------------------------
# Elementwise, pooling and reductions
# ---------------------------------------------------------------------------------------------------


def add(cx: Converter, op: OpView) -> None:
    for pos in (0, 1):
        if cx.is_const(op, pos):
            raise cx.fail(
                op, "ADD with a constant operand is not supported; fold it into the preceding layer's bias"
            )
    a, b = cx.value(op, 0, allow_flat=True), cx.value(op, 1, allow_flat=True)
    if a.shape != b.shape or a.flat_hwc != b.flat_hwc:
        raise cx.fail(op, f"ADD needs equal shapes (no broadcasting), got {a.shape} and {b.shape}")
    y = cx.emit(cx.hint(op), ir.Add(), [a, b])
    cx.finish(op, y, op.opt("fusedActivationFunction", 0), flat_hwc=a.flat_hwc)


def concatenation(cx: Converter, op: OpView) -> None:
    xs = [cx.value(op, i) for i in range(len(op.inputs))]
    rank = len(xs[0].shape) + 1
    if int(op.opt("axis", 0)) % rank != rank - 1:
        raise cx.fail(
            op, f"only concatenation along channels (axis -1) is supported, got axis {op.opt('axis')}"
        )
    y = cx.emit(cx.hint(op), ir.Concat(), xs)
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


def _pool(cx: Converter, op: OpView, cls: type[ir.MaxPool2d] | type[ir.AvgPool2d]) -> None:
    x = cx.spatial(op, 0)
    k = (int(op.opt("filterHeight", 1)), int(op.opt("filterWidth", 1)))
    s = (int(op.opt("strideH", 1)), int(op.opt("strideW", 1)))
    pad = window_padding(op.opt("padding"), x.shape[:2], k, s)
    pool = cls(k, s, pad) if cls is ir.MaxPool2d else ir.AvgPool2d(k, s, pad, count_include_pad=False)
    y = cx.emit(cx.hint(op), pool, [x])
    cx.finish(op, y, op.opt("fusedActivationFunction", 0))


def max_pool_2d(cx: Converter, op: OpView) -> None:
    _pool(cx, op, ir.MaxPool2d)


def average_pool_2d(cx: Converter, op: OpView) -> None:
    _pool(cx, op, ir.AvgPool2d)


def _reduce(cx: Converter, op: OpView, pool: ir.Op) -> None:
    x = cx.value(op, 0)
    axes = {int(a) % 4 for a in cx.ints(op, 1, "axes").ravel()}
    if not x.spatial or axes != {1, 2}:
        raise cx.fail(
            op,
            f"only a reduction over H and W of a 4-D tensor is supported (axes 1, 2), got "
            f"axes {sorted(axes)} of a rank-{len(x.shape) + 1} tensor",
        )
    y = cx.emit(cx.hint(op), pool, [x])
    if op.opt("keepDims", False):
        y = cx.emit(f"{y.name}_keepdims", ir.Reshape((x.shape[2], 1, 1)), [y])
    cx.finish(op, y)


def mean(cx: Converter, op: OpView) -> None:
    _reduce(cx, op, ir.GlobalAvgPool())


def reduce_max(cx: Converter, op: OpView) -> None:
    _reduce(cx, op, ir.GlobalMaxPool())


def activation(fn: ir.ActFn) -> Callable[[Converter, OpView], None]:
    def rule(cx: Converter, op: OpView) -> None:
        x = cx.value(op, 0, allow_flat=True)
        alpha = float(op.opt("alpha", 0.0)) if fn is ir.ActFn.LEAKY_RELU else 0.0
        y = cx.emit(cx.hint(op), ir.Activation(fn, alpha), [x])
        cx.finish(op, y, flat_hwc=x.flat_hwc)

    return rule


def softmax(cx: Converter, op: OpView) -> None:
    beta = float(op.opt("beta", 1.0))
    if abs(beta - 1.0) > 1e-6:
        raise cx.fail(
            op,
            f"SOFTMAX with beta={beta} is not supported (only beta=1); fold 1/beta into "
            "the preceding layer's weights",
        )
    x = cx.value(op, 0)
    if x.spatial:
        raise cx.fail(op, "SOFTMAX over a 4-D tensor is not supported; flatten (RESHAPE) to 2-D first")
    cx.finish(op, cx.emit(cx.hint(op), ir.Softmax(), [x]))
