"""The four int8 models of ../shared/data/models as training firmware: planned, emitted, cross-built and run
in QEMU on a Cortex-M4F board and on GAP9's fabric controller (rv32), decided by the self-test's exit
status (its int8 frozen layers are the simulator's integers exactly; its float part agrees to round-off).
The linked RAM is within the plan's peak. The KWS plan also with a 16 KB column budget for the DSP conv2d
(``int8_col_bytes``): its build defines MT_S8_COL_BYTES, its planned scratch is the kernels' size, and its
training step takes fewer instructions than the default budget's."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board, require_shared

from mcutrain import api
from mcutrain.core.int8_scratch import S8_COL_BYTES
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.selftest import EXIT_CODES, SelfTest
from mcutrain.train.update_plan import OptimizerConfig

pytestmark = pytest.mark.emulator

STEPS = 3
TIMEOUT_S = 180.0
#: model -> (strategy, budget): the auto plan where the model has layers to choose from
CASES = {
    "tflm_hello_world_int8": ("last-layer", None),
    "tflm_micro_speech_int8": ("last-layer", None),
    "mlperf_kws_dscnn_int8": ("auto", 64 * 1024),
    "mlperf_vww_mobilenetv1_int8": ("last-layer", None),
}


@cache
def _case(name: str, col_bytes: int = S8_COL_BYTES):  # type: ignore[no-untyped-def]
    g = api.load(require_shared("models", f"{name}.tflite"))
    strategy, budget = CASES[name]
    opt = OptimizerConfig(lr=0.01)
    res = api.plan(g, budget, strategy, score="proxy", optimizer=opt, int8_col_bytes=col_bytes)
    assert res.plan.frozen_precision == "int8" and res.memory.train_graph.precision.any_int8
    if budget is not None:
        assert res.memory.peak_ram_bytes <= budget
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (STEPS, *g.inputs[0][1])).astype(np.float32)
    k = g.shapes[g.outputs[0]][0]
    t = np.eye(k, dtype=np.float32)[rng.integers(0, k, STEPS)] if k > 1 else rng.random((STEPS, 1))
    return g, res.plan, SelfTest(x, t.astype(np.float32))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("board", ["mps2-an386", "gap9-rv32-qemu"])
def test_int8_model_trains_on_the_board(board: str, name: str, tmp_path: Path) -> None:
    require_board(board)
    g, plan, st = _case(name)
    proj = emit_firmware(g, plan, tmp_path / "fw", board, st)
    fb = build_firmware(proj.out_dir)
    assert fb.size.ram_bytes <= fb.plan_peak_ram, fb.summary()
    r = run_firmware(fb, TIMEOUT_S)
    assert not r.run.timed_out, r.run.message
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
    rep = r.report
    assert rep["loss_err"] <= rep["tol_loss"] and rep["param_err"] <= rep["tol_param"]
    # the step's count is a count: at least one instruction per forward MAC, and no counter wrap read
    # backwards (a SysTick reading at 0 after its wrap once gave 2^64 - 669,339,080 here)
    fw_macs = sum(n for pid, n in proj.manifest["macs"].items() if "_fw" in pid)
    assert fw_macs <= rep["instret_min"] <= rep["instret_max"] < 2**40


@pytest.mark.parametrize("board", ["mps2-an386", "gap9-rv32-qemu"])
def test_int8_column_budget_in_the_plan(board: str, tmp_path: Path) -> None:
    require_board(board)
    name = "mlperf_kws_dscnn_int8"
    g, plan, st = _case(name, 16384)
    assert plan.int8_col_bytes == 16384 and plan.trained == _case(name)[1].trained  # the same update
    counts = {}
    for cb, p in ((16384, plan), (S8_COL_BYTES, _case(name)[1])):
        proj = emit_firmware(g, p, tmp_path / f"fw{cb}", board, st)
        assert proj.manifest["defines"].get("MT_S8_COL_BYTES") == (str(cb) if cb != S8_COL_BYTES else None)
        fb = build_firmware(proj.out_dir)
        assert fb.size.ram_bytes <= fb.plan_peak_ram, fb.summary()
        r = run_firmware(fb, TIMEOUT_S)
        assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
        counts[cb] = r.report["instret_mean"]
    if board == "mps2-an386":  # the DSP path takes longer runs: fewer instructions per step
        assert counts[16384] < counts[S8_COL_BYTES], counts
