"""The hand-posture demo, CI's short version: User2's calibration session (200 frames, one pass) adapts
ST's VL53L5CX CNN under 8 KB on a Cortex-M4F in QEMU through the serial link (int16 frames); the device
must reach exactly the simulator's accuracy on User2's 1,068 held-out frames, with the same parameters.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

pytestmark = pytest.mark.emulator

ZIP = SHARED / "datasets" / "st_vl53l8cx_handposture_users123.zip"
MODEL = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
NEEDS_DATA = pytest.mark.skipif(
    not (ZIP.is_file() and MODEL.is_file()), reason=f"{ZIP} or {MODEL} is absent (../shared/data)"
)
NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm / arm-none-eabi-gcc not installed (see scripts/setup.sh)",
)


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mcutrain", "demo", "handposture", "--out", str(tmp_path / "d"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@NEEDS_DATA
@NEEDS_QEMU
def test_handposture_demo_on_the_device_equals_the_simulator(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["--data", str(ZIP), "--user", "User2", "--budget", "8KB", "--samples", "200", "--epochs", "1"]
    r = demo(tmp_path, *args, "--json", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res == json.loads((tmp_path / "d" / "results.json").read_text())
    assert res["samples"] == 200 and res["test_samples"] == 1068 and res["strategy"] == "auto"
    # the device computed what the simulator computed, sample for sample
    assert res["device_accuracy"] == res["simulator_accuracy"] == res["accuracy_after"]
    assert res["device_vs_simulator_rel"] < 1e-4
    # both float32 executors lie as close to the float64 simulator as to each other
    assert res["device_vs_float64_max_abs"] < 1e-4 and res["float32_vs_float64_max_abs"] < 1e-4
    assert res["peak_ram_bytes"] <= res["budget_bytes"] == 8192
    assert res["accuracy_before"] == pytest.approx(0.7949, abs=1e-3)  # docs/datasets.md: 79.4% on this half
    assert res["accuracy_after"] > res["accuracy_before"] + 0.01
    assert res["instructions_per_sample"] > 10_000


@NEEDS_DATA
def test_infeasible_budget_names_the_smallest_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcutrain.cli import main

    args = ["demo", "handposture", "--out", str(tmp_path), "--simulator-only", "--samples", "64"]
    assert main([*args, "--user", "User2", "--budget", "2KB"]) == 2
    assert "Smallest budget that would work: 4128 bytes" in capsys.readouterr().err
    assert main([*args, "--user", "User9"]) == 2
    assert "no frames of user 'User9'" in capsys.readouterr().err
    assert main([*args, "--budget", "lots"]) == 2
    assert "cannot read a memory size from 'lots'" in capsys.readouterr().err


@NEEDS_DATA
def test_sgd_at_8kb_affords_the_whole_last_layer(tmp_path: Path) -> None:
    """``--optimizer sgd`` reaches the plan: without Adam's two state floats per parameter the 8 KB plan
    trains all of dense_1_2 besides the first convolution (Adam's 8 KB plan: 1/8 of its weights), so the
    int8 frozen layers stay unused (docs/handposture.md, "8 KB with int8 frozen layers")."""
    from mcutrain.cli import main

    out = tmp_path / "r.json"
    args = ["demo", "handposture", "--out", str(tmp_path), "--simulator-only", "--samples", "128"]
    args += ["--user", "User2", "--budget", "8KB", "--frozen-precision", "int8", "--epochs", "1"]
    assert main([*args, "--optimizer", "sgd", "--lr", "2e-3", "--lr-scale", "none", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["optimizer"]["kind"] == "sgd" and res["frozen_precision"] == "int8"
    assert res["peak_ram_bytes"] <= res["budget_bytes"] == 8192
    assert "weight all + bias dense_1_2" in res["plan"] and "weight all + bias conv2d_1" in res["plan"]
