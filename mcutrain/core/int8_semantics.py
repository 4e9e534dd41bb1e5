"""Integer forward semantics of the int8 ops on one sample, exactly as LiteRT's reference kernels.

Activations are int8 with one scale and zero point per tensor, in the IR's layout (per sample, channels
first: ``(C, H, W)`` or ``(F,)``); weights are int8 in PyTorch layouts (conv ``[Cout, Cin/groups, kh, kw]``
with depthwise = ``groups == Cin``, linear ``[out, in]``) with per-output-channel scales and zero point 0;
biases are int32 with ``scale = in_scale * w_scale[c]``. Each function takes the integer parameters of
its C kernel (:mod:`mcutrain.core.int8_params`) and mirrors that kernel (``mt_<op>_fw_s8`` in
``firmware/runtime/src``) operation for operation, in int64 NumPy arithmetic (conv2d's sums of products
as exact float64 matrix products; the linear layer: the float64 product that LiteRT's reference kernel
rounds); the tests hold both to LiteRT's int8 output, bit for bit. docs/quantization.md describes the
scheme and the per-op details.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mcutrain.core import ops
from mcutrain.core.int8_arith import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier,
    round_to_int,
    rounding_divide_by_pot,
    srdhm,
    wrap32,
)
from mcutrain.core.int8_params import (
    QMAX,
    QMIN,
    AddQ8,
    ConvQ8,
    LeakyReluQ8,
    LinearQ8,
    MeanQ8,
    PoolQ8,
    QuantizeQ8,
    SoftmaxQ8,
)

__all__ = [
    "add_s8", "avg_pool2d_s8", "concat_s8", "conv2d_s8", "dequantize_s8", "global_avg_pool_s8",
    "leaky_relu_s8", "linear_s8", "logistic_s8", "max_pool2d_s8", "pad_s8", "quantize_s8",
    "reshape_s8", "softmax_s8",
]  # fmt: skip


def _i64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.int64)


def _s8(v: np.ndarray, lo: int = QMIN, hi: int = QMAX) -> np.ndarray:
    return np.clip(v, lo, hi).astype(np.int8)


def _requantize(acc: np.ndarray, q: ConvQ8, channel_axis_ndim: int) -> np.ndarray:
    """int32 accumulators (channel first) -> int8 outputs, per-channel multiplier and shift."""
    shape = (-1,) + (1,) * (channel_axis_ndim - 1)
    m = np.asarray(q.mult, dtype=np.int64).reshape(shape)
    s = np.asarray(q.shift, dtype=np.int64).reshape(shape)
    return _s8(multiply_by_quantized_multiplier(wrap32(acc), m, s) + q.out_zp, q.act_min, q.act_max)


def _check_pads(padding: ops.Pad4, what: str) -> None:
    if min(padding) < 0:
        raise ValueError(f"{what}: negative padding {padding} (a crop) has no int8 kernel")


def conv2d_s8(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, op: ops.Conv2d, q: ConvQ8) -> np.ndarray:
    """CONV_2D / DEPTHWISE_CONV_2D: ``acc[co] = b[co] + sum w[co] * (x - in_zp)`` over the taps inside
    the input (padding contributes nothing, as LiteRT skips it), then per-channel requantization."""
    _check_pads(op.padding, "conv2d")
    cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    g = op.groups
    t, bt, l, r = op.padding
    (sh, sw), (dh, dw) = op.stride, op.dilation
    cout_g = cout // g
    if cin_g * g != cin or cout_g * g != cout or cout != op.out_channels:
        raise ValueError(f"conv2d: weight {w.shape} does not fit input {x.shape} with groups {g}")
    xp = np.zeros((cin, h + t + bt, wd + l + r), dtype=np.int64)
    xp[:, t : t + h, l : l + wd] = _i64(x) - q.in_zp
    ho = (h + t + bt - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + l + r - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((cin, kh, kw, ho, wo), dtype=np.int64)  # im2col
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            cols[:, ky, kx] = xp[:, y0 : y0 + sh * (ho - 1) + 1 : sh, x0 : x0 + sw * (wo - 1) + 1 : sw]
    # the integer sums as float64 matrix products (BLAS): exact, since every partial sum of products
    # |w| * |x - in_zp| <= 128 * 255 stays below 2^53 for any layer of fewer than 2^37 taps
    prods = np.matmul(
        w.astype(np.float64).reshape(g, cout_g, cin_g * kh * kw),
        cols.astype(np.float64).reshape(g, cin_g * kh * kw, ho * wo),
    )
    acc = prods.astype(np.int64).reshape(cout, ho, wo)
    if b is not None:
        acc = acc + _i64(b)[:, None, None]
    return _requantize(acc, q, 3)


def linear_s8(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, q: LinearQ8) -> np.ndarray:
    """FULLY_CONNECTED: ``acc[o] = b[o] + w[o] . (x - in_zp)``, then ``round(double(acc) * scale[o])``
    (halves away from zero, in float64 as LiteRT's reference kernel) plus ``out_zp``, clamped."""
    acc = _i64(w) @ (_i64(x).reshape(-1) - q.in_zp)
    if b is not None:
        acc = acc + _i64(b)
    y = round_to_int(wrap32(acc).astype(np.float64) * q.scales())
    return _s8(y + q.out_zp, q.act_min, q.act_max)


def add_s8(a: np.ndarray, b: np.ndarray, q: AddQ8) -> np.ndarray:
    """ADD (same shapes): both inputs shifted left by 20 bits, rescaled to twice the larger input
    scale, summed and rescaled to the output."""
    sa = multiply_by_quantized_multiplier((_i64(a) - q.a_zp) << q.left_shift, q.a_mult, q.a_shift)
    sb = multiply_by_quantized_multiplier((_i64(b) - q.b_zp) << q.left_shift, q.b_mult, q.b_shift)
    y = multiply_by_quantized_multiplier(wrap32(sa + sb), q.out_mult, q.out_shift) + q.out_zp
    return _s8(y, q.act_min, q.act_max)


def _windows(x: np.ndarray, op: ops.MaxPool2d | ops.AvgPool2d, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """The pooling windows ``(C, Ho, Wo, kh*kw)`` of x padded with ``fill``, and which taps are inside."""
    _check_pads(op.padding, "pooling")
    c, h, w = x.shape
    t, bt, l, r = op.padding
    (kh, kw), (sh, sw) = op.kernel, op.stride
    ho, wo = (h + t + bt - kh) // sh + 1, (w + l + r - kw) // sw + 1
    xp = np.full((c, h + t + bt, w + l + r), fill, dtype=np.int64)
    xp[:, t : t + h, l : l + w] = x
    inside = np.zeros((1, h + t + bt, w + l + r), dtype=np.int64)
    inside[:, t : t + h, l : l + w] = 1
    win, cnt = [], []
    for ky in range(kh):
        for kx in range(kw):
            sl = (slice(None), slice(ky, ky + sh * (ho - 1) + 1, sh), slice(kx, kx + sw * (wo - 1) + 1, sw))
            win.append(xp[sl])
            cnt.append(inside[sl])
    return np.stack(win, axis=-1), np.stack(cnt, axis=-1)


def max_pool2d_s8(x: np.ndarray, op: ops.MaxPool2d, q: PoolQ8) -> np.ndarray:
    """MAX_POOL_2D over the taps inside the input, then the fused activation's clamp."""
    win, _ = _windows(_i64(x), op, QMIN - 1)
    return _s8(win.max(axis=-1), q.act_min, q.act_max)


def avg_pool2d_s8(x: np.ndarray, op: ops.AvgPool2d, q: PoolQ8) -> np.ndarray:
    """AVERAGE_POOL_2D: the sum over the taps inside the input divided by their count (TFLite: padding
    never counts; ``count_include_pad`` divides by the kernel size instead), rounded half away from zero
    with C integer division as LiteRT does. A window entirely in the padding gives 0."""
    win, inside = _windows(_i64(x), op, 0)
    acc = win.sum(axis=-1)
    n = np.full(acc.shape, op.kernel[0] * op.kernel[1]) if op.count_include_pad else inside.sum(axis=-1)
    half, d = n // 2, np.maximum(n, 1)
    avg = np.where(acc > 0, (acc + half) // d, -((half - acc) // d))  # C division truncates toward zero
    return _s8(np.where(n > 0, avg, 0), q.act_min, q.act_max)


def global_avg_pool_s8(x: np.ndarray, q: MeanQ8) -> np.ndarray:
    """MEAN over H and W: ``(C, H, W) -> (C,)``."""
    c = x.shape[0]
    s = _i64(x).reshape(c, -1)
    acc = s.sum(axis=1) - q.in_zp * s.shape[1]
    return _s8(multiply_by_quantized_multiplier(wrap32(acc), q.mult, q.shift) + q.out_zp)


def pad_s8(x: np.ndarray, op: ops.Pad, value: int) -> np.ndarray:
    """PAD: ``value`` (the zero point) around ``(C, H, W)``."""
    _check_pads(op.padding, "pad")
    t, bt, l, r = op.padding
    return np.pad(np.asarray(x, dtype=np.int8), ((0, 0), (t, bt), (l, r)), constant_values=value)


def concat_s8(xs: Sequence[np.ndarray], luts: Sequence[Sequence[int] | None]) -> np.ndarray:
    """CONCATENATION along channels: each input copied (lut None) or requantized through its table."""
    parts = []
    for x, lut in zip(xs, luts, strict=True):
        x = np.asarray(x, dtype=np.int8)
        parts.append(x if lut is None else np.asarray(lut, dtype=np.int8)[_i64(x) - QMIN])
    return np.concatenate(parts, axis=0)


def reshape_s8(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """RESHAPE: the same bytes (no kernel runs)."""
    return np.asarray(x, dtype=np.int8).reshape(tuple(shape))


def softmax_s8(x: np.ndarray, q: SoftmaxQ8) -> np.ndarray:
    """SOFTMAX int8 -> int8 over a vector: LiteRT's reference (gemmlowp fixed point): differences to
    the maximum rescaled to Q5.26, ``exp`` in Q0.31, the sum in Q12.19, its reciprocal, and the output
    ``round(exp * 256 / sum) - 128``; differences below ``diff_min`` give -128."""
    v = _i64(x).reshape(-1)
    diff = v - v.max()
    used = diff >= q.diff_min
    rescaled = srdhm(wrap32(np.where(used, diff, 0) << q.left_shift), q.mult)  # Q5.26
    e = exp_on_negative_values(rescaled, 5)  # Q0.31
    total = int(wrap32(np.where(used, rounding_divide_by_pot(e, 12), 0).sum()))  # Q12.19
    scale, bits_over_unit = get_reciprocal(total, 12)
    exponent = bits_over_unit + 31 - 8
    out = rounding_divide_by_pot(srdhm(scale, e), exponent) + QMIN
    return np.where(used, _s8(out), np.int8(QMIN)).astype(np.int8).reshape(np.shape(x))


def quantize_s8(x: np.ndarray, q: QuantizeQ8) -> np.ndarray:
    """QUANTIZE float32 -> int8: ``clamp(round(x / scale) + zp)``, the division in float32. Infinities
    saturate and NaN gives the zero point (LiteRT's float -> int conversion is undefined there)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.asarray(x, dtype=np.float32) / np.float32(q.scale)
    r = np.where(np.isnan(r), np.float32(0), np.clip(r, np.float32(-512), np.float32(512)))
    return _s8(round_to_int(r) + q.zp)


def dequantize_s8(x: np.ndarray, q: QuantizeQ8) -> np.ndarray:
    """DEQUANTIZE int8 -> float32: ``scale * (x - zp)`` in float32."""
    return (np.float32(q.scale) * (_i64(x) - q.zp).astype(np.float32)).astype(np.float32)


def leaky_relu_s8(x: np.ndarray, q: LeakyReluQ8) -> np.ndarray:
    """LEAKY_RELU int8: ``x - in_zp`` times the identity multiplier where it is >= 0, the alpha
    multiplier elsewhere, plus ``out_zp``, saturated."""
    d = _i64(x) - q.in_zp
    pos = multiply_by_quantized_multiplier(d, q.identity_mult, q.identity_shift)
    neg = multiply_by_quantized_multiplier(d, q.alpha_mult, q.alpha_shift)
    return _s8(np.where(d >= 0, pos, neg) + q.out_zp)


def logistic_s8(x: np.ndarray, lut: Sequence[int]) -> np.ndarray:
    """LOGISTIC int8: a table lookup ``lut[x + 128]`` (:func:`mcutrain.core.int8_params.logistic_q8`)."""
    return np.asarray(lut, dtype=np.int8)[_i64(x) - QMIN]
