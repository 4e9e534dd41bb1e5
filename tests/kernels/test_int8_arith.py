"""The int8 arithmetic: the C helpers equal the NumPy ones (mcutrain.core.int8_arith) on edge and random
values; the linear kernel's exact double product at near-ties; the requantization table of a
concatenation against LiteRT's uint8 kernel; the header's ABI and bindings; rv32 and Cortex-M4F builds."""

from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl

from mcutrain.core import int8_arith as A
from mcutrain.core import int8_params as P
from mcutrain.core import int8_semantics as S
from mcutrain.core.quant import Quant

from .ckernels import HOST_FLAGS, INCLUDE, RUNTIME, STRUCTS, WARN_FLAGS
from .s8kernels import HEADER, PROTOTYPES, S8Kernels, abi_expected, abi_probe
from .tflite_builder import Model, Op, Tensor, run

S8_SOURCES = sorted((RUNTIME / "src").glob("*_s8.c"))
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_SHIM = """
#include "mt_s8_internal.h"
int32_t t_srdhm(int32_t a, int32_t b) { return mt_srdhm(a, b); }
int32_t t_rdbpot(int32_t x, int32_t e) { return mt_rdbpot(x, e); }
int32_t t_mbqm(int32_t x, int32_t m, int32_t s) { return mt_mbqm(x, m, s); }
int32_t t_sat_shl32(int32_t x, int32_t e) { return mt_sat_shl32(x, e); }
int32_t t_clz32(uint32_t x) { return mt_clz32(x); }
int32_t t_exp(int32_t a) { return mt_exp_on_negative_values_q5_26(a); }
int32_t t_recip(int32_t a) { return mt_one_over_one_plus_x(a); }
"""


@pytest.fixture(scope="module")
def s8(kernels) -> S8Kernels:  # type: ignore[no-untyped-def]
    return S8Kernels(kernels.lib)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> C.CDLL:
    """The private helpers of mt_s8_internal.h, compiled into a small library to call them one by one."""
    d = tmp_path_factory.mktemp("s8_shim")
    (d / "shim.c").write_text(_SHIM)
    lib = d / "libshim.so"
    cmd = [
        "gcc",
        *HOST_FLAGS,
        "-Wno-missing-prototypes",
        f"-I{INCLUDE}",
        f"-I{RUNTIME / 'src'}",
        str(d / "shim.c"),
        "-o",
        str(lib),
    ]
    subprocess.run(cmd, check=True)
    out = C.CDLL(str(lib))
    for name, n_args in (
        ("t_srdhm", 2),
        ("t_rdbpot", 2),
        ("t_mbqm", 3),
        ("t_sat_shl32", 2),
        ("t_exp", 1),
        ("t_recip", 1),
    ):
        fn = getattr(out, name)
        fn.restype, fn.argtypes = C.c_int32, [C.c_int32] * n_args
    out.t_clz32.restype, out.t_clz32.argtypes = C.c_int32, [C.c_uint32]
    return out


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    edges = [
        INT32_MIN,
        INT32_MIN + 1,
        -(2**30),
        -65536,
        -256,
        -129,
        -128,
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        127,
        255,
        65535,
        2**30 - 1,
        2**30,
        INT32_MAX - 1,
        INT32_MAX,
    ]
    return np.concatenate(
        [edges, rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True), rng.integers(-(2**16), 2**16, n)]
    ).astype(np.int64)


def test_c_helpers_equal_numpy_helpers(shim: C.CDLL) -> None:
    rng = np.random.default_rng(30)
    a, b = _values(rng, 3000), rng.permutation(_values(rng, 3000))
    assert [shim.t_srdhm(int(u), int(v)) for u, v in zip(a, b, strict=True)] == A.srdhm(a, b).tolist()
    e = rng.integers(0, 32, a.size)
    assert [shim.t_rdbpot(int(u), int(k)) for u, k in zip(a, e, strict=True)] == A.rounding_divide_by_pot(
        a, e
    ).tolist()
    mult = rng.integers(2**30, 2**31, a.size)
    shift = rng.integers(-31, 8, a.size)
    small = np.where(shift > 0, a >> 10, a)  # x << shift must not be the test's point
    got = [shim.t_mbqm(int(u), int(m), int(s)) for u, m, s in zip(small, mult, shift, strict=True)]
    assert got == A.multiply_by_quantized_multiplier(small, mult, shift).tolist()
    for k in (1, 2, 5):
        assert [shim.t_sat_shl32(int(u), k) for u in a] == A.saturating_left_shift(a, k).tolist()
    for v in (0, 1, 2, 3, 255, 2**31 - 1, 2**31, 2**32 - 1):
        assert shim.t_clz32(v) == A.count_leading_zeros32(v)


def test_c_softmax_fixed_point_equals_numpy(shim: C.CDLL) -> None:
    """gemmlowp's exp on Q5.26 values <= 0 and 1/(1+x) on Q0.31 values in [0, 1): C and NumPy agree on
    edge values and 20000 random ones each (the softmax tests reach only the values its inputs make)."""
    rng = np.random.default_rng(34)
    neg = np.concatenate(
        [[0, -1, -(2**24), -(2**26), -(2**31) + 1, INT32_MIN], -rng.integers(0, 2**31, 20000)]
    )
    assert [shim.t_exp(int(v)) for v in neg] == A.exp_on_negative_values(neg, 5).tolist()
    unit = np.concatenate([[0, 1, 2**30, 2**31 - 1], rng.integers(0, 2**31, 20000)])
    assert [shim.t_recip(int(v)) for v in unit] == A.one_over_one_plus_x_for_x_in_0_1(unit).tolist()


def test_rounding_primitives_by_hand() -> None:
    """Known values: ties of RoundingDivideByPOT go away from zero; SRDHM saturates MIN * MIN."""
    assert A.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]
    assert int(A.srdhm(INT32_MIN, INT32_MIN)) == INT32_MAX
    assert int(A.srdhm(2**30, 2**30)) == 2**29  # 0.5 * 0.5 in Q0.31
    assert int(A.srdhm(-3, 2**30)) == -1 and int(A.srdhm(3, 2**30)) == 2  # -1.5 -> -1, 1.5 -> 2 (nudge)
    assert A.quantize_multiplier(0.0) == (0, 0)
    assert A.quantize_multiplier(0.5) == (2**30, 0)
    assert A.quantize_multiplier(1.0) == (2**30, 1)
    assert A.quantize_multiplier(2.0**-40) == (0, 0)  # below 2^-31: flushed, as TFLite
    m, s = A.quantize_multiplier(0.75 - 2.0**-40)  # rounds up to 2^31: halved, shift + 1
    assert (m, s) == (3 * 2**29, 0)
    assert A.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)


def test_activation_ranges() -> None:
    y = Quant.per_tensor(0.05, -10)
    assert P.activation_range("none", y) == (-128, 127)
    assert P.activation_range("relu", y) == (-10, 127)
    assert P.activation_range("relu6", y) == (-10, 110)
    assert P.activation_range(None, y) == (-128, 127)
    with pytest.raises(ValueError, match="tanh"):
        P.activation_range("tanh", y)


def test_linear_double_product_at_near_ties(s8: S8Kernels) -> None:
    """LiteRT's FULLY_CONNECTED rounds the double product double(acc) * scale; where that product rounds
    onto a half (the exact product lies just below it) the result differs from rounding the exact
    product. Scales chosen next to (n + 1/2) / acc hit such cases; the C kernel's integer emulation and
    the NumPy float64 semantics must both give the double's answer."""
    rng = np.random.default_rng(31)
    accs, scales = [], []
    while len(accs) < 4000:
        acc = int(rng.integers(1, 2**31 - 1)) * (1 if rng.random() < 0.5 else -1)
        target = (int(rng.integers(0, 120)) + 0.5) * (1 if acc > 0 else -1)
        s = target / acc
        for k in range(-2, 3):
            accs.append(acc)
            scales.append(float(np.nextafter(s, np.inf * k)) if k else s)
    acc_a, sc = np.array(accs, dtype=np.int64), np.array(scales)
    want = A.round_to_int(acc_a.astype(np.float64) * sc)
    exact = np.array(
        [
            int(Fraction(a) * Fraction(s) + Fraction(1, 2))
            if a > 0
            else -int(-Fraction(a) * Fraction(s) + Fraction(1, 2))
            for a, s in zip(accs, scales, strict=True)
        ]
    )
    assert np.sum(want != exact) > 100, "the cases must include products that round onto a half"
    parts = [P.double_parts(s) for s in scales]
    q = P.LinearQ8(0, 0, -128, 127, tuple(m for m, _ in parts), tuple(e for _, e in parts))
    ok = (want >= -128) & (want <= 127)
    b = acc_a.astype(np.int32)
    dims = STRUCTS["mt_linear_dims_t"](in_features=1, out_features=len(accs))
    x, w = np.zeros(1, np.int8), np.zeros((len(accs), 1), np.int8)  # acc = bias
    got_c = s8.linear(dims, q, x, w, b, [(0, 1000), (1000, len(accs))])
    got_np = S.linear_s8(x, w, b, q)
    assert np.array_equal(got_np, got_c)
    assert np.array_equal(got_c[ok], want[ok].astype(np.int8))


def test_concat_requantization_table_matches_litert_uint8() -> None:
    """LiteRT refuses an int8 CONCATENATION whose inputs are quantized unlike its output; its uint8 kernel
    requantizes them (ConcatenationWithScaling). Our table implements that formula: checked on uint8."""
    rng = np.random.default_rng(32)
    for _ in range(10):
        ins = [(float(np.float32(rng.uniform(0.01, 0.2))), int(rng.integers(0, 256))) for _ in range(2)]
        out = (float(np.float32(rng.uniform(0.01, 0.2))), int(rng.integers(0, 256)))
        m = Model()
        ids = [m.add(Tensor((1, 1, 256, 1), "int8", [s], [z], name=f"in{k}")) for k, (s, z) in enumerate(ins)]
        o = m.add(Tensor((1, 1, 256, 2), "int8", [out[0]], [out[1]]))
        for t in m.tensors:
            t.dtype = "uint8"
        opt = tfl.ConcatenationOptionsT()
        opt.axis = 3
        m.ops.append(
            Op(tfl.BuiltinOperator.CONCATENATION, ids, [o], tfl.BuiltinOptions.ConcatenationOptions, opt)
        )
        m.inputs, m.outputs = ids, [o]
        x = np.arange(256, dtype=np.uint8).reshape(1, 1, 256, 1)
        got = run(m.to_bytes(), x, x)
        qo = Quant((out[0],), (out[1],), "int16")
        for k, (s, z) in enumerate(ins):
            table = P.requant_table(Quant((s,), (z,), "int16"), qo, 0, 255)
            assert list(got[0, 0, :, k]) == list(table), f"input {k}"


def test_int8_concat_with_other_quantization_is_refused_by_litert_and_requantized_by_us(
    s8: S8Kernels,
) -> None:
    a, y = Quant.per_tensor(0.03, 5), Quant.per_tensor(0.05, -7)
    m = Model()
    ids = [
        m.add(Tensor((1, 2, 2, 1), "int8", [0.03], [5])),
        m.add(Tensor((1, 2, 2, 1), "int8", [0.05], [-7])),
    ]
    o = m.add(Tensor((1, 2, 2, 2), "int8", [0.05], [-7]))
    opt = tfl.ConcatenationOptionsT()
    opt.axis = 3
    m.ops.append(
        Op(tfl.BuiltinOperator.CONCATENATION, ids, [o], tfl.BuiltinOptions.ConcatenationOptions, opt)
    )
    m.inputs, m.outputs = ids, [o]
    with pytest.raises(RuntimeError, match="CONCATENATION"):
        run(m.to_bytes(), np.zeros((1, 2, 2, 1), np.int8), np.zeros((1, 2, 2, 1), np.int8))
    luts = P.concat_q8([a, y], y)
    assert luts[1] is None and len(luts[0]) == 256
    xs = [
        np.arange(-128, 128, dtype=np.int8).reshape(4, 8, 8),
        np.arange(127, -129, -1).astype(np.int8).reshape(4, 8, 8),
    ]
    want = S.concat_s8(xs, luts)
    assert np.array_equal(s8.concat(luts, xs), want)
    real = 0.03 * (xs[0].astype(np.float64) - 5)  # within the output's range: off by half a step at most
    assert np.all(np.abs(0.05 * (want[:4].astype(np.float64) + 7) - real) <= 0.025 + 1e-6)


def test_avg_pool_count_include_pad_and_quantize_specials(s8: S8Kernels) -> None:
    """Cases LiteRT does not have (count_include_pad; infinities and NaN): C and NumPy agree."""
    from mcutrain.core import ops
    from mcutrain.core.op_spec import AVG_POOL2D_DIMS

    rng = np.random.default_rng(33)
    x = rng.integers(-128, 128, (3, 7, 6), dtype=np.int8)
    for pads in ((1, 1, 1, 1), (0, 2, 1, 0), (3, 3, 3, 3)):
        op = ops.AvgPool2d((3, 3), (2, 2), pads, True)
        out = op.out_shape([x.shape])
        dims = STRUCTS[AVG_POOL2D_DIMS.ctype](**AVG_POOL2D_DIMS.of(op, [x.shape], out))
        q = P.PoolQ8(-100, 120)
        assert np.array_equal(s8.avg_pool2d(dims, q, x), S.avg_pool2d_s8(x, op, q))
    v = np.float32([np.inf, -np.inf, np.nan, 1e30, -1e30, 3.4e38, 0.0])
    q = P.QuantizeQ8(0.1, 3)
    assert np.array_equal(s8.quantize(q, v), S.quantize_s8(v, q))
    assert S.quantize_s8(v, q).tolist() == [127, -128, 3, 127, -128, 127, 3]


def test_header_abi_and_bindings(tmp_path: Path) -> None:
    """Every function the header declares has a binding; the params structs' layout is the header's."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    assert set(re.findall(r"\b(mt_\w+)\s*\(", text)) == set(PROTOTYPES)
    assert abi_probe(tmp_path) == abi_expected()


def _cross_build(cc: list[str], flags: list[str], tmp_path: Path) -> set[str]:
    objs = []
    for src in S8_SOURCES:
        obj = tmp_path / (src.stem + ".o")
        cmd = [*cc, *flags, *WARN_FLAGS, f"-I{INCLUDE}", "-c", str(src), "-o", str(obj)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
        objs.append(str(obj))
    nm = cc[0].replace("gcc", "nm")
    res = subprocess.run([nm, "-u", *objs], capture_output=True, text=True, check=True)
    return {s for s in res.stdout.split() if not s.endswith(":") and s != "U"}


@pytest.mark.skipif(
    shutil.which("riscv64-unknown-elf-gcc") is None, reason="riscv64-unknown-elf-gcc is not on PATH"
)
def test_rv32_build(tmp_path: Path) -> None:
    """rv32 (the GAP9 fabric's portable path) with -Werror: no library call but memset/memcpy (no soft
    double, no 64-bit division helper)."""
    flags = ["--specs=picolibc.specs", "-march=rv32imfc", "-mabi=ilp32f", "-mcmodel=medany", "-O2"]
    extra = _cross_build(["riscv64-unknown-elf-gcc"], flags, tmp_path) - {"memset", "memcpy"}
    assert not extra, f"unexpected external symbols: {sorted(extra)}"


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not on PATH")
def test_cortex_m4f_build_needs_no_library_call(tmp_path: Path) -> None:
    flags = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb", "-O2"]
    extra = _cross_build(["arm-none-eabi-gcc"], flags, tmp_path) - {"memset", "memcpy"}
    assert not extra, f"unexpected external symbols (64-bit helpers, doubles): {sorted(extra)}"
