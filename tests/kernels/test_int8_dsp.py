"""The Cortex-M DSP paths of the int8 conv2d and linear forwards are exact (firmware/runtime/src/
mt_conv2d_dsp_s8.c, mt_dwconv_dsp_s8.c, mt_linear_s8.c; selected by mt_s8_dsp.h).

One generated program with conv2d and linear cases chosen to reach every path: 1x1 convolutions (the word
transpose of the column tiles) with and without channels in groups of 4 and positions in tiles of 4,
general kernels (kernel width a multiple of 4: whole words of the input rows; others gathered through a
byte row in chunks of input channels of up to 128 taps, 4 windows inside the input at once in chunks of up
to 64; kernels wider than a chunk: tap by tap), a last
tile of one position, strides, dilation, asymmetric padding, groups, depthwise
3-wide kernels of stride 1 and 2, heights 1 to 3 (taller: the reference), depth multipliers, planes
narrower than a tile of 4, tall narrow planes (run transposed) with 3-high kernels 1 to 3 wide,
output-channel ranges, fused activations,
and per channel every requantization kind of mt_s8_dsp.h (FOLDED, FAST with right shifts of 23 to 31, WIDE
with biases near 2^30 and 2^31, SLOW: no shift and left shifts), plus a weight row too long for the DSP
path. Expected outputs come from the NumPy semantics (which test_int8_ops.py and test_int8_models.py hold
to LiteRT).

On mps2-an386 (Cortex-M4F: the DSP extension) the program also calls ``mt_conv2d_fw_s8_dsp`` itself and
checks that it took the call (or, where expected, left it to the reference) and wrote the same bytes; on
rv32 and on the host (AddressSanitizer, UndefinedBehaviorSanitizer) the same program runs the reference.
The scratch is exactly ``mt_conv2d_fw_s8_scratch_bytes`` (checked against the Python mirror) at the end of
a buffer whose tail is checked untouched. On mps2-an386 the program also runs with other column budgets
(``-DMT_S8_COL_BYTES``): 64 B, so that every run of positions is one tile, and 16 KB.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board

from mcutrain.boards.cross_build import build
from mcutrain.boards.qemu import run_qemu
from mcutrain.core import int8_params as P
from mcutrain.core import int8_semantics as S
from mcutrain.core import ops
from mcutrain.core.int8_scratch import S8_COL_BYTES, conv2d_s8_scratch_bytes
from mcutrain.core.op_spec import CONV2D_DIMS, LINEAR_DIMS
from mcutrain.core.quant import Quant

from .ckernels import INCLUDE, RUNTIME
from .test_int8_qemu import S8_SOURCES, Program, run_under_sanitizers

GUARD = 64  # bytes after each call's scratch that must stay untouched


@dataclass(frozen=True)
class Conv:
    name: str
    cin: int
    cout: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    hw: tuple[int, int]
    ranges: tuple[tuple[int, int], ...]
    kinds: str = "normal"  # per-channel requantization: normal, "mixed" (every kind of mt_s8_dsp.h), "wide"
    act: str | None = None
    dsp: bool = True  # the DSP path takes the call on a DSP core
    in_zp: int = 5


ONE, NO_PAD, PAD1 = (1, 1), (0, 0, 0, 0), (1, 1, 1, 1)
CONVS = (
    Conv("pointwise", 16, 6, 1, ONE, ONE, NO_PAD, ONE, (5, 7), ((0, 6),)),
    Conv("pointwise ranges", 16, 12, 1, ONE, ONE, NO_PAD, ONE, (3, 5), ((0, 5), (5, 12)), act="relu"),
    Conv("pointwise 8 taps", 8, 9, 1, ONE, ONE, NO_PAD, ONE, (4, 4), ((0, 9),), in_zp=-128),
    Conv("pointwise odd channels", 5, 7, 1, ONE, ONE, NO_PAD, ONE, (3, 3), ((0, 7),), in_zp=127),
    Conv("pointwise 64 taps", 64, 5, 1, ONE, ONE, NO_PAD, ONE, (5, 5), ((0, 5),), act="relu6"),
    Conv("words of 4 taps", 1, 9, 1, (10, 4), (2, 2), (4, 5, 1, 1), ONE, (21, 10), ((0, 4), (4, 9))),
    Conv("words of 8 taps, both edges", 2, 5, 1, (3, 8), (1, 3), (1, 1, 3, 2), ONE, (6, 13), ((0, 5),)),
    Conv("words, padding past a word", 1, 3, 1, (2, 4), ONE, (0, 1, 5, 4), ONE, (4, 6), ((0, 3),)),
    Conv("words, rows narrower than a word", 2, 3, 1, (3, 4), ONE, PAD1, ONE, (5, 3), ((0, 3),)),
    Conv("pointwise 4 taps", 4, 6, 1, ONE, ONE, NO_PAD, ONE, (3, 5), ((0, 6),)),
    Conv("pointwise 20 taps", 20, 7, 1, ONE, ONE, NO_PAD, ONE, (4, 6), ((0, 3), (3, 7)), act="relu"),
    Conv("27 taps", 3, 8, 1, (3, 3), (2, 2), (0, 1, 0, 1), ONE, (12, 12), ((0, 8),), act="relu6"),
    Conv(
        "144 taps: gathered 12 channels at a time", 16, 5, 1, (3, 3), ONE, PAD1, ONE, (5, 6), ((0, 2), (2, 5))
    ),
    Conv("162 taps: 4 windows, 4 channels at a time", 18, 6, 1, (3, 3), ONE, PAD1, ONE, (6, 10), ((0, 6),)),
    Conv(
        "5x5 over 6 channels: chunks of 100 taps", 6, 4, 1, (5, 5), ONE, (2, 2, 2, 2), ONE, (7, 8), ((0, 4),)
    ),
    Conv("7x7 over 3 channels: tap by tap", 3, 4, 1, (7, 7), ONE, (3, 3, 3, 3), ONE, (6, 7), ((0, 4),)),
    Conv("dilated", 3, 5, 1, (3, 3), (2, 1), (1, 2, 0, 1), (1, 2), (9, 8), ((0, 2), (2, 5)), act="relu"),
    Conv("grouped", 6, 4, 2, (3, 2), (1, 2), (1, 0, 2, 1), ONE, (7, 9), ((0, 1), (1, 4))),
    Conv("depthwise", 8, 8, 8, (3, 3), ONE, PAD1, ONE, (7, 9), ((0, 3), (3, 8))),
    Conv("depthwise stride 2", 6, 6, 6, (3, 3), (2, 2), (0, 1, 0, 1), ONE, (10, 11), ((0, 6),), act="relu"),
    Conv("depthwise strides 1, 2", 4, 4, 4, (3, 3), (1, 2), PAD1, ONE, (6, 13), ((0, 4),)),
    Conv("depth multiplier", 4, 8, 4, (3, 3), ONE, PAD1, ONE, (6, 5), ((0, 8),)),
    Conv("depthwise 2 high", 4, 4, 4, (2, 3), ONE, (0, 1, 1, 1), ONE, (5, 6), ((0, 4),)),
    Conv("depthwise 1 high", 3, 3, 3, (1, 3), ONE, (0, 0, 1, 1), ONE, (4, 7), ((0, 3),)),
    Conv("depthwise narrow", 4, 4, 4, (3, 3), ONE, PAD1, ONE, (3, 3), ((0, 4),), act="relu6"),
    Conv("depthwise 5 high", 3, 3, 3, (5, 3), ONE, (2, 2, 1, 1), ONE, (6, 6), ((0, 3),), dsp=False),
    Conv("depthwise 5 wide", 3, 3, 3, (3, 5), ONE, (1, 1, 2, 2), ONE, (6, 7), ((0, 3),)),
    Conv("depthwise tall", 6, 6, 6, (3, 3), ONE, PAD1, ONE, (25, 5), ((0, 2), (2, 6)), act="relu"),
    Conv("depthwise 1x1 planes", 9, 9, 9, (3, 3), ONE, PAD1, ONE, (1, 1), ((4, 9), (0, 4))),
    Conv("depthwise tall 2x1 planes", 7, 7, 7, (3, 3), ONE, PAD1, ONE, (2, 1), ((3, 7), (0, 3)), act="relu6"),
    Conv("depthwise tall 3x2", 4, 4, 4, (3, 2), ONE, (1, 1, 0, 1), ONE, (9, 4), ((0, 4),)),
    Conv("depthwise tall 3x1", 3, 3, 3, (3, 1), ONE, (1, 1, 0, 0), ONE, (12, 3), ((0, 3),), act="relu6"),
    Conv("depthwise tall 5 high", 3, 3, 3, (5, 3), ONE, (2, 2, 1, 1), ONE, (12, 4), ((0, 3),), dsp=False),
    Conv("kinds tall depthwise", 15, 15, 15, (3, 3), (2, 2), (1, 0, 1, 0), ONE, (19, 6), ((0, 15),), "mixed"),
    Conv("kinds", 8, 15, 1, (3, 3), ONE, PAD1, ONE, (5, 6), ((0, 7), (7, 15)), "mixed"),
    Conv("kinds pointwise", 32, 15, 1, ONE, ONE, NO_PAD, ONE, (4, 5), ((0, 15),), "mixed", "relu"),
    Conv("kinds depthwise", 15, 15, 15, (3, 3), (2, 1), PAD1, ONE, (6, 9), ((0, 15),), "mixed"),
    Conv("kinds, one position left", 16, 15, 1, ONE, ONE, NO_PAD, ONE, (3, 3), ((0, 15),), "mixed", "relu6"),
    Conv("kinds gathered by 4", 5, 15, 1, (3, 3), ONE, PAD1, ONE, (6, 9), ((0, 4), (4, 15)), "mixed"),
    Conv("one position left, 5 taps", 5, 4, 1, ONE, ONE, NO_PAD, ONE, (1, 5), ((0, 4),), act="relu"),
    Conv("wide sums", 512, 6, 1, ONE, ONE, NO_PAD, ONE, (2, 3), ((0, 6),), "wide", in_zp=-128),
    Conv("taps past the guard", 16448, 1, 1, ONE, ONE, NO_PAD, ONE, ONE, ((0, 1),), dsp=False),
)

X_SCALE, Y_SCALE = 0.05, 0.1
# real multipliers x_scale * w_scale / y_scale of the "mixed" channels: FOLDED (shift -7), FAST (-24 and
# -30), no shift, a left shift; with the biases below they also give WIDE and SLOW channels
MIXED_REALS = (0.004, 2.0**-25, 2.0**-31 * 1.3, 0.7, 3.0)
MIXED_BIASES = (3000, 2**30 + 12345, -(2**31) + 2**22)  # |acc| stays below 2^31: no overflow


def _quant(c: Conv, rng: np.random.Generator) -> tuple[Quant, np.ndarray]:
    """Per-channel weight scales and int32 biases."""
    if c.kinds == "wide":  # WIDE channels whose taps move the output by several steps
        reals = [2.0**-24 * (1 + i / 4) for i in range(c.cout)]
        b = np.array([(2**30 + 777 * i) * (-1) ** i for i in range(c.cout)], np.int32)
    elif c.kinds == "mixed":
        reals = [MIXED_REALS[i % len(MIXED_REALS)] for i in range(c.cout)]
        bias = [MIXED_BIASES[(i // len(MIXED_REALS)) % len(MIXED_BIASES)] * (-1) ** i for i in range(c.cout)]
        b = np.array(bias, np.int32)
    else:
        reals = list(rng.uniform(0.002, 0.01, c.cout))
        b = rng.integers(-5000, 5000, c.cout).astype(np.int32)
    scales = tuple(float(np.float32(r * Y_SCALE / X_SCALE)) for r in reals)
    return Quant(scales, (0,) * c.cout), b


class DspProgram(Program):
    """The test program, with the DSP entry points where the core has them and one scratch buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.scratch = 4

    def source(self) -> str:
        src = super().source()
        head = (
            '#include "mt_s8_dsp.h"\n\n'
            f"static uint32_t scratch[{(self.scratch + GUARD) // 4}];\n"
            "static int scratch_clean(size_t from)\n{\n"
            "    const uint8_t *s = (const uint8_t *)scratch;\n"
            f"    for (size_t i = from; i < sizeof(scratch); ++i) {{\n        if (s[i] != 0xA5u) {{\n"
            "            return 0;\n        }\n    }\n    return 1;\n}\n\n"
        )
        return src.replace("int main(void)\n", head + "int main(void)\n", 1)

    def scratch_call(self, nbytes: int) -> str:
        """Fill the scratch with a pattern; the call gets the last `nbytes` before the guard."""
        self.scratch = max(self.scratch, (nbytes + 3) // 4 * 4)
        return f"memset(scratch, 0xA5, sizeof(scratch)); {self.scratch_ptr(nbytes)}"

    def scratch_ptr(self, nbytes: int) -> str:
        return f"int8_t *sp = (int8_t *)scratch + sizeof(scratch) - {GUARD} - {(nbytes + 3) // 4 * 4}"


def _conv_cases(p: DspProgram, rng: np.random.Generator, col_bytes: int) -> None:
    qt = Quant.per_tensor
    for c in CONVS:
        op = ops.Conv2d(c.cout, c.kernel, c.stride, c.padding, c.dilation, c.groups)
        lo = 60 if c.kinds == "wide" else -128  # "wide": large sums of one sign
        x = rng.integers(lo, 128, (c.cin, *c.hw), dtype=np.int8)
        w = rng.integers(lo, 128, (c.cout, c.cin // c.groups, *c.kernel), dtype=np.int8)
        wq, b = _quant(c, rng)
        q = P.conv2d_q8(qt(X_SCALE, c.in_zp), wq, qt(Y_SCALE, -3), c.cout, c.act)
        out = op.out_shape([x.shape])
        want = S.conv2d_s8(x, w, b, op, q)
        dims = CONV2D_DIMS.of(op, [x.shape], out)
        nbytes = conv2d_s8_scratch_bytes(dims, col_bytes)
        d, xa, y, y2 = p.struct(CONV2D_DIMS.ctype, dims), p.array(x), p.out(want.size), p.out(want.size)
        calls, dsp = [], []
        for lo, hi in c.ranges:
            args = f"&{d}, &{p.params(q, lo)}, {lo}, {hi}, {xa}, {p.array(w[lo:hi])}, {p.array(b[lo:hi])}"
            calls.append(f"mt_conv2d_fw_s8({args}, {y}, sp)")
            dsp.append(f"ok &= mt_conv2d_fw_s8_dsp({args}, {y2}, sp) == {int(c.dsp)}")
        setup = p.scratch_call(nbytes)
        p.body.append(
            f"    if (mt_conv2d_fw_s8_scratch_bytes(&{d}) != {nbytes}u) {{\n"
            f'        printf("SCRATCH {c.name}\\n");\n        ++bad;\n    }}'
        )
        clean = f"if (!scratch_clean(sizeof(scratch) - {GUARD})) ++bad;"
        p.check(f"conv2d {c.name}", "{ " + setup + "; " + "; ".join(calls) + f"; {clean} }}", y, want)
        # where the core has the DSP path, it took the call and wrote the same (or left it, as expected)
        wa = p.array(want) if c.dsp else ""
        same = f" || memcmp({y2}, {wa}, {want.size}u) != 0" if wa else ""
        unused = "".join(f"    (void){n};\n" for n in (y2, wa) if n)
        p.body.append(
            f"#if MT_S8_DSP\n    {{ int ok = 1; {setup}; {'; '.join(dsp)};\n      if (!ok{same}) {{\n"
            f'        printf("DSP PATH {c.name}\\n");\n        ++bad;\n    }} }}\n#else\n{unused}#endif'
        )


LINEARS = ((50, 10, (0, 10)), (67, 9, (2, 9)), (3, 5, (0, 5)), (256, 7, (0, 7)), (1, 4, (1, 3)))


def _linear_cases(p: DspProgram, rng: np.random.Generator) -> None:
    qt = Quant.per_tensor
    for n, out, (lo, hi) in LINEARS:
        x = rng.integers(-128, 128, n, dtype=np.int8)
        w = rng.integers(-128, 128, (out, n), dtype=np.int8)
        b = rng.integers(-20000, 20000, out).astype(np.int32)
        wq = Quant(tuple(float(np.float32(s)) for s in rng.uniform(0.002, 0.01, out)), (0,) * out)
        q = P.linear_q8(qt(0.05, int(rng.integers(-128, 128))), wq, qt(0.2, 4), out, "relu6")
        want = S.linear_s8(x, w, b, q)
        d, y = p.struct(LINEAR_DIMS.ctype, {"in_features": n, "out_features": out}), p.out(out)
        ref = p.array(want)
        p.body.append(f"    memcpy({y}, {ref}, {out}u);")  # the channels outside the range stay
        p.check(
            f"linear {n}x{out} [{lo}, {hi})",
            f"mt_linear_fw_s8(&{d}, &{p.params(q, lo)}, {lo}, {hi}, {p.array(x)}, {p.array(w[lo:hi])}, "
            f"{p.array(b[lo:hi])}, {y}, NULL)",
            y,
            want,
        )


def _program(col_bytes: int = S8_COL_BYTES) -> DspProgram:
    rng = np.random.default_rng(80)
    p = DspProgram()
    _conv_cases(p, rng, col_bytes)
    _linear_cases(p, rng)
    return p


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("board", "col_bytes"),
    # the build's column budget (-DMT_S8_COL_BYTES): the default; 64 B, a run of one tile (every run's
    # boundaries and tails); 16 KB, every plane in one run
    [("mps2-an386", 4096), ("rv32-qemu", 4096), ("mps2-an386", 64), ("mps2-an386", 16384)],
)
def test_int8_conv_linear_paths_on_the_target(board: str, col_bytes: int, tmp_path: Path) -> None:
    target = require_board(board)
    prog = _program(col_bytes)
    src = tmp_path / "dsp_main.c"
    src.write_text(prog.source())
    res = build(
        target,
        [src, *S8_SOURCES],
        include_dirs=[INCLUDE, RUNTIME / "src"],
        out_dir=tmp_path / "build",
        defines={"MT_S8_COL_BYTES": col_bytes},
    )
    run = run_qemu(target, res.elf, timeout_s=120.0)
    assert f"int8 kernels: 0 of {prog.n} cases differ" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.check(0).exit_code == 0


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH")
def test_int8_conv_linear_reference_on_the_host_under_sanitizers(tmp_path: Path) -> None:
    prog = _program()
    run_under_sanitizers(prog, tmp_path, timeout_s=120.0)
