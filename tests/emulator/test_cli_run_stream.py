"""The CLI from plan to trained weights with the serial-link firmware: ``mcutrain plan``, ``mcutrain emit
--app link``, ``mcutrain run FW_DIR --stream DATA --monitor --log-dir`` (QEMU started with a TCP serial port,
samples streamed, held-out samples evaluated, parameters pulled, QEMU ended by RESET(EXIT)); the pulled
parameters equal the simulator's and the monitor's log has one row per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require_board

from mcutrain import api
from mcutrain.cli import main
from mcutrain.host.monitor import read_csv
from mcutrain.host.tbevents import read_scalars
from mcutrain.train.plan_file import read_plan
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors

pytestmark = pytest.mark.emulator

BOARD = "mps2-an386"
N = 40


def test_plan_emit_link_run_stream_monitor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_board(BOARD)
    plan_json, fw, logs = tmp_path / "plan.json", tmp_path / "fw", tmp_path / "logs"
    assert main(["plan", "mlp", "--strategy", "last-layer", "--lr", "0.05", "--out", str(plan_json)]) == 0
    emit = ["emit", str(plan_json), "--target", BOARD, "--out", str(fw)]
    assert main([*emit, "--app", "link", "--selftest", "3"]) == 2
    assert main([*emit, "--app", "link"]) == 0
    assert "serial-link firmware" in capsys.readouterr().out

    rng = np.random.default_rng(5)
    g = api.load("mlp")
    x = rng.random((N, *g.inputs[0][1])).astype(np.float32)
    y = rng.integers(0, 10, N)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    assert main(["run", str(fw), "--timeout", "30"]) == 2  # a link firmware needs --stream
    assert "give it samples with --stream" in capsys.readouterr().err

    run = ["run", str(fw), "--stream", str(tmp_path / "data.npz"), "--monitor", "--log-dir", str(logs)]
    run += ["--held-out", str(tmp_path / "data.npz"), "--held-out-count", "2", "--eval-every", "20"]
    assert main([*run, "--view-every", "0", "--out", str(tmp_path / "p.npz")]) == 0
    out = capsys.readouterr().out
    assert f"streamed {N} samples into {BOARD} (QEMU): step {N}" in out
    assert out.count("monitor: step ") == N + 1  # not a TTY: plain lines, one per step and the last

    rows = read_csv(logs / "steps.csv")
    assert [r.step for r in rows] == list(range(1, N + 1))
    assert [r.step for r in rows if r.val_loss is not None] == [20, 40]
    assert all(r.instr_per_step and r.instr_per_step > 1000 for r in rows if r.step % 10 == 0)
    tags = read_scalars(next(logs.glob("events.out.tfevents.*")))
    assert [v for _, v in tags["train/loss"]] == pytest.approx([r.loss for r in rows], rel=1e-7)
    assert (logs / "curves.png").stat().st_size > 10_000

    plan = read_plan(plan_json).plan
    sim = Simulator(g, plan)
    eye = np.eye(10, dtype=np.float32)
    for i in range(N):
        sim.train_step(x[i : i + 1], eye[y[i] : y[i] + 1], None)
    want = np.concatenate([v for _, v in trainable_vectors(g, plan, sim.numpy_params())])
    with np.load(tmp_path / "p.npz") as d:
        got, step = d["params"], int(d["step"])
    assert step == N
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(want))))
