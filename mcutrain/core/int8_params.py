"""The integer parameters of the int8 kernels, computed from quantization parameters as LiteRT does.

Each ``*_q8`` function takes the :class:`~mcutrain.core.quant.Quant` of an op's inputs, outputs and
weights (and its attributes) and returns the plain data that its C kernel takes: a frozen dataclass
whose fields are, name for name, the fields of the kernel's ``mt_<op>_q8_t`` struct
(``firmware/runtime/include/mt_kernels_s8.h``), or a lookup table. The arithmetic (float or double,
which operand first) is LiteRT's ``Prepare`` of each op, because the multipliers must be its bits:

* conv2d, depthwise: ``double(in_scale) * double(w_scale[c]) / double(out_scale)`` as a Q0.31
  multiplier and a shift;
* linear (FULLY_CONNECTED, per tensor or per channel): the same double, kept exactly (LiteRT's reference
  kernel multiplies the accumulator by it in double precision);
* add: ``left_shift = 20``, input multipliers ``scale / (2 * max scale)``, output
  ``2 * max scale / (2^20 * out_scale)``, all in double;
* leaky relu: ``in_scale * alpha / out_scale`` and ``in_scale / out_scale`` in float;
* fused activations: ``zero_point + round(f / scale)`` in float (``CalculateActivationRangeQuantized``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from mcutrain.core.int8_arith import (
    count_leading_zeros32,
    quantize_multiplier,
    round_to_int,
)
from mcutrain.core.quant import Quant

f32 = np.float32
QMIN, QMAX = -128, 127
#: Fused activations (TFLite's fused_activation_function, the IR's activation after a conv/linear/add).
FUSED_ACTS = ("none", "relu", "relu6", "relu_n1_to_1")


class Q8Params:
    """Base: the C struct's type name (``ctype``) and its fields in declaration order (what the code
    generator emits as a const initializer; tuple fields are the per-channel arrays it points to)."""

    ctype: ClassVar[str] = ""
    #: Element types of array fields other than ``int32_t``.
    pointee: ClassVar[dict[str, str]] = {}

    def c_fields(self) -> list[tuple[str, object]]:
        """``(name, value)`` per field; an array field's value is the tuple of its elements."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]  # type: ignore[arg-type]

    @classmethod
    def c_types(cls) -> list[tuple[str, str]]:
        """``(name, C type)`` per field, in declaration order."""
        out = []
        for f in fields(cls):  # type: ignore[arg-type]
            if str(f.type).startswith("tuple"):
                out.append((f.name, f"const {cls.pointee.get(f.name, 'int32_t')} *"))
            else:
                out.append((f.name, "float" if str(f.type) == "float" else "int32_t"))
        return out


@dataclass(frozen=True)
class ConvQ8(Q8Params):
    """``mt_conv2d_q8_t``: ``acc * real[c]`` as a Q0.31 multiplier and a shift per output channel."""

    ctype: ClassVar[str] = "mt_conv2d_q8_t"

    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    mult: tuple[int, ...]
    shift: tuple[int, ...]


@dataclass(frozen=True)
class LinearQ8(Q8Params):
    """``mt_linear_q8_t``: per output channel the double ``scale = scale_mant * 2^scale_exp``
    (``scale_mant`` the 53-bit significand, 0 for a zero scale) that multiplies the accumulator."""

    ctype: ClassVar[str] = "mt_linear_q8_t"
    pointee: ClassVar[dict[str, str]] = {"scale_mant": "uint64_t"}

    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    scale_mant: tuple[int, ...]
    scale_exp: tuple[int, ...]

    def scales(self) -> np.ndarray:
        """The scales as float64 (exact)."""
        return np.array([math.ldexp(m, e) for m, e in zip(self.scale_mant, self.scale_exp, strict=True)])


@dataclass(frozen=True)
class AddQ8(Q8Params):
    """``mt_add_q8_t``: ``y = clamp(out_zp + M_out(M_a((a - a_zp) << left_shift) + M_b(...)))``."""

    ctype: ClassVar[str] = "mt_add_q8_t"

    a_zp: int
    b_zp: int
    out_zp: int
    left_shift: int
    a_mult: int
    a_shift: int
    b_mult: int
    b_shift: int
    out_mult: int
    out_shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class PoolQ8(Q8Params):
    """``mt_pool_q8_t`` (max and average pooling: input and output share scale and zero point)."""

    ctype: ClassVar[str] = "mt_pool_q8_t"

    act_min: int
    act_max: int


@dataclass(frozen=True)
class MeanQ8(Q8Params):
    """``mt_global_avg_pool_q8_t``: ``y = clamp(out_zp + M(sum(x) - in_zp * hw))``, ``M`` including
    the division by ``hw`` (LiteRT's ``QuantizedMeanOrSum``)."""

    ctype: ClassVar[str] = "mt_global_avg_pool_q8_t"

    in_zp: int
    out_zp: int
    mult: int
    shift: int


@dataclass(frozen=True)
class SoftmaxQ8(Q8Params):
    """``mt_softmax_q8_t``: the input scale times beta as a Q5.26 rescaling, and the smallest input
    difference to the row maximum that still counts (LiteRT's reference int8 softmax)."""

    ctype: ClassVar[str] = "mt_softmax_q8_t"

    mult: int
    left_shift: int
    diff_min: int


@dataclass(frozen=True)
class QuantizeQ8(Q8Params):
    """``mt_quantize_q8_t`` (also ``mt_dequantize_q8_t``): float32 scale and zero point."""

    ctype: ClassVar[str] = "mt_quantize_q8_t"

    scale: float
    zp: int


@dataclass(frozen=True)
class LeakyReluQ8(Q8Params):
    """``mt_leaky_relu_q8_t``: identity and alpha branches, each a multiplier and shift."""

    ctype: ClassVar[str] = "mt_leaky_relu_q8_t"

    in_zp: int
    out_zp: int
    identity_mult: int
    identity_shift: int
    alpha_mult: int
    alpha_shift: int


def _scale(q: Quant) -> float:
    if q.per_channel:
        raise ValueError(f"expected a per-tensor quantization, got {len(q.scale)} scales")
    return float(f32(q.scale[0]))


def _zp(q: Quant) -> int:
    if q.dtype != "int8":
        raise ValueError(f"expected an int8 tensor, got {q.dtype}")
    return int(q.zero_point[0])


def activation_range(act: str | None, y: Quant) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized``: the fused activation's clamp in output integers."""
    act = str(act.value if hasattr(act, "value") else act or "none")  # ir.ActFn or a plain name
    scale, zp = f32(_scale(y)), _zp(y)

    def q(v: float) -> int:
        return zp + int(round_to_int(f32(v) / scale))

    if act == "none":
        return QMIN, QMAX
    if act == "relu":
        return max(QMIN, q(0.0)), QMAX
    if act == "relu6":
        return max(QMIN, q(0.0)), min(QMAX, q(6.0))
    if act == "relu_n1_to_1":
        return max(QMIN, q(-1.0)), min(QMAX, q(1.0))
    raise ValueError(f"fused activation {act!r} has no integer clamp; one of {', '.join(FUSED_ACTS)}")


def double_parts(v: float) -> tuple[int, int]:
    """A positive double as ``(significand, exponent)``, ``v = significand * 2^exponent`` exactly, the
    significand in ``[2^52, 2^53)`` (``(0, 0)`` for zero)."""
    if v == 0.0:
        return 0, 0
    m, e = math.frexp(v)
    if m <= 0 or not math.isfinite(v):
        raise ValueError(f"scale {v!r} is not positive and finite")
    return int(m * 2.0**53), e - 53


def _weight_scales(w: Quant, channels: int) -> list[float]:
    if w.per_channel:
        if len(w.scale) != channels:
            raise ValueError(f"{len(w.scale)} weight scales for {channels} output channels")
        return [float(f32(s)) for s in w.scale]
    return [float(f32(w.scale[0]))] * channels


def conv2d_q8(x: Quant, w: Quant, y: Quant, out_channels: int, act: str | None = None) -> ConvQ8:
    """CONV_2D and DEPTHWISE_CONV_2D (``PopulateConvolutionQuantizationParams``), also per-tensor
    weights (their scale broadcast to every channel, as LiteRT does)."""
    xs, ys = _scale(x), _scale(y)
    ms = [quantize_multiplier(xs * ws / ys) for ws in _weight_scales(w, out_channels)]
    mult, shift = tuple(m for m, _ in ms), tuple(s for _, s in ms)
    return ConvQ8(_zp(x), _zp(y), *activation_range(act, y), mult, shift)


def linear_q8(x: Quant, w: Quant, y: Quant, out_features: int, act: str | None = None) -> LinearQ8:
    """FULLY_CONNECTED, per-tensor or per-channel weights: LiteRT's reference kernel rounds
    ``double(acc) * scale[o]`` with ``scale[o] = double(in_scale) * double(w_scale[o]) /
    double(out_scale)`` (not the integer multiplier its optimized kernel and TFLM use). The scales are
    kept exactly, as the significand and exponent of the double."""
    xs, ys = _scale(x), _scale(y)
    parts = [double_parts(xs * ws / ys) for ws in _weight_scales(w, out_features)]
    mant, exp = tuple(m for m, _ in parts), tuple(e for _, e in parts)
    return LinearQ8(_zp(x), _zp(y), *activation_range(act, y), mant, exp)


def add_q8(a: Quant, b: Quant, y: Quant, act: str | None = None) -> AddQ8:
    """ADD of two int8 tensors of the same shape (``add.cc``, 8-bit general rescaling)."""
    left_shift = 20
    twice_max = 2.0 * max(_scale(a), _scale(b))
    am, ash = quantize_multiplier(_scale(a) / twice_max)
    bm, bsh = quantize_multiplier(_scale(b) / twice_max)
    om, osh = quantize_multiplier(twice_max / ((1 << left_shift) * _scale(y)))
    for s in (ash, bsh, osh):
        if s > 0:
            raise ValueError("add: a multiplier >= 1 (the output scale is far below the input scales)")
    return AddQ8(_zp(a), _zp(b), _zp(y), left_shift, am, ash, bm, bsh, om, osh, *activation_range(act, y))


def _same_quant(x: Quant, y: Quant, what: str) -> None:
    if _scale(x) != _scale(y) or _zp(x) != _zp(y):
        raise ValueError(f"{what}: int8 input and output must share scale and zero point, got {x} and {y}")


def pool_q8(x: Quant, y: Quant, act: str | None = None) -> PoolQ8:
    """AVERAGE_POOL_2D, MAX_POOL_2D: only the fused activation's clamp."""
    _same_quant(x, y, "pooling")
    return PoolQ8(*activation_range(act, y))


def global_avg_pool_q8(x: Quant, y: Quant, hw: int) -> MeanQ8:
    """MEAN over H and W of ``hw`` elements: the multiplier ``in_scale / out_scale`` with the division by
    ``hw`` folded in as LiteRT's ``QuantizedMeanOrSum`` folds it."""
    mult, shift = quantize_multiplier(_scale(x) / _scale(y))
    s = min(31 - count_leading_zeros32(hw), 32, 31 + shift)
    return MeanQ8(_zp(x), _zp(y), (mult << s) // hw, shift - s)


def softmax_q8(x: Quant, y: Quant, beta: float = 1.0) -> SoftmaxQ8:
    """SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), LiteRT's reference kernel: the
    gemmlowp fixed-point algorithm (``PreprocessSoftmaxScaling``, ``CalculateInputRadius``)."""
    if _zp(y) != -128 or abs(_scale(y) - 1 / 256) > 0.001 / 256:
        raise ValueError(f"softmax: int8 output must have scale 1/256 and zero point -128, got {y}")
    integer_bits = 5
    real = min(float(f32(beta)) * _scale(x) * (1 << (31 - integer_bits)), 2.0**31 - 1.0)
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:  # LiteRT checks the same (QuantizeMultiplierGreaterThanOne)
        raise ValueError(f"softmax: input scale * beta = {beta * _scale(x)!r} is below 2^-26")
    radius = ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    return SoftmaxQ8(mult, left_shift, -int(np.floor(radius)))


def quantize_q8(y: Quant) -> QuantizeQ8:
    """QUANTIZE float32 -> int8 (and DEQUANTIZE with the input's Quant)."""
    return QuantizeQ8(_scale(y), _zp(y))


dequantize_q8 = quantize_q8


def pad_value(x: Quant, y: Quant) -> int:
    """PAD of an int8 tensor pads with the zero point (input and output share quantization)."""
    _same_quant(x, y, "pad")
    return _zp(y)


def leaky_relu_q8(x: Quant, y: Quant, alpha: float) -> LeakyReluQ8:
    """LEAKY_RELU int8 (``LeakyReluPrepare``: both multipliers computed in float)."""
    xs, ys = f32(_scale(x)), f32(_scale(y))
    im, ish = quantize_multiplier(float(xs / ys))
    am, ash = quantize_multiplier(float(xs * f32(alpha) / ys))
    return LeakyReluQ8(_zp(x), _zp(y), im, ish, am, ash)


def requant_table(x: Quant, y: Quant, qmin: int = QMIN, qmax: int = QMAX) -> tuple[int, ...]:
    """The value of every input integer ``q`` in ``[qmin, qmax]`` requantized from ``x`` to ``y`` as
    LiteRT's ``ConcatenationWithScaling`` does: ``round(q * s + (-zp * s)) + out_zp`` in float32 with
    ``s = in_scale * (1 / out_scale)``, clamped. Entry ``q - qmin``."""
    inv = f32(1.0) / f32(_scale(y))
    s = f32(_scale(x)) * inv
    bias = f32(-int(x.zero_point[0])) * s
    q = np.arange(qmin, qmax + 1, dtype=np.int64)
    v = round_to_int(q.astype(f32) * s + bias) + int(y.zero_point[0])
    return tuple(int(t) for t in np.clip(v, qmin, qmax))


def concat_q8(xs: Sequence[Quant], y: Quant) -> list[tuple[int, ...] | None]:
    """CONCATENATION: per input, None (same quantization as the output: a plain copy) or the 256-entry
    table ``t[q + 128]`` of :func:`requant_table`. LiteRT's int8 CONCATENATION refuses inputs whose
    quantization differs from the output's; its uint8 kernel requantizes them with this formula."""
    return [None if (_scale(x) == _scale(y) and _zp(x) == _zp(y)) else requant_table(x, y) for x in xs]


def _libm_expf():  # type: ignore[no-untyped-def]
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    fn = lib.expf
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn


def logistic_q8(x: Quant, y: Quant) -> tuple[int, ...]:
    """LOGISTIC int8 -> int8 (output 1/256, zero point -128): LiteRT's reference kernel is a table
    (``LUTPopulate``) of ``1 / (1 + expf(-v))`` in float, computed here with the C library's ``expf``
    as LiteRT computes it. Returns ``t[q + 128]``."""
    if _zp(y) != -128 or _scale(y) != 1 / 256:
        raise ValueError(f"logistic: int8 output must have scale 1/256 and zero point -128, got {y}")
    expf = _libm_expf()
    xs, xz, inv = f32(_scale(x)), _zp(x), f32(1.0) / f32(_scale(y))
    table = []
    for q in range(QMIN, QMAX + 1):
        v = xs * f32(q - xz)
        r = f32(1.0) / (f32(1.0) + f32(expf(float(-v))))
        t = int(round_to_int(r * inv)) + _zp(y)
        table.append(min(max(t, QMIN), QMAX))
    return tuple(table)
