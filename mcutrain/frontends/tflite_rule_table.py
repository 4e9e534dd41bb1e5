"""The tables of the TFLite frontend: the conversion rule of every supported builtin operator
(:data:`RULES`), the operands that only carry a shape, and the nearest supported alternative for common
unsupported operators (:data:`HINTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ai_edge_litert.schema_py_generated import BuiltinOperator as BO

from mcutrain.core import ir
from mcutrain.frontends.tflite_rules import (
    OpView,
    activation,
    add,
    average_pool_2d,
    concatenation,
    conv_2d,
    depthwise_conv_2d,
    fully_connected,
    max_pool_2d,
    mean,
    reduce_max,
    softmax,
    transpose_conv,
)
from mcutrain.frontends.tflite_shape_rules import (
    dequantize,
    pad,
    padv2,
    quantize,
    reshape,
    resize_bilinear,
    resize_nearest_neighbor,
)

if TYPE_CHECKING:
    from mcutrain.frontends.tflite import Converter


Rule = Callable[["Converter", OpView], None]

RULES: dict[int, Rule] = {
    BO.CONV_2D: conv_2d,
    BO.DEPTHWISE_CONV_2D: depthwise_conv_2d,
    BO.TRANSPOSE_CONV: transpose_conv,
    BO.FULLY_CONNECTED: fully_connected,
    BO.ADD: add,
    BO.CONCATENATION: concatenation,
    BO.MAX_POOL_2D: max_pool_2d,
    BO.AVERAGE_POOL_2D: average_pool_2d,
    BO.MEAN: mean,
    BO.REDUCE_MAX: reduce_max,
    BO.RESHAPE: reshape,
    BO.SQUEEZE: reshape,
    BO.SOFTMAX: softmax,
    BO.RELU: activation(ir.ActFn.RELU),
    BO.RELU6: activation(ir.ActFn.RELU6),
    BO.LEAKY_RELU: activation(ir.ActFn.LEAKY_RELU),
    BO.LOGISTIC: activation(ir.ActFn.SIGMOID),
    BO.TANH: activation(ir.ActFn.TANH),
    BO.PAD: pad,
    BO.PADV2: padv2,
    BO.RESIZE_NEAREST_NEIGHBOR: resize_nearest_neighbor,
    BO.RESIZE_BILINEAR: resize_bilinear,
    BO.DEQUANTIZE: dequantize,
    BO.QUANTIZE: quantize,
}

#: Operand positions that only carry a shape: the rules read the output tensor's static shape instead,
#: so integer subgraphs computing them (SHAPE -> STRIDED_SLICE -> PACK) are dropped.
SHAPE_OPERANDS: dict[int, int] = {
    BO.RESHAPE: 1,
    BO.TRANSPOSE_CONV: 0,
    BO.RESIZE_BILINEAR: 1,
    BO.RESIZE_NEAREST_NEIGHBOR: 1,
}

_SCALE = (
    "fold the scale into the preceding CONV_2D/FULLY_CONNECTED weights (a per-channel scale and "
    "offset is the IR's channel_affine)"
)
_OFFSET = "fold the offset into the preceding layer's bias, or normalize inputs on the host"

#: The nearest supported alternative for common unsupported ops.
HINTS: dict[int, str] = {
    BO.MUL: _SCALE,
    BO.DIV: _SCALE,
    BO.SUB: _OFFSET,
    BO.HARD_SWISH: "use RELU6 (or RELU) instead of hard-swish",
    BO.GELU: "use RELU instead of GELU",
    BO.ELU: "use LEAKY_RELU instead of ELU",
    BO.PRELU: "use LEAKY_RELU (one shared slope) instead of PRELU",
    BO.RELU_N1_TO_1: "use TANH or RELU6",
    BO.RELU_0_TO_1: "use LOGISTIC or RELU6",
    BO.MIRROR_PAD: "use PAD (zero padding) or SAME-padded convolutions",
    BO.SUM: "use MEAN (global average pooling) over H and W",
    BO.REDUCE_MIN: "use REDUCE_MAX or MEAN over H and W",
    BO.BATCH_MATMUL: "use FULLY_CONNECTED (Dense) with constant weights",
    BO.TRANSPOSE: "keep tensors NHWC; flatten with RESHAPE before FULLY_CONNECTED instead of transposing",
    BO.L2_NORMALIZATION: "normalize on the host, or drop the normalization before SOFTMAX",
    BO.CONV_3D: "use CONV_2D",
    BO.UNIDIRECTIONAL_SEQUENCE_LSTM: "recurrent layers are not supported; use CONV_2D over the time axis",
    BO.SPLIT: "use separate CONV_2D branches on the same input and CONCATENATION",
    BO.SPLIT_V: "use separate CONV_2D branches on the same input and CONCATENATION",
    BO.STRIDED_SLICE: "crop with a VALID convolution or pooling instead of slicing",
    BO.SLICE: "crop with a VALID convolution or pooling instead of slicing",
    BO.MAXIMUM: "use RELU/RELU6 for clamping",
    BO.MINIMUM: "use RELU6 for clamping",
    BO.SQUARED_DIFFERENCE: "layer normalization is not supported; use batch norm folded into the conv",
    BO.RSQRT: "layer normalization is not supported; use batch norm folded into the conv",
    BO.DEPTH_TO_SPACE: "use TRANSPOSE_CONV or RESIZE_NEAREST_NEIGHBOR (integer factor) for upsampling",
    BO.SPACE_TO_DEPTH: "use a strided CONV_2D for downsampling",
}


def supported_names(names: dict[int, str]) -> str:
    return ", ".join(sorted(names.get(c, str(c)) for c in RULES))


def nearest_alternative(code: int, names: dict[int, str]) -> str:
    return HINTS.get(code, f"supported ops are {supported_names(names)}")
