"""TFLite's integer requantization arithmetic, exactly, on NumPy int64 arrays.

These are the primitives of LiteRT's reference int8 kernels (``tflite/kernels/internal/common.h``,
``quantization_util.cc``) and of gemmlowp's fixed-point library (``fixedpoint/fixedpoint.h``), in the
"double rounding" flavour LiteRT builds by default (``TFLITE_SINGLE_ROUNDING`` off):

* :func:`quantize_multiplier`: a real multiplier -> ``(multiplier, shift)``, ``multiplier`` a Q0.31
  integer in ``[2^30, 2^31)`` and ``real ~= multiplier * 2^(shift - 31)``;
* :func:`multiply_by_quantized_multiplier`: ``x * real`` for an int32 ``x``, as
  ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, multiplier), right)``;
* the fixed-point ``exp`` and reciprocal that LiteRT's reference int8 softmax uses.

Values are int64 arrays holding int32 quantities; results are int64 arrays with int32 values. Every
helper mirrors one C function in ``firmware/runtime/src/mt_s8_internal.h``; docs/quantization.md
describes the scheme.
"""

from __future__ import annotations

import math

import numpy as np

from mcutrain.core.quant import round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

ArrayLike = np.ndarray | int


def _i64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x: ArrayLike) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (what an int32 register holds)."""
    return ((_i64(x) + 2**31) & (2**32 - 1)) - 2**31


def round_double(v: float) -> int:
    """``std::round`` of a double (halves away from zero), exactly."""
    a = abs(v)
    t = math.floor(a)
    r = t + 1 if a - t >= 0.5 else t
    return int(r) if v >= 0 else -int(r)


def round_to_int(v: np.ndarray) -> np.ndarray:
    """``std::round`` of float32 or float64 values, in their own precision (halves away from zero),
    as int64."""
    return round_half_away(np.asarray(v)).astype(np.int64)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2^(shift - 31)``, ``multiplier`` in
    ``[2^30, 2^31)``; multipliers below ``2^-31`` flush to ``(0, 0)``."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_double(q * 2.0**31)
    if q_fixed > 2**31:
        raise ValueError(f"multiplier {real!r} is negative or not finite")
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if q_fixed < 0:
        raise ValueError(f"multiplier {real!r} is negative")
    return q_fixed, shift


def srdhm(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul``: ``round(a * b / 2^31)`` (ties away from zero,
    with the nudge of ARM's VQRDMULH), saturating ``INT32_MIN * INT32_MIN``."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C++ division truncates toward zero
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, q)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded to nearest, ties away from zero
    (``0 <= exponent <= 31``)."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_left_shift(x: ArrayLike, exponent: int) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0`` on int32."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(int32 x, multiplier, shift)`` (double rounding); the
    multiplier and shift may be arrays that broadcast against ``x`` (per-channel requantization).
    ``x << left_shift`` wraps in int32 as the C kernels' unsigned shift does."""
    s = _i64(shift)
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    return rounding_divide_by_pot(srdhm(wrap32(_i64(x) << left), multiplier), right)


# ---- gemmlowp fixed point: exp on negative values, 1 / (1 + x) (the int8 softmax) -------------------

_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242))  # fmt: skip


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """``exp(a)`` for a Q0.31 ``a`` in ``[-1/4, 0)``: Taylor expansion around -1/8."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(wrap32(x4_over_4 + x3), one_third) + x2, 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a: ArrayLike, integer_bits: int) -> np.ndarray:
    """gemmlowp's ``exp_on_negative_values`` of a fixed-point ``a <= 0`` with ``integer_bits`` integer
    bits (raw int32), as a Q0.31 raw value."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_left_shift(a_mod, integer_bits)
    )
    remainder = a_mod - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    s = _i64(a) + _i64(b)
    v = s + np.where(s >= 0, 1, -1)
    return np.where(v >= 0, v // 2, -((-v) // 2))


def one_over_one_plus_x_for_x_in_0_1(a: ArrayLike) -> np.ndarray:
    """gemmlowp's ``1 / (1 + a)`` for a Q0.31 ``a`` in ``[0, 1)``: three Newton-Raphson steps in Q2.29."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + srdhm(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = wrap32(x + saturating_left_shift(srdhm(x, one_minus), 2))
    return saturating_left_shift(x, 1)


def count_leading_zeros32(x: int) -> int:
    return 32 - int(x).bit_length() if x > 0 else (32 if x == 0 else 0)


def get_reciprocal(x: int, integer_digits: int) -> tuple[int, int]:
    """TFLite's ``GetReciprocal``: ``(Q0.31 raw of 1/x scaled into [0.5, 1], num_bits_over_unit)`` for a
    positive fixed-point ``x`` with ``integer_digits`` integer bits."""
    headroom_plus_one = count_leading_zeros32(x)
    shifted_minus_one = ((x << headroom_plus_one) & (2**32 - 1)) - 2**31
    return int(one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)), integer_digits - headroom_plus_one
