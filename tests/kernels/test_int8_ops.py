"""The int8 semantics and C kernels equal LiteRT's reference kernels exactly, on single-op models.

Each case builds a one-operator int8 ``.tflite`` model in memory (tflite_builder) with random shapes,
inputs, weights, per-channel scales, zero points, strides, paddings (SAME/VALID), dilations, depth
multipliers and fused activations, runs it in LiteRT (BUILTIN_REF), and requires the NumPy semantics and
the C kernel (host build; conv2d and linear over two output-channel ranges) to give LiteRT's output, bit
for bit. Output scales are drawn so that most outputs fall inside the int8 range (checked: a test whose
outputs all saturate could not fail on a wrong multiplier).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl

from mcutrain.core.quant import Quant, dequantize, quantize

from .int8_tflite import adapt, chw, run_c, run_numpy
from .s8kernels import S8Kernels
from .tflite_builder import (
    Model,
    Op,
    Tensor,
    add_options,
    conv2d_options,
    depthwise_options,
    fc_options,
    interpreter,
    pool_options,
    single_op,
)

BO, OPT = tfl.BuiltinOperator, tfl.BuiltinOptions
ACTS = ("none", "relu", "relu6")


@pytest.fixture(scope="module")
def s8(kernels) -> S8Kernels:  # type: ignore[no-untyped-def]
    return S8Kernels(kernels.lib)


def f32(v: float) -> float:
    return float(np.float32(v))


def i8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, shape, dtype=np.int8)


def zp(rng: np.random.Generator) -> int:
    return int(rng.integers(-128, 128))


def check(model: bytes, inputs: list[np.ndarray], s8: S8Kernels) -> np.ndarray:
    """Run the model's one op in LiteRT, NumPy and C; both must equal LiteRT. Returns LiteRT's output."""
    it = interpreter(model, preserve_all=True)
    for d, x in zip(it.get_input_details(), inputs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    m = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(model, 0))
    case = adapt(m, 0, it.get_tensor)
    want = chw(it.get_tensor(m.subgraphs[0].operators[0].outputs[0])).reshape(case.out_shape)
    for who, got in (("NumPy", run_numpy(case)), ("C", run_c(s8, case))):
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"{case.name}: {who} {got.shape} {got.dtype}"
        )
        bits = (lambda a: a.view(np.uint32)) if want.dtype == np.float32 else (lambda a: a)
        bad = bits(got) != bits(want)
        assert not bad.any(), (
            f"{case.name} {case.op}: {who} differs from LiteRT in {int(bad.sum())}/{want.size} values, "
            f"first at {np.argwhere(bad)[0].tolist()}: {got[bad][0]} != {want[bad][0]}"
        )
    return want


class Spread:
    """Counts outputs strictly inside (-128, 127): the cases must exercise the requantization."""

    def __init__(self) -> None:
        self.inside = self.total = 0

    def add(self, y: np.ndarray) -> None:
        self.inside += int(np.sum((y > -128) & (y < 127)))
        self.total += y.size

    def check(self, least: float = 0.5) -> None:
        assert self.total and self.inside / self.total >= least, f"{self.inside}/{self.total} unsaturated"


def _same(size: int, k: int, s: int, d: int) -> int:
    return (size + s - 1) // s


def _valid(size: int, k: int, s: int, d: int) -> int:
    return (size - d * (k - 1) - 1) // s + 1


def _out_scale(rng: np.random.Generator, real_std: float) -> float:
    """An output scale that puts about 3 standard deviations of the output at the int8 range's edge."""
    return f32(3.0 * real_std / 127.0 * rng.uniform(0.6, 1.6))


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv2d", "depthwise"])
def test_conv2d(depthwise: bool, s8: S8Kernels) -> None:
    rng = np.random.default_rng(10 + depthwise)
    spread, n = Spread(), 0
    while n < 40:
        cin = int(rng.integers(1, 6))
        mult = int(rng.integers(1, 4)) if depthwise else 1
        cout = cin * mult if depthwise else int(rng.integers(1, 9))
        h, w = (int(v) for v in rng.integers(1, 11, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        sh, sw = (int(v) for v in rng.integers(1, 3, 2))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        pad = "same" if n % 2 else "valid"
        out_fn = _same if pad == "same" else _valid
        ho, wo = out_fn(h, kh, sh, dh), out_fn(w, kw, sw, dw)
        if ho < 1 or wo < 1:
            continue
        xs, xz = f32(rng.uniform(0.005, 0.2)), zp(rng)
        per_channel = n % 5 != 0
        wsc = rng.uniform(0.002, 0.05, cout if per_channel else 1).astype(np.float32)
        x = i8(rng, 1, h, w, cin)
        if depthwise:
            wt, axis, w_shape = (
                rng.integers(-127, 128, (1, kh, kw, cout), dtype=np.int8),
                3,
                (1, kh, kw, cout),
            )
        else:
            wt, axis, w_shape = (
                rng.integers(-127, 128, (cout, kh, kw, cin), dtype=np.int8),
                0,
                (cout, kh, kw, cin),
            )
        taps = kh * kw * (1 if depthwise else cin)
        ys = _out_scale(rng, math.sqrt(taps) * 73 * 80 * xs * float(wsc.mean()))
        ins = [
            Tensor((1, h, w, cin), "int8", [xs], [xz]),
            Tensor(w_shape, "int8", list(wsc), [0] * len(wsc), axis, wt),
        ]
        if not depthwise or n % 7 != 3:  # LiteRT's int8 CONV_2D requires a bias; DEPTHWISE does not
            bs = (np.float32(xs) * np.broadcast_to(wsc, (cout,))).astype(np.float32)
            b = rng.integers(-20000, 20000, cout).astype(np.int32)
            ins.append(Tensor((cout,), "int32", list(bs), [0] * cout, 0, b))
        act = ACTS[n % 3]
        if depthwise:
            model = single_op(
                BO.DEPTHWISE_CONV_2D,
                ins,
                Tensor((1, ho, wo, cout), "int8", [ys], [zp(rng)]),
                OPT.DepthwiseConv2DOptions,
                depthwise_options((sh, sw), (dh, dw), pad, act, mult),
                version=3,
            )
        else:
            model = single_op(
                BO.CONV_2D,
                ins,
                Tensor((1, ho, wo, cout), "int8", [ys], [zp(rng)]),
                OPT.Conv2DOptions,
                conv2d_options((sh, sw), (dh, dw), pad, act),
                version=3,
            )
        spread.add(check(model, [x], s8))
        n += 1
    spread.check()


def test_linear(s8: S8Kernels) -> None:
    rng = np.random.default_rng(12)
    spread = Spread()
    for n in range(40):
        four_d = n % 4 == 1  # a (1, H, W, C) input: the IR flattens it as (C, H, W)
        x_shape = (
            (1, int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 6)))
            if four_d
            else (1, int(rng.integers(1, 80)))
        )
        k, m = int(np.prod(x_shape)), int(rng.integers(1, 17))
        xs, xz = f32(rng.uniform(0.005, 0.2)), zp(rng)
        per_channel = n % 2 == 1
        wsc = rng.uniform(0.002, 0.05, m if per_channel else 1).astype(np.float32)
        ys = _out_scale(rng, math.sqrt(k) * 73 * 80 * xs * float(wsc.mean()))
        ins = [
            Tensor(x_shape, "int8", [xs], [xz]),
            Tensor(
                (m, k), "int8", list(wsc), [0] * len(wsc), 0, rng.integers(-127, 128, (m, k), dtype=np.int8)
            ),
        ]
        if n % 5 != 2:
            bs = (np.float32(xs) * wsc).astype(np.float32)
            ins.append(
                Tensor(
                    (m,), "int32", list(bs), [0] * len(bs), 0, rng.integers(-20000, 20000, m).astype(np.int32)
                )
            )
        model = single_op(
            BO.FULLY_CONNECTED,
            ins,
            Tensor((1, m), "int8", [ys], [zp(rng)]),
            OPT.FullyConnectedOptions,
            fc_options(ACTS[n % 3]),
            version=4,
        )
        spread.add(check(model, [i8(rng, *x_shape)], s8))
    spread.check()


def test_add(s8: S8Kernels) -> None:
    rng = np.random.default_rng(13)
    spread = Spread()
    for n in range(40):
        shape = (1, *(int(v) for v in rng.integers(1, 6, 3)))
        sa, sb = f32(rng.uniform(0.005, 0.2)), f32(rng.uniform(0.005, 0.2))
        if n % 6 == 0:
            sb = sa
        ys = _out_scale(rng, 80 * math.hypot(sa, sb))
        model = single_op(
            BO.ADD,
            [Tensor(shape, "int8", [sa], [zp(rng)]), Tensor(shape, "int8", [sb], [zp(rng)])],
            Tensor(shape, "int8", [ys], [zp(rng)]),
            OPT.AddOptions,
            add_options(ACTS[n % 3]),
            version=2,
        )
        spread.add(check(model, [i8(rng, *shape), i8(rng, *shape)], s8))
    spread.check()


@pytest.mark.parametrize("code", [BO.AVERAGE_POOL_2D, BO.MAX_POOL_2D], ids=["avg", "max"])
def test_pool2d(code: int, s8: S8Kernels) -> None:
    rng = np.random.default_rng(14 + code)
    n = 0
    while n < 40:
        c, h, w = (int(v) for v in rng.integers(1, 10, 3))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        pad = "same" if n % 2 else "valid"
        out_fn = _same if pad == "same" else _valid
        ho, wo = out_fn(h, kh, sh, 1), out_fn(w, kw, sw, 1)
        if ho < 1 or wo < 1:
            continue
        s, z = f32(rng.uniform(0.01, 0.1)), zp(rng)
        model = single_op(
            code,
            [Tensor((1, h, w, c), "int8", [s], [z])],
            Tensor((1, ho, wo, c), "int8", [s], [z]),
            OPT.Pool2DOptions,
            pool_options((kh, kw), (sh, sw), pad, ACTS[n % 3]),
            version=2,
        )
        check(model, [i8(rng, 1, h, w, c)], s8)
        n += 1


def test_mean_over_h_and_w(s8: S8Kernels) -> None:
    rng = np.random.default_rng(16)
    spread = Spread()
    for n in range(40):
        c, h, w = (int(v) for v in rng.integers(1, 13, 3))
        xs, xz = f32(rng.uniform(0.01, 0.1)), zp(rng)
        ys, yz = (xs, xz) if n % 5 == 0 else (f32(xs * rng.uniform(0.1, 1.0)), zp(rng))
        keep = n % 2 == 0
        m = Model()
        i = m.add(Tensor((1, h, w, c), "int8", [xs], [xz]))
        axes = m.add(Tensor((2,), "int32", data=np.array([1, 2] if n % 3 else [2, 1], np.int32)))
        o = m.add(Tensor((1, 1, 1, c) if keep else (1, c), "int8", [ys], [yz]))
        opt = tfl.ReducerOptionsT()
        opt.keepDims = keep
        m.ops.append(Op(BO.MEAN, [i, axes], [o], OPT.ReducerOptions, opt, version=2))
        m.inputs, m.outputs = [i], [o]
        spread.add(check(m.to_bytes(), [i8(rng, 1, h, w, c)], s8))
    spread.check()


def test_pad(s8: S8Kernels) -> None:
    rng = np.random.default_rng(17)
    for _ in range(15):
        c, h, w = (int(v) for v in rng.integers(1, 6, 3))
        p = [int(v) for v in rng.integers(0, 4, 4)]
        s, z = f32(rng.uniform(0.01, 0.1)), zp(rng)
        m = Model()
        i = m.add(Tensor((1, h, w, c), "int8", [s], [z]))
        pads = m.add(Tensor((4, 2), "int32", data=np.array([[0, 0], p[:2], p[2:], [0, 0]], np.int32)))
        o = m.add(Tensor((1, h + p[0] + p[1], w + p[2] + p[3], c), "int8", [s], [z]))
        m.ops.append(Op(BO.PAD, [i, pads], [o], OPT.PadOptions, tfl.PadOptionsT(), version=2))
        m.inputs, m.outputs = [i], [o]
        check(m.to_bytes(), [i8(rng, 1, h, w, c)], s8)


def test_concat_and_reshape(s8: S8Kernels) -> None:
    rng = np.random.default_rng(18)
    for n in range(15):
        h, w = (int(v) for v in rng.integers(1, 6, 2))
        cs = [int(v) for v in rng.integers(1, 5, int(rng.integers(2, 5)))]
        s, z = f32(rng.uniform(0.01, 0.1)), zp(rng)
        m = Model()
        ins = [m.add(Tensor((1, h, w, c), "int8", [s], [z])) for c in cs]
        o = m.add(Tensor((1, h, w, sum(cs)), "int8", [s], [z]))
        opt = tfl.ConcatenationOptionsT()
        opt.axis = 3 if n % 2 else -1
        m.ops.append(Op(BO.CONCATENATION, ins, [o], OPT.ConcatenationOptions, opt, version=2))
        m.inputs, m.outputs = ins, [o]
        check(m.to_bytes(), [i8(rng, 1, h, w, c) for c in cs], s8)
    for shape, new in (((1, 1960), (1, 49, 40, 1)), ((1, 1, 1, 64), (1, 64)), ((1, 5, 7, 1), (1, 35))):
        m = Model()
        i = m.add(Tensor(shape, "int8", [0.05], [-3]))
        sh = m.add(Tensor((len(new),), "int32", data=np.array(new, np.int32)))
        o = m.add(Tensor(new, "int8", [0.05], [-3]))
        opt = tfl.ReshapeOptionsT()
        opt.newShape = list(new)
        m.ops.append(Op(BO.RESHAPE, [i, sh], [o], OPT.ReshapeOptions, opt))
        m.inputs, m.outputs = [i], [o]
        check(m.to_bytes(), [i8(rng, *shape)], s8)


def test_softmax(s8: S8Kernels) -> None:
    rng = np.random.default_rng(19)
    spread = Spread()
    for n in range(60):
        k = int(rng.integers(1, 70))
        xs = f32(10 ** rng.uniform(-3, 0.7))  # large scales: most differences fall below diff_min
        beta = [1.0, 1.0, 0.5, 2.0, 0.1][n % 5]
        opt = tfl.SoftmaxOptionsT()
        opt.beta = beta
        model = single_op(
            BO.SOFTMAX,
            [Tensor((1, k), "int8", [xs], [zp(rng)])],
            Tensor((1, k), "int8", [1 / 256], [-128]),
            OPT.SoftmaxOptions,
            opt,
            version=2,
        )
        spread.add(check(model, [i8(rng, 1, k)], s8))
    spread.check(0.3)


def test_quantize_and_dequantize(s8: S8Kernels) -> None:
    rng = np.random.default_rng(20)
    for _ in range(10):
        s, z = f32(10 ** rng.uniform(-3, 0)), int(rng.integers(-20, 20))
        k = np.arange(-150, 150)
        halfway = ((k + 0.5) * np.float64(s)).astype(np.float32)  # where float and double division differ
        x = np.concatenate(
            [
                halfway,
                np.nextafter(halfway, np.float32(np.inf)),
                np.nextafter(halfway, np.float32(-np.inf)),
                (rng.standard_normal(200) * 60 * s).astype(np.float32),
                np.float32([0.49999997, -0.49999997, 0.0, -0.0]) * np.float32(s),
            ]
        ).astype(np.float32)
        model = single_op(BO.QUANTIZE, [Tensor((x.size,), "float32")], Tensor((x.size,), "int8", [s], [z]))
        want = check(model, [x], s8)
        assert np.array_equal(quantize(x, Quant.per_tensor(s, z)), want), "mcutrain.core.quant.quantize"
        model = single_op(BO.DEQUANTIZE, [Tensor((256,), "int8", [s], [z])], Tensor((256,), "float32"))
        q = np.arange(-128, 128).astype(np.int8)
        want = check(model, [q], s8)
        assert np.array_equal(dequantize(q, Quant.per_tensor(s, z)).view(np.uint32), want.view(np.uint32))


def test_leaky_relu_and_logistic(s8: S8Kernels) -> None:
    rng = np.random.default_rng(21)
    x = np.arange(-128, 128, dtype=np.int8)  # every input value
    for _ in range(25):
        xs, ys = f32(10 ** rng.uniform(-3, 0)), f32(10 ** rng.uniform(-3, 0))
        opt = tfl.LeakyReluOptionsT()
        opt.alpha = f32(rng.uniform(0.0, 1.5))
        model = single_op(
            BO.LEAKY_RELU,
            [Tensor((256,), "int8", [xs], [zp(rng)])],
            Tensor((256,), "int8", [ys], [zp(rng)]),
            OPT.LeakyReluOptions,
            opt,
            version=2,
        )
        check(model, [x], s8)
        model = single_op(
            BO.LOGISTIC,
            [Tensor((256,), "int8", [xs * 40], [zp(rng)])],
            Tensor((256,), "int8", [1 / 256], [-128]),
            version=2,
        )
        check(model, [x], s8)


def test_softmax_many_rows(s8: S8Kernels) -> None:
    """Thousands of rows in one model (LiteRT's softmax runs over the last axis), for the rare values
    where the fixed-point exp, the reciprocal's Newton-Raphson steps or the final rounding matter."""
    from mcutrain.core import int8_params as P
    from mcutrain.core import int8_semantics as S
    from mcutrain.core.quant import Quant

    rng = np.random.default_rng(23)
    for xs, k in ((0.004, 10), (0.05, 12), (0.1, 4), (0.25, 30)):
        rows, z = 2000, zp(rng)
        x = i8(rng, rows, k)
        opt = tfl.SoftmaxOptionsT()
        opt.beta = 1.0
        out = Tensor((rows, k), "int8", [1 / 256], [-128])
        model = single_op(
            BO.SOFTMAX, [Tensor((rows, k), "int8", [xs], [z])], out, OPT.SoftmaxOptions, opt, version=2
        )
        it = interpreter(model)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        q = P.softmax_q8(Quant.per_tensor(xs, z), Quant.per_tensor(1 / 256, -128))
        got_np = np.stack([S.softmax_s8(r, q) for r in x])
        got_c = np.stack([s8.softmax(q, r) for r in x])
        assert np.array_equal(got_np, want), f"NumPy: {int(np.sum(got_np != want))} values differ"
        assert np.array_equal(got_c, want), f"C: {int(np.sum(got_c != want))} values differ"


@pytest.mark.parametrize("fn", [tfl.BuiltinOperator.RELU, tfl.BuiltinOperator.RELU6], ids=["relu", "relu6"])
def test_relu_is_a_clamp(fn: int, s8: S8Kernels) -> None:
    """A standalone int8 RELU / RELU6 whose input and output share quantization (the only kind mcutrain
    runs int8, core/op_entries_tensors) is LiteRT's output from ``mt_clamp_fw_s8`` with the fused
    activation's range."""
    import ctypes as C

    from mcutrain.core import int8_params as P

    rng = np.random.default_rng(29)
    x = np.arange(-128, 128, dtype=np.int8)
    i8p = C.POINTER(C.c_int8)
    for _ in range(12):
        scale, z = f32(10 ** rng.uniform(-2, 0)), zp(rng)
        q = Tensor((256,), "int8", [scale], [z])
        it = interpreter(single_op(fn, [q], q, version=2))
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        lo, hi = P.activation_range(
            "relu" if fn == tfl.BuiltinOperator.RELU else "relu6", Quant.per_tensor(scale, z)
        )
        got = np.empty_like(x)
        s8.mt_clamp_fw_s8(lo, hi, x.size, x.ctypes.data_as(i8p), got.ctypes.data_as(i8p))
        assert np.array_equal(got, want), f"clamp differs in {int(np.sum(got != want))} values"
