"""Crafted cases where plausible variants of the integer arithmetic disagree, checked against LiteRT.

Random cases exercise every op broadly, but some choices change an output only rarely: how a real
multiplier is derived from the float32 scales (in float, in double, product first), and how it is
applied (two roundings of the integer requantization, or one of a double product). Here the inputs are
chosen where the variants give different outputs, so that only LiteRT's own choice passes, in the
NumPy semantics and in the C kernels. Each case asserts that its inputs do separate the variants.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl

from mcutrain.core.int8_arith import multiply_by_quantized_multiplier, quantize_multiplier, round_to_int

from .s8kernels import S8Kernels
from .test_int8_ops import check
from .tflite_builder import Tensor, conv2d_options, fc_options, single_op

BO, OPT = tfl.BuiltinOperator, tfl.BuiltinOptions
f32 = np.float32
XS, XZ, YS = float(f32(0.0473)), 3, float(f32(0.0311))


@pytest.fixture(scope="module")
def s8(kernels) -> S8Kernels:  # type: ignore[no-untyped-def]
    return S8Kernels(kernels.lib)


def _mbqm(acc: np.ndarray, real: float) -> np.ndarray:
    return multiply_by_quantized_multiplier(acc, *quantize_multiplier(real))


def _double(acc: np.ndarray, real: float) -> np.ndarray:
    return round_to_int(acc.astype(np.float64) * real)


def _separating_accs(real: float, alt: float, out: Callable[[np.ndarray, float], np.ndarray]) -> list[int]:
    """The accumulators whose output differs between the real multipliers ``real`` and ``alt``, among
    those next to the points where ``acc * real`` crosses a half-integer."""
    half = np.arange(-120, 121) + 0.5
    base = np.floor(half / real).astype(np.int64)
    acc = np.concatenate([base - 1, base, base + 1])
    acc = acc[(acc != 0) & (np.abs(acc) < 2**31 - 1)]
    a, b = out(acc, real), out(acc, alt)
    return [int(v) for v in acc[(a != b) & (np.abs(a) <= 127) & (np.abs(b) <= 127)]]


def _model(code: int, wsc: np.ndarray, acc: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A 1x1 conv / linear layer on one input equal to its zero point: every channel's accumulator is its
    bias. Per-channel weight scales ``wsc`` (one: per tensor)."""
    n_ch = acc.size
    rng = np.random.default_rng(0)
    bs = (f32(XS) * np.broadcast_to(wsc, (n_ch,))).astype(f32)
    bias = Tensor((n_ch,), "int32", list(bs), [0] * n_ch, 0, acc.astype(np.int32))
    wq = rng.integers(1, 128, n_ch).astype(np.int8)
    if code == BO.CONV_2D:
        w = Tensor((n_ch, 1, 1, 1), "int8", list(wsc), [0] * len(wsc), 0, wq.reshape(n_ch, 1, 1, 1))
        model = single_op(code, [Tensor((1, 1, 1, 1), "int8", [XS], [XZ]), w, bias],
                          Tensor((1, 1, 1, n_ch), "int8", [YS], [0]), OPT.Conv2DOptions,
                          conv2d_options((1, 1), (1, 1), "valid", "none"), version=3)  # fmt: skip
        return model, np.full((1, 1, 1, 1), XZ, dtype=np.int8)
    w = Tensor((n_ch, 1), "int8", list(wsc), [0] * len(wsc), 0, wq.reshape(n_ch, 1))
    x_t, y_t = Tensor((1, 1), "int8", [XS], [XZ]), Tensor((1, n_ch), "int8", [YS], [0])
    model = single_op(code, [x_t, w, bias], y_t,
                      OPT.FullyConnectedOptions, fc_options("none"), version=4)  # fmt: skip
    return model, np.full((1, 1), XZ, dtype=np.int8)


def _real(ws: float) -> float:
    """LiteRT's effective scale of conv2d and linear: ``double(in) * double(w) / double(out)``."""
    return XS * float(f32(ws)) / YS


def _float_real(ws: float) -> float:
    """A plausible variant: the whole multiplier in float32."""
    return float(f32(XS) * f32(ws) / f32(YS))


def _float_product_real(ws: float) -> float:
    """The legacy per-tensor variant (``GetQuantizedConvolutionMultipler``): the scales' product in float."""
    return float(f32(XS) * f32(ws)) / YS


@pytest.mark.parametrize(
    "code, per_channel, out, variants",
    [
        (BO.CONV_2D, True, _mbqm, (_float_real, _float_product_real)),
        (BO.FULLY_CONNECTED, True, _double, (_float_real, _float_product_real)),
        (BO.FULLY_CONNECTED, False, _double, (_float_real, _float_product_real)),
    ],
    ids=["conv2d", "linear-per-channel", "linear-per-tensor"],
)
def test_multiplier_derivation_at_separating_accumulators(code, per_channel, out, variants, s8) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(40 + code + per_channel)
    need = 8 if per_channel else 2  # per tensor: all accumulators share one scale
    scales: list[float] = []
    accs: list[int] = []
    for _ in range(5000):
        ws = float(f32(10 ** rng.uniform(-3, -2.5)))
        found = [[a for a in _separating_accs(_real(ws), v(ws), out) if a not in accs] for v in variants]
        if per_channel:
            for hits in found[: len(variants)]:
                if hits and len(accs) < need * len(variants):
                    scales.append(ws)
                    accs.append(hits[0])
        elif min(len(h) for h in found) >= need:
            accs = sorted({a for h in found for a in h[:need]})
            scales = [ws] * len(accs)
        if len(accs) >= need * len(variants) or (not per_channel and accs):
            break
    for v in variants:  # every variant is wrong on at least `need` of the chosen accumulators
        wrong = [
            out(np.array([a]), v(w))[0] != out(np.array([a]), _real(w))[0]
            for a, w in zip(accs, scales, strict=True)
        ]
        assert sum(wrong) >= need, f"{v.__name__} differs on {sum(wrong)} accumulators only"
    wsc = np.array(scales if per_channel else scales[:1], dtype=f32)
    model, x = _model(code, wsc, np.array(accs))
    want = check(model, [x], s8).reshape(-1)
    expected = np.array([int(out(np.array([a]), _real(w))[0]) for a, w in zip(accs, scales, strict=True)])
    assert np.array_equal(want, expected)


@pytest.mark.parametrize("code", [BO.CONV_2D, BO.FULLY_CONNECTED], ids=["conv2d", "linear"])
def test_requantization_rounding_at_crafted_ties(code: int, s8: S8Kernels) -> None:
    """``acc * scale`` just below a half-integer: there the integer requantization (SaturatingRounding-
    DoublingHighMul, then RoundingDivideByPOT: two roundings) and the rounding of the double product
    disagree. LiteRT's CONV_2D follows the first, its reference FULLY_CONNECTED the second."""
    rng = np.random.default_rng(22)
    n_ch = 256
    acc = rng.integers(1000, 2**16, n_ch) * rng.choice([-1, 1], n_ch)
    n = rng.integers(1, 120, n_ch) + 0.5
    rs = np.ceil(-np.log2(n / np.abs(acc)))  # the right shift: below the half by less than 2^-(rs + 1)
    target = (n - rng.uniform(0.1, 0.9, n_ch) * 2.0 ** -(rs + 1)) * np.sign(acc)
    wsc = (target / acc * YS / XS).astype(f32)
    integer = np.array([int(_mbqm(np.array([a]), _real(w))[0]) for a, w in zip(acc, wsc, strict=True)])
    double = np.array([int(_double(np.array([a]), _real(w))[0]) for a, w in zip(acc, wsc, strict=True)])
    assert np.sum(integer != double) > n_ch // 4, "the cases must separate the two roundings"
    model, x = _model(code, wsc, acc)
    want = check(model, [x], s8).reshape(-1)
    assert np.array_equal(want, np.clip(integer if code == BO.CONV_2D else double, -128, 127))


def test_leaky_relu_multipliers_are_computed_in_float(s8: S8Kernels) -> None:
    """LiteRT derives LEAKY_RELU's multipliers in float32 (``in_scale * alpha / out_scale``); scales where
    that and the double derivation give different outputs for some input."""

    rng = np.random.default_rng(44)
    x = np.arange(-128, 128, dtype=np.int8)
    cases = []  # (xs, ys, alpha, xz, yz, expected output)
    for branch, xz, yz in (("identity", -128, -128), ("alpha", 127, 127)):  # every input in the branch
        d = x.astype(np.int64) - xz
        found = 0
        for _ in range(10):  # about one draw in 500 separates a derivation in float from one in double
            n = 4000
            xs = (10 ** rng.uniform(-2, 0, n)).astype(f32)
            ys = (xs * rng.uniform(1.0, 2.0, n)).astype(f32)  # outputs inside the int8 range
            alpha = rng.uniform(0.5, 1.0, n).astype(f32)
            real32 = xs / ys if branch == "identity" else xs * alpha / ys  # float32, as LiteRT
            real64 = (
                xs.astype(np.float64) / ys if branch == "identity" else xs.astype(np.float64) * alpha / ys
            )
            m32, s32 = np.array([quantize_multiplier(float(v)) for v in real32]).T
            m64, s64 = np.array([quantize_multiplier(float(v)) for v in real64]).T
            a = multiply_by_quantized_multiplier(d, m32[:, None], s32[:, None]) + yz
            b = multiply_by_quantized_multiplier(d, m64[:, None], s64[:, None]) + yz
            for r in np.nonzero(np.any(a != b, axis=1))[0][: 2 - found]:
                cases.append((xs[r], ys[r], alpha[r], xz, yz, a[r]))
                found += 1
            if found == 2:
                break
        assert found == 2, f"too few separating scales found for the {branch} branch"
    for xs_r, ys_r, alpha_r, xz, yz_r, expected in cases:
        opt = tfl.LeakyReluOptionsT()
        opt.alpha = float(alpha_r)
        model = single_op(BO.LEAKY_RELU, [Tensor((256,), "int8", [float(xs_r)], [xz])],
                          Tensor((256,), "int8", [float(ys_r)], [yz_r]), OPT.LeakyReluOptions, opt,
                          version=2)  # fmt: skip
        want = check(model, [x], s8)
        assert np.array_equal(want, np.clip(expected, -128, 127)), "LiteRT follows the float derivation"
