"""The README's main demo, quick variant: plan, emit, build for mps2-an386, run in QEMU, stream domain-B
frames with ToF zones over the serial link, pull, evaluate (tests/emulator: needs the cross compiler)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATASETS

pytestmark = pytest.mark.emulator
NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm / arm-none-eabi-gcc not installed (see scripts/setup.sh)",
)


def demo(tmp_path: Path, *args: str) -> dict:
    """Run `mcutrain demo depth --quick ARGS --json`; return the results it wrote."""
    cmd = [
        sys.executable,
        "-m",
        "mcutrain",
        "demo",
        "depth",
        "--quick",
        *args,
        "--json",
        str(tmp_path / "r.json"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads((tmp_path / "r.json").read_text())


@NEEDS_QEMU
def test_depth_demo_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = demo(tmp_path, "--out", str(out))
    assert res == json.loads((out / "results.json").read_text())
    assert res["samples"] == 24
    # the device computed what the simulator computed, sample for sample
    assert res["device_vs_simulator_param_rel_err"] < 1e-4
    assert abs(res["metrics_after"]["dense_rmse_m"] - res["simulator_after"]["dense_rmse_m"]) < 1e-3
    # the sparse plan fits the published case's ratio and is what the firmware was built for
    assert res["memory_ratio"] >= 2.2 and res["peak_ram_bytes"] <= res["budget_bytes"]
    # even 24 frames of ToF supervision help on held-out domain-B frames
    assert res["metrics_after"]["zone_rmse_m"] < res["metrics_before"]["zone_rmse_m"]
    assert res["instructions_per_sample"] > 1_000_000
    for p in res["plots"]:
        assert Path(p).read_bytes()[:4] == b"\x89PNG"


def test_firmware_emits_into_a_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mcutrain demo` and `emit` are run with relative output folders (out/...)."""
    from mcutrain import api
    from mcutrain.emit.firmware_project import emit_firmware

    monkeypatch.chdir(tmp_path)
    g = api.load("mlp")
    proj = emit_firmware(g, api.plan(g, None, "last-layer").plan, Path("rel") / "fw", "mps2-an386")
    assert (tmp_path / "rel" / "fw" / "main.c").is_file() and proj.out_dir.is_absolute()


FLIGHTS = DATASETS / "tof_drone_flights"


@pytest.mark.skipif(not FLIGHTS.is_dir(), reason=f"{FLIGHTS} is absent")
@NEEDS_QEMU
def test_depth_demo_quick_on_real_flights(tmp_path: Path) -> None:
    """--qemu on the real flights: the plan's link firmware trains in time order through its replay
    reservoir (8 slots, 3 replayed per frame under --quick) on exactly the simulator's schedule; with
    --blend its INFER BLEND on held-out frames is the host's blend with the mirror's running mean."""
    res = demo(
        tmp_path,
        "--out",
        str(tmp_path / "d"),
        "--train-flights",
        "O0,A0",
        "--test-flights",
        "O1",
        "--qemu",
        "--every",
        "32",
        "--no-blanked",
        "--blend",
        "0.6",
    )
    dev, n = res["device"], res["stream_frames"]
    assert (
        res["recipe"]["orders"] == ["time"] and res["recipe"]["slots"] == 8 and res["recipe"]["replay"] == 3
    )
    assert dev["samples"] == n and dev["training_steps"] == dev["simulator_training_steps"] == 4 * n
    assert dev["updates"] == res["updates"] == 4 * n // 8
    assert dev["reservoir"] == {
        "slots": 8,
        "seed": 0x2545F491,
        "replay": 3,
        "train_new": True,
        "seen": n,
        "filled": 8,
    }
    assert dev["param_rel_err_vs_simulator"] < 1e-4
    assert abs(dev["zone_rmse_m"]["all"] - dev["simulator_zone_rmse_m"]["all"]) < 1e-3
    assert res["zone_rmse_m"]["adapted, time order (device)"] == dev["zone_rmse_m"]
    assert res["serial_link_bytes"]["blend"] == 3 * 4 * 64  # the running mean, in the plan's peak
    assert dev["blend_probe_frames"] == min(8, res["test_frames"])
    assert dev["blend_rel_err_vs_host"] < 1e-5, dev
    assert "adapted, time order (device) + running mean (0.6)" in res["zone_rmse_m"]
