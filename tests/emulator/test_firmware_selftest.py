"""The generated training step as firmware: cross-built for every board, run in QEMU, decided by exit status.

For each QEMU board (mps2-an386 Cortex-M4F, mps2-an500 Cortex-M7, mps3-an547 Cortex-M55), the self-test
firmware of the ST hand-posture CNN and the MLPerf ResNet-8 under two plans each trains a few steps on
embedded samples and compares its losses and parameters with the simulator (mcutrain.firmware). The host
build of the same project is checked against the same expected values, so device and host agree to float
round-off. Every build's linker-measured RAM must be within the plan's peak RAM; the two hardware-only
boards are built and size-checked; a plan too big for a board fails at build time naming both numbers.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, require_board, require_shared

from mcutrain import api
from mcutrain.cli import build_parser
from mcutrain.cli.project_verbs import TIMEOUT_EXIT, cmd_run
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware, make_standalone
from mcutrain.emit.firmware_project import FirmwareError, emit_firmware
from mcutrain.emit.firmware_run import profile_table, run_firmware
from mcutrain.emit.host_build import HostModel, build_host
from mcutrain.emit.model_c import emit
from mcutrain.emit.selftest import EXIT_CODES, SelfTest, expected
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind

pytestmark = pytest.mark.emulator

QEMU_BOARDS = ["mps2-an386", "mps2-an500", "mps3-an547"]
HARDWARE_BOARDS = ["stm32f746g-disco", "nrf52840"]
STEPS = 5
TIMEOUT_S = 60.0
HANDPOSTURE = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
RESNET8 = SHARED / "models" / "mlperf_tiny_resnet8_cifar10_float.tflite"
CASES = [("handposture", "full"), ("handposture", "auto"), ("resnet8", "last-layer"), ("resnet8", "auto")]
# measured errors of every self-test run, printed at the end of the module (see docs/firmware.md)
MEASURED: dict[str, tuple[float, float, float, float]] = {}


@cache
def _case(model: str, strategy: str) -> tuple:
    """(graph, plan, self-test samples) of a model and plan; samples as in tests/test_codegen.py."""
    require_shared("models")
    rng = np.random.default_rng(0)
    if model == "handposture":
        g = api.load(HANDPOSTURE)
        opt, budget = OptimizerConfig(lr=0.01), 16 * 1024
        st = SelfTest.random(g, api.plan(g, None, "full").plan, STEPS)
    else:  # real CIFAR-10 images, raw 0..255: Adam at 1e-5 is stable on them (tests/test_codegen.py)
        g = api.load(RESNET8)
        opt, budget = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5), 400 * 1024
        d = np.load(SHARED / "datasets" / "cifar10_test_1000.npz")
        idx = rng.permutation(len(d["y"]))[:STEPS]
        x = d["x"][idx].transpose(0, 3, 1, 2).astype(np.float32)
        st = SelfTest(x, np.eye(10, dtype=np.float32)[d["y"][idx]])
    if strategy == "auto":
        plan = api.plan(g, budget, "auto", score="proxy", optimizer=opt).plan
        assert api.plan(g, budget, "auto", score="proxy", optimizer=opt).memory.peak_ram_bytes <= budget
    else:
        plan = api.plan(g, None, strategy, optimizer=opt).plan
    return g, plan, st


_BUILDS: dict[tuple[str, str, str], FirmwareBuild] = {}


def _build(board: str, model: str, strategy: str, root: Path) -> FirmwareBuild:
    key = (board, model, strategy)
    if key not in _BUILDS:
        g, plan, st = _case(model, strategy)
        proj = emit_firmware(g, plan, root / f"{board}-{model}-{strategy}", board, st)
        _BUILDS[key] = build_firmware(proj.out_dir)
    return _BUILDS[key]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fw")


def _assert_ram_within_plan(fb: FirmwareBuild) -> None:
    s = fb.size
    assert s.ram_bytes == s.stack_bytes + s.data_bytes + s.bss_bytes
    assert s.ram_bytes <= fb.plan_peak_ram, fb.summary()
    assert fb.manifest["arena_bytes"] < s.bss_bytes
    assert s.flash_bytes <= fb.target.flash.length and s.ram_bytes <= fb.target.ram.length


# ---- the self-tests on every QEMU board ---------------------------------------------------------------


@pytest.mark.parametrize(("model", "strategy"), CASES)
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_selftest_passes_on_the_board(board: str, model: str, strategy: str, root: Path) -> None:
    require_board(board)
    fb = _build(board, model, strategy, root)
    _assert_ram_within_plan(fb)
    r = run_firmware(fb, TIMEOUT_S)
    assert not r.run.timed_out, r.run.message
    assert r.exit_code == EXIT_CODES["pass"], r.run.stdout + r.run.stderr
    rep = r.report
    assert rep["passed"] and "failure" not in rep
    assert rep["loss_err"] <= rep["tol_loss"] and rep["param_err"] <= rep["tol_param"]
    MEASURED[f"{board} {model} {strategy}"] = tuple(
        rep[k] for k in ("loss_err", "tol_loss", "param_err", "tol_param")
    )
    # deterministic instruction counts, and the painted stack fits the region the plan paid for
    assert 0 < rep["instret_min"] <= rep["instret_mean"] <= rep["instret_max"]
    assert rep["stack_step"] <= rep["stack_all"] < rep["stack_size"] == fb.size.stack_bytes
    # the static bound (complete below mt_train_step, with an interrupt on top) covers the painted use
    assert fb.stack.step.complete and rep["stack_step"] <= fb.stack.training


@pytest.mark.parametrize(("model", "strategy"), CASES)
def test_host_build_agrees_with_the_same_expected_values(model: str, strategy: str, tmp_path: Path) -> None:
    """The device compares with the simulator; the host build of the same C must agree with the same
    numbers to the same tolerance, so device and host parameters agree to float round-off."""
    g, plan, st = _case(model, strategy)
    exp = expected(g, plan, st)
    emit(g, plan, tmp_path)
    host = HostModel(build_host(tmp_path), g, plan)
    for i in range(st.steps):
        rc, loss = host.train_step(st.x[i], st.target[i])
        assert rc == 0
        assert abs(loss - exp.losses[i]) <= exp.tol_losses[i] * max(abs(exp.losses[i]), 1e-3)
    flat, off = host.export_flat(), 0
    for name, want in exp.params:
        got = flat[off : off + want.size]
        off += want.size
        assert np.max(np.abs(got - want)) <= exp.tol_param * (np.max(np.abs(want)) + 1e-12), name
    assert off == flat.size


def test_selftest_fails_loudly_on_wrong_values(root: Path) -> None:
    """The comparison can fail: a changed expected loss, parameter or a non-finite sample gives the
    documented exit status and a FAIL line."""
    require_board("mps2-an386")
    g, plan, st = _case("handposture", "full")
    base = emit_firmware(g, plan, root / "corrupt", "mps2-an386", st).out_dir
    src = (base / "main.c").read_text()
    cases = {
        "loss": re.sub(r"(mt_fw_loss\[MT_FW_STEPS\] = \{\n\s+)(\S+?)f", r"\g<1>1.5f", src, count=1),
        "param": re.sub(r"(mt_fw_want_l_\w+\[\d+\] = \{\n\s+)(\S+?)f", r"\g<1>0.123f", src, count=1),
        "nonfinite": re.sub(
            r"(mt_fw_target\[MT_FW_STEPS\]\[MT_TARGET_NUMEL\] = \{\n\s+\{\n\s+)(\S+?)f",
            r"\g<1>NAN",
            src,
            count=1,
        ),
    }
    for kind, text in cases.items():
        assert text != src, kind
        (base / "main.c").write_text(text)
        r = run_firmware(build_firmware(base), TIMEOUT_S)
        assert r.exit_code == EXIT_CODES[kind], (kind, r.run.stdout)
        assert "FAIL: " in r.run.stdout and "PASS" not in r.run.stdout, r.run.stdout


# ---- memory: the plan against the linker and the boards ---------------------------------------------


@pytest.mark.parametrize("board", ["mps2-an386", "nrf52840"])
def test_footprint_firmware_ram_is_within_the_plan(board: str, root: Path) -> None:
    """With the step's input/target/mask in RAM, as in an application, the linked RAM is still within
    the plan's peak: the plan's stack reserve covers the stack region and the board runtime's data."""
    require_board(board)
    g, plan, _ = _case("handposture", "full")
    proj = emit_firmware(g, plan, root / f"footprint-{board}", board, None)
    fb = build_firmware(proj.out_dir)
    _assert_ram_within_plan(fb)
    runtime = fb.size.ram_bytes - fb.size.stack_bytes - (fb.plan_peak_ram - plan.stack_reserve_bytes)
    assert 0 < runtime <= fb.manifest["runtime_reserve_bytes"]
    if fb.target.runs_in_qemu:
        r = run_firmware(fb, TIMEOUT_S)
        assert r.exit_code == 0, r.run.stdout


@pytest.mark.parametrize(("model", "strategy"), [("handposture", "full"), ("resnet8", "last-layer")])
@pytest.mark.parametrize("board", HARDWARE_BOARDS)
def test_hardware_board_builds_and_fits(board: str, model: str, strategy: str, root: Path) -> None:
    require_board(board)
    fb = _build(board, model, strategy, root)
    _assert_ram_within_plan(fb)
    assert fb.stack.training < fb.size.stack_bytes


def test_plan_too_big_for_the_board_fails_at_build_time(root: Path) -> None:
    require_board("nrf52840")
    g, plan, st = _case("resnet8", "auto")  # about 364 KiB at its peak; the nRF52840 has 256 KiB
    proj = emit_firmware(g, plan, root / "too-big", "nrf52840", st)
    with pytest.raises(FirmwareError) as err:
        build_firmware(proj.out_dir)
    peak = proj.manifest["plan_peak_ram_bytes"]
    assert f"needs {peak:,} B of RAM" in str(err.value)
    assert "the board has 262,144 B" in str(err.value)


# ---- builds outside Python, profiling, hangs ------------------------------------------------------------


def test_standalone_makefile_builds_the_same_firmware(root: Path) -> None:
    require_board("mps2-an386")
    fb = _build("mps2-an386", "handposture", "auto", root)
    elf = make_standalone(fb.project, "mps2-an386")
    from mcutrain.boards.cross_build import size_report

    made = size_report(fb.target, elf)
    assert (made.flash_bytes, made.ram_bytes) == (fb.size.flash_bytes, fb.size.ram_bytes)


def test_profile_build_counts_instructions_per_kernel(root: Path) -> None:
    require_board("mps2-an386")
    fb = _build("mps2-an386", "handposture", "full", root)
    plain = run_firmware(fb, TIMEOUT_S).report
    prof_build = build_firmware(fb.project, profile=True)
    r = run_firmware(prof_build, TIMEOUT_S)
    assert r.exit_code == 0, r.run.stdout
    rows = profile_table(fb.manifest, r.report)
    ids = {row["id"] for row in rows}
    assert {"conv2d_fw", "conv2d_bw_wgrad", "linear_fw", "linear_bw_igrad", "loss"} <= ids
    assert all(row["calls"] >= 1 for row in rows)
    # the kernels account for the step, apart from the glue between calls
    total = sum(row["instret"] for row in rows)
    assert 0.9 * plain["instret_mean"] <= total <= plain["instret_mean"]


def test_hanging_firmware_is_killed_at_the_timeout(root: Path, capsys: pytest.CaptureFixture) -> None:
    require_board("mps2-an386")
    fb = _build("mps2-an386", "resnet8", "auto", root)  # ~1.4 s of emulation: longer than the limit
    args = build_parser().parse_args(["run", str(fb.project), "--target", "mps2-an386", "--timeout", "0.3"])
    assert cmd_run(args) == TIMEOUT_EXIT
    assert "firmware did not finish within 0.3 s: killed" in capsys.readouterr().err


def test_zz_report_measured_errors() -> None:
    """Prints the self-test errors measured in this session (docs/firmware.md records them)."""
    for case, (le, lt, pe, pt) in MEASURED.items():
        print(f"\n{case:<40} loss {le:.2e} (tolerance {lt:.1e}), parameters {pe:.2e} (tol. {pt:.1e})", end="")
