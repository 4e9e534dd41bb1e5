"""`mcutrain demo cifar-shift`, the CI version: ResNet-8 on noisy CIFAR-10 images, auto plan at 208 KB,
a short stream through the serial link into a Cortex-M4F in QEMU; the device's accuracy must equal the
simulator's (tests/emulator: needs the cross compiler, QEMU and the shared data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board, require_shared

from mcutrain.data import cifar
from mcutrain.demos.cifar import epoch_stream, spread


def _needs_data() -> None:
    require_shared("datasets", "cifar10_test_1000.npz")
    require_shared("models", "mlperf_tiny_resnet8_cifar10_float.tflite")


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mcutrain", "demo", "cifar-shift", "--out", str(tmp_path / "o"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.emulator
def test_cifar_shift_device_equals_simulator(tmp_path: Path) -> None:
    require_board("mps2-an386")
    _needs_data()
    r = demo(
        tmp_path,
        *("--shift", "noise", "--budget", "208KB", "--samples", "32", "--test", "100", "--score", "proxy"),
        *("--lr", "1e-3", "--json", str(tmp_path / "r.json")),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res == json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["samples"] == 32 and res["test_samples"] == 100
    assert res["peak_ram_bytes"] <= res["budget_bytes"] == 208 * 1024
    # the device trained what the simulator trained: same parameters up to float32 round-off, same accuracy
    assert res["device_vs_simulator_rel"] < 1e-4
    assert res["device_accuracy"] == res["simulator_accuracy"] == res["accuracy_after"]
    # the stream moved the parameters enough to change some predictions (so the comparison means something)
    assert res["accuracy_after"] != res["accuracy_before"]
    assert res["accuracy_before"] < 0.3 < res["accuracy_clean"]  # noise breaks the model
    assert res["instructions_per_sample"] > 1_000_000


def test_budget_below_the_minimum_names_it(tmp_path: Path) -> None:
    """MLPerf's int8 budgets (64, 128 KB) cannot hold float32 training: a clear error, before any scoring."""
    _needs_data()
    r = demo(tmp_path, "--budget", "128KB", "--simulator-only")
    assert r.returncode == 2
    msg = r.stderr.strip().splitlines()[-1]
    assert "128 KB" in msg and "Smallest budget that would work" in msg
    assert 206 * 1024 <= int(msg.split()[-2]) <= 208 * 1024


def test_epoch_stream_and_spread() -> None:
    y = np.repeat(np.arange(10), 3)
    imgs = cifar.CifarImages(
        np.arange(30, dtype=np.float32)[:, None, None, None] * np.ones((1, 3, 32, 32), np.float32),
        y,
        np.arange(30),
        tuple("abcdefghij"),
        "clean",
    )
    x, ys = epoch_stream(imgs, 3, seed=5)
    assert len(ys) == 90
    ids = x[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(ids[:30], np.arange(30))  # first pass: the split's order
    for e in (1, 2):
        assert sorted(ids[30 * e : 30 * (e + 1)]) == list(range(30))  # each pass: every image once
    assert list(ids[30:60]) != list(ids[60:90])  # a new order per pass
    np.testing.assert_array_equal(ys, y[ids])
    np.testing.assert_array_equal(epoch_stream(imgs, 3, seed=5)[0], x)  # seeded
    sub = y[spread(len(y), 10)]
    assert len(sub) == 10 and len(set(sub.tolist())) >= 9  # spread over the class-sorted test set
