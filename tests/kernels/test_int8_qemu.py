"""The int8 kernels on the MCU targets themselves: Cortex-M4F (mps2-an386) and rv32, in QEMU (and on the
host under sanitizers).

A test program is generated with cases of every int8 kernel (inputs, const params structs as the code
generator will emit them, expected outputs from the NumPy semantics, which the other tests hold to
LiteRT), built with the board's cross compiler and run; it exits with the number of mismatching cases.
This checks the 32-bit targets' arithmetic (64-bit products, the linear kernel's double emulation, the
float division of QUANTIZE on the M4F's single-precision FPU) where the host build cannot.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board

from mcutrain.boards.cross_build import build
from mcutrain.boards.qemu import run_qemu
from mcutrain.core import int8_params as P
from mcutrain.core import int8_semantics as S
from mcutrain.core import ops
from mcutrain.core.op_spec import AVG_POOL2D_DIMS, CONV2D_DIMS, LINEAR_DIMS, MAX_POOL2D_DIMS, PAD_DIMS
from mcutrain.core.quant import Quant

from .ckernels import INCLUDE, RUNTIME, WARN_FLAGS

BOARDS = ["mps2-an386", "rv32-qemu"]
S8_SOURCES = sorted((RUNTIME / "src").glob("*_s8.c"))
_CT = {np.int8: "int8_t", np.int32: "int32_t", np.uint64: "uint64_t", np.float32: "float"}


class Program:
    """C source of the test program: arrays, params structs, one block per kernel call."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self.body: list[str] = []
        self.n = 0

    def array(self, a: np.ndarray, ctype: str | None = None) -> str:
        a = np.asarray(a).reshape(-1)
        ctype = ctype or _CT[a.dtype.type]
        name = f"a{len(self.decls)}"
        if ctype == "float":
            vals = ", ".join(float(v).hex() + "f" for v in a.astype(np.float64))
        elif ctype == "uint64_t":
            vals = ", ".join(f"{int(v)}ull" for v in a)
        else:
            vals = ", ".join(str(int(v)) for v in a)
        self.decls.append(f"static const {ctype} {name}[{max(a.size, 1)}] = {{{vals or '0'}}};")
        return name

    def out(self, n: int, ctype: str = "int8_t") -> str:
        name = f"o{len(self.decls)}"
        self.decls.append(f"static {ctype} {name}[{n}];")
        return name

    def struct(self, ctype: str, fields: dict[str, object]) -> str:
        name = f"s{len(self.decls)}"
        self.decls.append(f"static const {ctype} {name} = {{{', '.join(str(v) for v in fields.values())}}};")
        return name

    def params(self, q: P.Q8Params, begin: int = 0) -> str:
        fields: dict[str, object] = {}
        for (name, ctype), (_, v) in zip(q.c_types(), q.c_fields(), strict=True):
            if ctype.endswith("*"):
                base = ctype.removeprefix("const ").removesuffix("*").strip()
                fields[name] = self.array(np.asarray(v)[begin:], base)
            elif ctype == "float":
                fields[name] = float(v).hex() + "f"
            else:
                fields[name] = v
        return self.struct(q.ctype, fields)

    def check(self, label: str, call: str, out: str, want: np.ndarray) -> None:
        w = self.array(want)
        size = want.size * want.itemsize
        self.body.append(
            f"    {call};\n    if (memcmp({out}, {w}, {size}u) != 0) {{\n"
            f'        printf("MISMATCH {label}\\n");\n        ++bad;\n    }}'
        )
        self.n += 1

    def source(self) -> str:
        return (
            '#include <stdio.h>\n#include <string.h>\n#include "mt_board.h"\n#include "mt_kernels_s8.h"\n\n'
            + "\n".join(self.decls)
            + "\n\nint main(void)\n{\n    int bad = 0;\n"
            + "\n".join(self.body)
            + f'\n    printf("int8 kernels: %d of {self.n} cases differ\\n", bad);\n    return bad;\n}}\n'
        )


def _cases() -> Program:
    rng = np.random.default_rng(50)
    p = Program()
    i8 = lambda *s: rng.integers(-128, 128, s, dtype=np.int8)  # noqa: E731
    qt = Quant.per_tensor
    # conv2d and depthwise: strides, dilation, asymmetric padding, two output-channel ranges
    for groups, cin, cout in ((1, 3, 5), (4, 4, 8)):
        op = ops.Conv2d(cout, (3, 3), (2, 1), (1, 2, 0, 1), (1, 2), groups)
        x, w = i8(cin, 9, 8), rng.integers(-127, 128, (cout, cin // groups, 3, 3), dtype=np.int8)
        b = rng.integers(-5000, 5000, cout).astype(np.int32)
        wq = Quant(tuple(float(np.float32(s)) for s in rng.uniform(0.005, 0.02, cout)), (0,) * cout)
        q = P.conv2d_q8(qt(0.05, 7), wq, qt(0.1, -3), cout, "relu")
        out = op.out_shape([x.shape])
        want = S.conv2d_s8(x, w, b, op, q)
        d = p.struct(CONV2D_DIMS.ctype, CONV2D_DIMS.of(op, [x.shape], out))
        y, xa = p.out(want.size), p.array(x)
        for lo, hi in ((0, 2), (2, cout)):
            call = (
                f"mt_conv2d_fw_s8(&{d}, &{p.params(q, lo)}, {lo}, {hi}, {xa}, {p.array(w[lo:hi])}, "
                f"{p.array(b[lo:hi])}, {y}, NULL)"
            )
            if hi == cout:
                p.check(f"conv2d groups={groups}", call, y, want)
            else:
                p.body.append(f"    {call};")
    # linear: the double product at near-ties, and a plain layer
    accs = rng.integers(1, 2**30, 200) * rng.choice([-1, 1], 200)
    scales = [
        float(np.nextafter((int(rng.integers(0, 100)) + 0.5) / abs(a), k))
        for a, k in zip(accs, rng.choice([-1.0, 0.0, 1.0], 200), strict=True)
    ]
    parts = [P.double_parts(s) for s in scales]
    q = P.LinearQ8(0, 0, -128, 127, tuple(m for m, _ in parts), tuple(e for _, e in parts))
    x0, w0, b0 = np.zeros(1, np.int8), np.zeros((200, 1), np.int8), accs.astype(np.int32)
    want = S.linear_s8(x0, w0, b0, q)
    d = p.struct(LINEAR_DIMS.ctype, {"in_features": 1, "out_features": 200})
    y = p.out(200)
    p.check(
        "linear ties",
        f"mt_linear_fw_s8(&{d}, &{p.params(q)}, 0, 200, {p.array(x0)}, {p.array(w0)}, "
        f"{p.array(b0)}, {y}, NULL)",
        y,
        want,
    )
    x, w, b = (
        i8(50),
        rng.integers(-127, 128, (10, 50), dtype=np.int8),
        rng.integers(-9000, 9000, 10).astype(np.int32),
    )
    q = P.linear_q8(qt(0.05, -5), Quant((0.01,), (0,)), qt(0.2, 4), 10, "relu6")
    d, y = p.struct(LINEAR_DIMS.ctype, {"in_features": 50, "out_features": 10}), p.out(10)
    p.check(
        "linear",
        f"mt_linear_fw_s8(&{d}, &{p.params(q)}, 0, 10, {p.array(x)}, {p.array(w)}, {p.array(b)}, {y}, NULL)",
        y,
        S.linear_s8(x, w, b, q),
    )
    # elementwise and pooling
    a, bb = i8(300), i8(300)
    # scales that give the inputs right shifts of 0 (the larger scale) and of 1 to 14, the output a shift of 0
    # and of 20 or so; extreme zero points; every fused activation (the Cortex-M DSP path, mt_add_s8.c)
    for sa, sb, sy, act in (
        ((0.03, 3), (0.07, -9), (0.08, 1), "relu"),
        ((0.05, -128), (0.05, 127), (0.1, 0), None),
        ((0.5, 17), (0.00004, -60), (0.3, -128), "relu6"),
        ((0.02, 0), (0.9, -1), (0.0000025, 5), None),
    ):
        q = P.add_q8(qt(*sa), qt(*sb), qt(*sy), act)
        y = p.out(300)
        call = f"mt_add_fw_s8(&{p.params(q)}, 299, {p.array(a)}, {p.array(bb)}, {y})"
        p.check(
            f"add {sa} {sb} {sy} {act}",
            call,
            y,
            np.concatenate([S.add_s8(a[:299], bb[:299], q), np.zeros(1, np.int8)]),
        )
    # clamp (relu, relu6 as int8): 4 bytes at a time on the DSP, a tail, in place
    for lo, hi, n in ((-128, 127, 37), (-20, 127, 300), (-5, 44, 299)):
        v, y = i8(n), p.out(n)
        want = np.clip(v, lo, hi).astype(np.int8)
        p.check(f"clamp [{lo}, {hi}] x {n}", f"mt_clamp_fw_s8({lo}, {hi}, {n}, {p.array(v)}, {y})", y, want)
        y = p.out(n)
        p.check(
            f"clamp [{lo}, {hi}] x {n} in place",
            f"memcpy({y}, {p.array(v)}, {n}u); mt_clamp_fw_s8({lo}, {hi}, {n}, {y}, {y})",
            y,
            want,
        )
    x = i8(4, 9, 7)
    for avg in (True, False):
        op = (
            ops.AvgPool2d((3, 2), (2, 2), (1, 1, 0, 1), False)
            if avg
            else ops.MaxPool2d((3, 2), (2, 2), (1, 1, 0, 1))
        )
        ds = AVG_POOL2D_DIMS if avg else MAX_POOL2D_DIMS
        q = P.PoolQ8(-100, 110)
        want = S.avg_pool2d_s8(x, op, q) if avg else S.max_pool2d_s8(x, op, q)
        d, y = p.struct(ds.ctype, ds.of(op, [x.shape], want.shape)), p.out(want.size)
        fn = "mt_avg_pool2d_fw_s8" if avg else "mt_max_pool2d_fw_s8"
        p.check(fn, f"{fn}(&{d}, &{p.params(q)}, {p.array(x)}, {y})", y, want)
    q = P.global_avg_pool_q8(qt(0.05, 2), qt(0.03, -4), 63)
    y = p.out(4)
    p.check(
        "mean",
        f"mt_global_avg_pool_fw_s8(&{p.params(q)}, 4, 63, {p.array(x)}, {y})",
        y,
        S.global_avg_pool_s8(x, q),
    )
    op = ops.Pad((1, 0, 2, 1))
    d, want = (
        p.struct(PAD_DIMS.ctype, PAD_DIMS.of(op, [x.shape], op.out_shape([x.shape]))),
        S.pad_s8(x, op, -7),
    )
    y = p.out(want.size)
    p.check("pad", f"mt_pad_fw_s8(&{d}, -7, {p.array(x)}, {y})", y, want)
    lut = P.concat_q8([qt(0.03, 5)], qt(0.05, -7))[0]
    y = p.out(x.size)
    p.check(
        "concat",
        f"mt_concat_fw_s8({p.array(np.array(lut, np.int8))}, {x.size}, {p.array(x)}, {y})",
        y,
        S.concat_s8([x], [lut]),
    )
    for xs in (0.01, 0.1, 0.5):
        v = i8(20)
        q = P.softmax_q8(qt(xs, 3), qt(1 / 256, -128))
        y = p.out(20)
        p.check(
            f"softmax {xs}", f"mt_softmax_fw_s8(&{p.params(q)}, 20, {p.array(v)}, {y})", y, S.softmax_s8(v, q)
        )
    v = np.arange(-128, 128, dtype=np.int8)
    q = P.leaky_relu_q8(qt(0.05, 10), qt(0.04, -20), 0.1)
    y = p.out(256)
    p.check(
        "leaky relu", f"mt_leaky_relu_fw_s8(&{p.params(q)}, 256, {p.array(v)}, {y})", y, S.leaky_relu_s8(v, q)
    )
    lut = P.logistic_q8(qt(0.08, 4), qt(1 / 256, -128))
    y = p.out(256)
    p.check(
        "logistic",
        f"mt_logistic_fw_s8({p.array(np.array(lut, np.int8))}, 256, {p.array(v)}, {y})",
        y,
        S.logistic_s8(v, lut),
    )
    s = float(np.float32(0.0371))
    f = np.concatenate(
        [
            ((np.arange(-140, 140) + 0.5) * s).astype(np.float32),
            rng.standard_normal(100).astype(np.float32) * 3,
        ]
    )
    q = P.quantize_q8(qt(s, -6))
    y = p.out(f.size)
    p.check(
        "quantize",
        f"mt_quantize_fw_s8(&{p.params(q)}, {f.size}, {p.array(f.astype(np.float32))}, {y})",
        y,
        S.quantize_s8(f, q),
    )
    y = p.out(256, "float")
    p.check(
        "dequantize", f"mt_dequantize_fw_s8(&{p.params(q)}, 256, {p.array(v)}, {y})", y, S.dequantize_s8(v, q)
    )
    return p


@pytest.mark.emulator
@pytest.mark.parametrize("board", BOARDS)
def test_int8_kernels_on_the_target(board: str, tmp_path: Path) -> None:
    target = require_board(board)
    prog = _cases()
    src = tmp_path / "int8_main.c"
    src.write_text(prog.source())
    res = build(
        target, [src, *S8_SOURCES], include_dirs=[INCLUDE, RUNTIME / "src"], out_dir=tmp_path / "build"
    )
    run = run_qemu(target, res.elf, timeout_s=60.0)
    assert f"int8 kernels: 0 of {prog.n} cases differ" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.check(0).exit_code == 0


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH")
def test_int8_kernels_on_the_host_under_sanitizers(tmp_path: Path) -> None:
    """The same program on the host with AddressSanitizer and UndefinedBehaviorSanitizer: no
    out-of-bounds access, no signed overflow, no invalid shift in any kernel."""
    prog = _cases()
    run_under_sanitizers(prog, tmp_path, timeout_s=60.0)


def run_under_sanitizers(prog: Program, tmp_path: Path, timeout_s: float) -> None:
    """Build ``prog`` for the host with AddressSanitizer and UndefinedBehaviorSanitizer and run it: every
    case must equal its expected output."""
    (tmp_path / "mt_board.h").write_text("/* host: no board */\n")
    (tmp_path / "main.c").write_text(prog.source())
    exe = tmp_path / "int8_host"
    cmd = [
        "gcc",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        *WARN_FLAGS,
        f"-I{tmp_path}",
        f"-I{INCLUDE}",
        f"-I{RUNTIME / 'src'}",
        str(tmp_path / "main.c"),
        *map(str, S8_SOURCES),
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout_s)
    assert res.returncode == 0 and f"0 of {prog.n} cases differ" in res.stdout, res.stdout + res.stderr
