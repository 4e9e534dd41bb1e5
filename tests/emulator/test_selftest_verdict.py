"""The self-test's verdict on real data (docs/firmware.md, "The verdict"): ST's hand-posture CNN under an
auto 16 KB plan, trained on 10 real VL53L8CX frames in recorded order on the Cortex-M4F in QEMU.

Each step's loss is compared with the float64 simulator's within that step's first-order round-off bound
(mcutrain.train.roundoff), the parameters with the float32 simulator's: a correct build passes whatever the
loss does, and the same firmware with one expected value moved just outside its tolerance fails with the
matching exit status, so the verdict still sees a wrong loss or a wrong parameter.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import require_board

from mcutrain import api
from mcutrain.data import handposture as hp
from mcutrain.data.shared import SharedDataMissing
from mcutrain.demos.handposture import ENCODING, load_graph
from mcutrain.emit.c_text import c_array, c_float
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.selftest import EXIT_CODES, SelfTest
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind

pytestmark = pytest.mark.emulator
BOARD = "mps2-an386"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    require_board(BOARD)
    try:
        frames = hp.load(None)
    except SharedDataMissing as e:
        pytest.skip(str(e))
    stream, _ = frames.adaptation_split("User1")
    g = load_graph()
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=3e-3, weight_decay=1e-4)
    plan = api.plan(g, 16 * 1024, "auto", score="proxy", optimizer=opt, lr_scale="relative").plan
    x = ENCODING.decode(stream.x[:10]).astype(np.float32)
    st = SelfTest(x, np.eye(8, dtype=np.float32)[stream.y[:10]])
    return emit_firmware(g, plan, tmp_path_factory.mktemp("verdict") / "fw", BOARD, st)


def _run(proj, src: str | None = None):  # type: ignore[no-untyped-def]
    main = proj.out_dir / "main.c"
    if src is not None:
        main.write_text(src)
    return run_firmware(build_firmware(proj.out_dir), 120)


def test_real_frames_pass_within_each_steps_bound(project) -> None:  # type: ignore[no-untyped-def]
    exp = project.expected
    assert exp.tol_losses.shape == (10,) and np.all(exp.tol_losses >= 1e-5)
    # before the first update there is no drift: the first step's bound is the forward pass's round-off only
    assert exp.tol_losses[0] < 0.1
    r = _run(project)
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout
    rep = r.report
    assert rep["loss_err"] <= rep["tol_loss"] and rep["param_err"] <= rep["tol_param"]


def _moved(src: str, table: str, index: int, value: float) -> str:
    """``src`` with element ``index`` of the C table ``table`` replaced by ``value``."""
    m = re.search(rf"(static const float {table}\[[^\]]+\] = \{{\n)(.*?)(\n\}};)", src, flags=re.S)
    assert m is not None, table
    values = np.array(
        [float(v.rstrip("f")) for v in re.findall(r"-?[\d.]+(?:e[-+]?\d+)?f", m[2])], np.float32
    )
    values[index] = value
    return src[: m.start(2)] + c_array(values) + src[m.end(2) :]


def test_a_loss_just_outside_its_bound_fails(project) -> None:  # type: ignore[no-untyped-def]
    exp, src = project.expected, (project.out_dir / "main.c").read_text()
    want = float(exp.losses[0])
    moved = want + 3 * float(exp.tol_losses[0]) * max(abs(want), 1e-3)
    try:
        r = _run(project, _moved(src, "mt_fw_loss", 0, moved))
        assert r.exit_code == EXIT_CODES["loss"], r.run.stdout
        assert "FAIL: loss of step 0" in r.run.stdout and c_float(moved)[:6] in c_float(moved)
    finally:
        (project.out_dir / "main.c").write_text(src)


def test_a_parameter_just_outside_its_tolerance_fails(project) -> None:  # type: ignore[no-untyped-def]
    exp, src = project.expected, (project.out_dir / "main.c").read_text()
    name, want = exp.params[0]
    moved = float(want[0]) + 3 * exp.tol_param * float(np.max(np.abs(want)))
    try:
        r = _run(project, _moved(src, f"mt_fw_want_{name}", 0, moved))
        assert r.exit_code == EXIT_CODES["param"], r.run.stdout
        assert f"FAIL: parameter {name}[0]" in r.run.stdout
    finally:
        (project.out_dir / "main.c").write_text(src)
