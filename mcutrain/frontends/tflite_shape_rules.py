"""Shape, padding and resizing rules of the TFLite frontend (and DEQUANTIZE of float16 weights). The
other rules, :class:`~mcutrain.frontends.tflite_rules.Value` and
:class:`~mcutrain.frontends.tflite_rules.OpView` are in :mod:`mcutrain.frontends.tflite_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert.schema_py_generated import TensorType

from mcutrain.core import ir
from mcutrain.frontends.tflite_rules import OpView, Shape, Value, ir_shape

if TYPE_CHECKING:
    from mcutrain.frontends.tflite import Converter


# ---------------------------------------------------------------------------------------------------
# Shape, padding and resizing
# ---------------------------------------------------------------------------------------------------


def reshape(cx: Converter, op: OpView) -> None:
    """RESHAPE / SQUEEZE: the target is the output tensor's static shape (shape operands are ignored)."""
    x = cx.value(op, 0, allow_flat=True)
    out = cx.out_shape(op)
    if out == x.shape:
        cx.alias(op, x)
    elif x.spatial and len(out) == 1:
        cx.alias(op, cx.flatten(op, x))
    elif x.flat_hwc is not None and out == x.flat_hwc:  # un-flatten: the IR data is CHW already
        cx.finish(op, cx.emit(cx.hint(op), ir.Reshape(ir_shape(out)), [Value(x.name, x.shape)]))
    elif _keeps_channel_order(x, out):
        cx.finish(op, cx.emit(cx.hint(op), ir.Reshape(ir_shape(out)), [x]))
    else:
        raise cx.fail(
            op,
            f"reshaping NHWC {x.shape} to {out} mixes channels and positions, which the "
            "channels-first IR cannot express; keep reshapes to flatten-before-dense or H/W only",
        )


def _keeps_channel_order(x: Value, out: Shape) -> bool:
    """True when the NHWC reshape maps to the same CHW reshape: channels stay the innermost axis."""
    if x.flat_hwc is not None:
        return False
    if x.spatial and len(out) == 3:
        return out[2] == x.shape[2]
    # a vector to (1, 1, C), or to (H, W, 1): with one channel HWC and CHW order are the same
    return not x.spatial and len(out) == 3 and (out[:2] == (1, 1) or out[2] == 1)


def _pad(cx: Converter, op: OpView, value: float) -> None:
    x = cx.spatial(op, 0)
    p = cx.ints(op, 1, "paddings")
    if p.shape != (4, 2) or p[0].any() or p[3].any() or (p < 0).any():
        raise cx.fail(op, f"only non-negative spatial padding of a 4-D tensor is supported, got {p.tolist()}")
    pad = ir.Pad((int(p[1, 0]), int(p[1, 1]), int(p[2, 0]), int(p[2, 1])), value)
    cx.finish(op, cx.emit(cx.hint(op), pad, [x]))


def pad(cx: Converter, op: OpView) -> None:
    _pad(cx, op, 0.0)


def padv2(cx: Converter, op: OpView) -> None:
    v = cx.weight(op, 2, "constant value") if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(1)
    if v.size != 1:
        raise cx.fail(op, "PADV2 needs a scalar constant value")
    _pad(cx, op, float(v.ravel()[0]))


def _resize_scale(cx: Converter, op: OpView, x: Value) -> tuple[int, int]:
    ho, wo, _ = cx.out_shape(op)
    h, w, _ = x.shape
    if ho % h or wo % w:
        raise cx.fail(op, f"only integer upscaling is supported, got {h}x{w} -> {ho}x{wo}")
    return ho // h, wo // w


def resize_nearest_neighbor(cx: Converter, op: OpView) -> None:
    x = cx.spatial(op, 0)
    scale = _resize_scale(cx, op, x)
    if op.opt("alignCorners", False) and scale != (1, 1):
        raise cx.fail(
            op,
            "nearest resize with align_corners=True rounds source positions differently "
            "from the IR's nearest upsampling; re-export with align_corners=False",
        )
    # With integer factors floor(y/s) == floor((y+0.5)/s): half_pixel_centers does not matter.
    cx.finish(op, cx.emit(cx.hint(op), ir.Upsample(scale, ir.UpsampleMode.NEAREST), [x]))


def resize_bilinear(cx: Converter, op: OpView) -> None:
    x = cx.spatial(op, 0)
    scale = _resize_scale(cx, op, x)
    align = bool(op.opt("alignCorners", False))
    if not align and not op.opt("halfPixelCenters", False) and scale != (1, 1):
        raise cx.fail(
            op,
            "bilinear resize with align_corners=False and half_pixel_centers=False (the "
            "legacy TF1 sampling) has no PyTorch equivalent; re-export with "
            "half_pixel_centers=True (TF2 tf.image.resize / Keras UpSampling2D) or align_corners",
        )
    up = ir.Upsample(scale, ir.UpsampleMode.BILINEAR, align_corners=align)
    cx.finish(op, cx.emit(cx.hint(op), up, [x]))


def dequantize(cx: Converter, op: OpView) -> None:
    """A constant float16 weight becomes float32; an int8 activation keeps its integers (the IR's tensors
    carry real values: the dequantized output is the same tensor)."""
    src = op.inputs[0]
    if cx.tensor(src).type == TensorType.FLOAT16 and cx.is_const(op, 0):
        cx.fold(op.outputs[0], cx.raw_const(src).astype(np.float32))
        return
    if cx.tensor(src).type != TensorType.INT8 or cx.is_const(op, 0):
        raise cx.fail(op, "DEQUANTIZE is supported for int8 activations and constant float16 weights")
    x = cx.value(op, 0, allow_flat=True)
    cx.values[op.outputs[0]] = x


def quantize(cx: Converter, op: OpView) -> None:
    """float -> int8 at the model's input: the input tensor takes the int8 quantization (the graph's input
    carries real values and is quantized as QUANTIZE does). A requantization int8 -> int8 is refused."""
    x = cx.value(op, 0, allow_flat=True)
    if cx.tensor(op.inputs[0]).type != TensorType.FLOAT32 or x.name in cx.quant:
        raise cx.fail(op, "QUANTIZE between two integer scales is not supported; only float -> int8")
    cx.alias(op, x)
