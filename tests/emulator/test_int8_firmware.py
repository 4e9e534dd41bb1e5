"""The four int8 models of ../shared/data/models as training firmware: planned, emitted, cross-built and run
in QEMU on a Cortex-M4F board and on GAP9's fabric controller (rv32), decided by the self-test's exit
status (its int8 frozen layers are the simulator's integers exactly; its float part agrees to round-off).
The linked RAM is within the plan's peak."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board, require_shared

from mcutrain import api
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
def _case(name: str):  # type: ignore[no-untyped-def]
    g = api.load(require_shared("models", f"{name}.tflite"))
    strategy, budget = CASES[name]
    res = api.plan(g, budget, strategy, score="proxy", optimizer=OptimizerConfig(lr=0.01))
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
