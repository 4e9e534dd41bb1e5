"""``mcutrain stream`` and ``mcutrain pull`` (mcutrain.cli_link) against the link firmware in QEMU: an .npz
of samples streamed with a progress bar, resumed after a restart without repeating a sample, and the
pulled parameters equal to the simulator's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, require_board, require_shared

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.cli import link_verbs
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.host import Link
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import OptimizerConfig

pytestmark = pytest.mark.emulator

HANDPOSTURE = MODELS / "st_handposture_vl53l5cx_cnn2d_float.tflite"
BOARD = "mps2-an386"
N = 24


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mcutrain")
    link_verbs.add_parsers(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return int(args.func(args))


def test_stream_and_pull_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = require_board(BOARD)
    require_shared("models", HANDPOSTURE.name)
    g = api.load(HANDPOSTURE)
    plan = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=1e-3)).plan
    fb = build_firmware(emit_firmware(g, plan, tmp_path / "fw", BOARD, app="link").out_dir)
    rng = np.random.default_rng(3)
    x = rng.random((N, *g.inputs[0][1])).astype(np.float32)
    y = rng.integers(0, 8, N)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    sim = Simulator(g, plan)
    eye = np.eye(8, dtype=np.float32)
    for i in range(N):
        sim.train_step(x[i : i + 1], eye[y[i] : y[i] + 1], None)
    want = np.concatenate([v for _, v in trainable_vectors(g, plan, sim.numpy_params())])

    serial = SerialTcp(free_tcp_port())
    with QemuProcess(t, fb.elf, serial=serial) as q:
        common = ["--port", serial.url, "--timeout", "5", "--connect-timeout", "20"]
        # a first host streams half of the samples, a second one resumes where the device is
        assert _main(["stream", *common, "--data", str(tmp_path / "data.npz"), "--limit", str(N // 2)]) == 0
        assert f"streamed {N // 2} samples from #0" in capsys.readouterr().out
        rc = _main(["stream", *common, "--data", str(tmp_path / "data.npz"), "--rate", "50", "--quiet"])
        assert rc == 0
        assert f"streamed {N - N // 2} samples from #{N // 2}" in capsys.readouterr().out
        pull = ["pull", *common, "--out", str(tmp_path / "p.npz"), "--expect-hash", g.fingerprint()]
        assert _main(pull) == 0
        assert _main(["stream", *common, "--data", str(tmp_path / "nope.npz")]) == 2
        with Link(serial.url, timeout=5.0) as link:
            link.exit_firmware()
        r = q.wait(timeout_s=30)
    assert r.exit_code == 0, r.message
    with np.load(tmp_path / "p.npz") as d:
        got, step = d["params"], int(d["step"])
    assert step == N
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(want))))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
