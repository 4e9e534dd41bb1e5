"""The FP16 option of the gap9 targets (docs/gap9.md): the cluster's conv2d / conv_transpose2d / linear passes
on binary16 operands in L1 with float32 sums, master weights and L2 in float32.

- the binary16 conversions of firmware/pulp/mt_cl_f16.h, software (rv32) and ``_Float16`` (x86-64 GCC),
  against NumPy over every binary16 value and every rounding case of float32 -> binary16;
- a host build of the same cluster sources (gcc, ``_Float16``) trains the small depth network (strided
  conv, transposed conv) and a conv + linear classifier (L1 squeezed so that every pass takes several
  tiles) and its parameter updates
  equal those of the simulator's FP16 mode (``Simulator(fp16_operands=True)``) to float32 round-off,
  while the float32 simulator's are 5x-100x outside that tolerance;
- the gap9-rv32-qemu self-test with precision fp16 (software conversions), decided by the firmware's
  exit status, with a tolerance that the float32 simulator's values would fail;
- the L1 plan halves the operands' bytes; other targets and unknown precisions are refused.
"""

from __future__ import annotations

import ctypes
import dataclasses
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools

from mcutrain import api
from mcutrain.boards.targets import Target, firmware_dir, load_target
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.host_build import HostModel
from mcutrain.emit.model_c import emit
from mcutrain.emit.pulp import L1Error, l1_linked_bytes
from mcutrain.emit.selftest import EXIT_CODES, LOSS_FLOOR, Expected, SelfTest, expected
from mcutrain.frontends.torch import load_module
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError
from mcutrain.zoo.depth import UPyDNet

pytestmark = pytest.mark.emulator

BOARD = "gap9-rv32-qemu"
SQUEEZED_L1 = 3 * 1024  # several tiles per pass, one channel per tile for the widest
STEPS = 3  # self-test in QEMU
HOST_STEPS = 6  # host build against the simulator
TIMEOUT_S = 60.0
#: SGD with a large step: the updates are the gradients, so parameters show the FP16 rounding of the
#: operands (~1e-4 of the update) far above float32 round-off (~1e-7). Adam's first steps are about
#: sign(g) and turn the float32 round-off of near-zero gradients into differences of lr (docs/gap9.md).
SGD = OptimizerConfig(OptimizerKind.SGD, lr=1.0)
UPDATE_TOL = 1e-5  # host build against the simulator: error of the parameter updates, relative
SELFTEST_TOL = 1e-6  # before the noise-floor widening (the float32 simulator's parameters: 3.6e-6 away)


def _squeezed(t: Target, l1: int) -> Target:
    assert t.cluster is not None
    region = t.region(t.cluster.l1_region).length
    return dataclasses.replace(t, cluster=dataclasses.replace(t.cluster, l1_reserve=region - l1))


class _ConvLinear(torch.nn.Module):
    """A strided conv, a 1x1 conv and a linear head (cross-entropy): the linear passes in several tiles."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 6, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(6, 8, 1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).flatten(1))


@cache
def _case(name: str, steps: int) -> tuple:
    """(graph, plan, self-test samples, squeezed target) of a case."""
    torch.manual_seed(0)
    if name == "conv_linear":
        g, l1 = load_module(_ConvLinear().eval(), torch.rand(1, 2, 8, 8), name), 1024
    else:
        net = UPyDNet(input_hw=(16, 16), enc=(4, 8), dec=(4, 8)).eval()
        g, l1 = load_module(net, torch.rand(1, 1, 16, 16), "mini_depth"), SQUEEZED_L1
    plan = api.plan(g, None, "full", optimizer=SGD).plan
    st = dataclasses.replace(SelfTest.random(g, plan, steps), tol=SELFTEST_TOL)
    return g, plan, st, _squeezed(load_target(BOARD), l1)


def _mini_depth(steps: int) -> tuple:
    return _case("mini_depth", steps)


# ---- binary16 conversions ------------------------------------------------------------------------

_CONV_C = """
#include "mt_cl_f16.h"
void up(const mt_half_t *h, float *f, int n) { for (int i = 0; i < n; ++i) f[i] = mt_f16_to_f32(h[i]); }
void down(const float *f, mt_half_t *h, int n) { for (int i = 0; i < n; ++i) h[i] = mt_f32_to_f16(f[i]); }
"""


def _conversion_lib(tmp: Path, soft: bool) -> ctypes.CDLL:
    src = tmp / "conv.c"
    src.write_text(_CONV_C)
    lib = tmp / f"conv_{'soft' if soft else 'native'}.so"
    inc = [f"-I{firmware_dir() / d}" for d in ("pulp", "runtime/include")]
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", *inc, "-o", str(lib), str(src)]
    subprocess.run([*cmd, *(["-DMT_F16_SOFT"] if soft else [])], check=True, capture_output=True)
    dll = ctypes.CDLL(str(lib))
    for fn in (dll.up, dll.down):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        fn.restype = None
    return dll


def _rounding_cases() -> np.ndarray:
    """float32 bit patterns covering every way float32 -> binary16 rounds: for every sign, exponent and
    top 10 mantissa bits, the low 13 bits at 0, 1, just below, at and just above the tie, and all ones;
    in the subnormal-result range the same around each tie of its (wider) rounding position; then
    infinities, NaN and random patterns."""
    hi = np.arange(1 << 19, dtype=np.uint32) << 13
    low = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF], dtype=np.uint32)
    cases = [(hi[:, None] | low[None, :]).ravel()]
    for e in range(103, 113):  # binary16 result subnormal: rounding at bit 126 - e (2^-25: above)
        shift = 126 - e
        top = np.arange(1 << (23 - shift), dtype=np.uint32) << shift
        tie = np.uint32(1 << (shift - 1))
        for d in (-1, 0, 1):
            m = top | np.uint32(int(tie) + d)
            for sign in (0, 1):
                cases.append((np.uint32(sign << 31) | np.uint32(e << 23) | m).astype(np.uint32))
    rng = np.random.default_rng(0)
    cases.append(rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32))
    cases.append(np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001], dtype=np.uint32))
    return np.concatenate(cases)


@pytest.mark.parametrize("soft", [True, False], ids=["software", "Float16"])
def test_conversions_equal_numpy(soft: bool, tmp_path: Path) -> None:
    require_tools("gcc")
    lib = _conversion_lib(tmp_path, soft)
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = np.empty(halves.size, dtype=np.float32)
    lib.up(halves.ctypes.data, got.ctypes.data, halves.size)
    want = halves.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # -0.0 included

    floats = _rounding_cases().view(np.float32)
    h = np.empty(floats.size, dtype=np.uint16)
    lib.down(floats.ctypes.data, h.ctypes.data, floats.size)
    with np.errstate(over="ignore"):  # beyond 65520: infinity, as in the C
        want_h = floats.astype(np.float16)
    nan = np.isnan(floats)
    assert np.array_equal(np.isnan(h.view(np.float16)), nan)
    bad = np.flatnonzero(h[~nan] != want_h[~nan].view(np.uint16))
    assert bad.size == 0, [(hex(int(floats[~nan].view(np.uint32)[i])), hex(int(h[~nan][i]))) for i in bad[:5]]


# ---- host build and simulator ---------------------------------------------------------------------


def _host_lib(project: Path) -> Path:
    """libmt.so of a cluster project: the host Makefile's sources plus the cluster layer and the portable
    PMSIS (the same files the rv32 firmware compiles)."""
    srcs = ["mt_model.c", "mt_params.c"]
    srcs += sorted(str(p.relative_to(project)) for p in (project / "runtime" / "src").glob("*.c"))
    srcs += sorted(str(p.relative_to(project)) for p in (project / "pulp").glob("*.c"))
    srcs.append("pulp/pmsis_portable/pmsis.c")
    inc = "-I. -Iruntime/include -Ipulp -Ipulp/pmsis_portable"
    r = subprocess.run(
        ["make", "-s", "-C", str(project), "libmt.so", f"SRCS={' '.join(srcs)}", f"INC={inc}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return project / "libmt.so"


@pytest.mark.parametrize("name", ["mini_depth", "conv_linear"])
def test_host_build_equals_fp16_simulator(name: str, tmp_path: Path) -> None:
    require_tools("gcc", "make")
    g, plan, st, t = _case(name, HOST_STEPS)
    proj = tmp_path / "host_fp16"
    em = emit(g, plan, proj, t, precision="fp16")
    src = (proj / "mt_model.c").read_text()
    kind = "conv_transpose2d" if name == "mini_depth" else "linear"
    for call in ("conv2d_fw", "conv2d_bw_wgrad", "conv2d_bw_igrad", f"{kind}_fw", f"{kind}_bw_igrad"):
        assert f"mt_cl_{call}_f16(" in src and f"mt_cl_{call}_f32(" not in src
    assert em.cluster is not None and em.cluster.precision == "fp16"
    host = HostModel(_host_lib(proj), g, plan)
    start = host.export_flat().copy()
    losses = []
    for i in range(st.steps):
        rc, loss = host.train_step(st.x[i], st.target[i])
        assert rc == 0
        losses.append(loss)
    update = host.export_flat() - start

    def errors(exp: Expected) -> tuple[float, float]:
        want = np.concatenate([v for _, v in exp.params]) - start
        loss_err = np.abs(np.array(losses) - exp.losses) / np.maximum(np.abs(exp.losses), LOSS_FLOOR)
        return float(np.max(loss_err / exp.tol_losses)), float(
            np.max(np.abs(update - want)) / np.max(np.abs(want))
        )

    fp16 = expected(g, plan, st, fp16_operands=True)
    loss_err, update_err = errors(fp16)
    assert loss_err <= 1.0 and update_err <= UPDATE_TOL, (loss_err, update_err)  # losses: err / tolerance
    # the reference matters: the float32 simulator's updates are well outside the tolerance
    _, update32 = errors(expected(g, plan, st))
    assert update32 > 5 * UPDATE_TOL, update32


# ---- the rv32 self-test, the L1 plan ---------------------------------------------------------------


def test_selftest_fp16_on_gap9_rv32_qemu(tmp_path: Path) -> None:
    t = load_target(BOARD)
    assert t.qemu is not None
    require_tools(t.tool("gcc"), t.qemu.binary)
    g, plan, st, squeezed = _mini_depth(STEPS)
    proj = emit_firmware(g, plan, tmp_path / "fp16", squeezed, st, precision="fp16")
    assert proj.expected is not None
    # the float32 simulator's parameters would fail this self-test
    p32 = np.concatenate([v for _, v in expected(g, plan, st).params])
    p16 = np.concatenate([v for _, v in proj.expected.params])
    assert np.max(np.abs(p32 - p16)) / np.max(np.abs(p16)) > 3 * proj.expected.tol_param
    fb = build_firmware(proj.out_dir)
    r = run_firmware(fb, TIMEOUT_S)
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
    rep = r.report
    assert rep["passed"] and rep["loss_err"] <= rep["tol_loss"] and rep["param_err"] <= rep["tol_param"]
    cl = fb.manifest["cluster"]
    assert cl["precision"] == "fp16"
    assert cl["l1_bytes"] <= l1_linked_bytes(fb.size.sections, fb.target) <= cl["l1_bytes"] + 12


def test_l1_plan_of_fp16(tmp_path: Path) -> None:
    """Same tiles as fp32 where L1 is ample: every tiled step's working set shrinks (operands at 2 B,
    results at 4 B); squeezed, fp16 stages every input where fp32 leaves some in L2."""
    g, plan, _, squeezed = _mini_depth(STEPS)
    t = load_target(BOARD)
    plans = {p: emit(g, plan, tmp_path / p, t, precision=p).cluster for p in ("fp32", "fp16")}
    rows = {p: {(s.phase, s.index): s for s in m.steps} for p, m in plans.items()}  # type: ignore[union-attr]
    tiled = [k for k, s in rows["fp32"].items() if s.l1_bytes > 0]
    assert tiled and all(rows["fp16"][k].l1_bytes < rows["fp32"][k].l1_bytes for k in tiled)
    assert plans["fp16"].l1_bytes < plans["fp32"].l1_bytes  # type: ignore[union-attr]
    assert "fp16 operands" in plans["fp16"].table()  # type: ignore[union-attr]
    # squeezed: fp32 leaves some inputs in L2, fp16 stages all of them
    s32 = emit(g, plan, tmp_path / "s32", squeezed).cluster
    s16 = emit(g, plan, tmp_path / "s16", squeezed, precision="fp16").cluster
    assert any(s.l1_bytes and "staged" not in s.tiles for s in s32.steps)  # type: ignore[union-attr]
    assert all("staged" in s.tiles for s in s16.steps if s.l1_bytes)  # type: ignore[union-attr]


def test_fp16_refused_where_it_does_not_apply(tmp_path: Path) -> None:
    g, plan, _, squeezed = _mini_depth(STEPS)
    with pytest.raises(PlanError, match=r"precision fp16 .* mps2-an386 has no cluster"):
        emit_firmware(g, plan, tmp_path / "m4", "mps2-an386", precision="fp16")
    with pytest.raises(PlanError, match=r"unknown precision 'bf16': one of fp32, fp16"):
        emit_firmware(g, plan, tmp_path / "bf", BOARD, precision="bf16")
    with pytest.raises(L1Error, match=r"FP16 converts the tensor .* emit with precision fp32"):
        emit(g, plan, tmp_path / "tiny", _squeezed(squeezed, 600), precision="fp16")
