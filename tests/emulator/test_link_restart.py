"""A host killed mid-stream: ``mcutrain stream`` in a subprocess gets SIGKILL while it feeds the link firmware
in QEMU (mps2-an386); a new ``mcutrain stream`` resumes from the device's last acknowledged sample, and the
final parameters are bitwise those of a clean, uninterrupted run of the same samples."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_board

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.cli import main
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.host import Link
from mcutrain.host.monitor import read_csv
from mcutrain.host.samples import NpzSource, stream
from mcutrain.train.update_plan import OptimizerConfig

pytestmark = pytest.mark.emulator

BOARD = "mps2-an386"
N = 120
KILL_AFTER = 30  # acknowledged samples logged by the first host before it is killed
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fw(tmp_path_factory: pytest.TempPathFactory) -> tuple[FirmwareBuild, Path]:
    require_board(BOARD)
    d = tmp_path_factory.mktemp("restart")
    g = api.load("mlp")
    plan = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=0.05)).plan
    fb = build_firmware(emit_firmware(g, plan, d / "fw", BOARD, app="link").out_dir)
    rng = np.random.default_rng(11)
    np.savez(d / "data.npz", x=rng.random((N, *g.inputs[0][1])).astype(np.float32), y=rng.integers(0, 10, N))
    return fb, d / "data.npz"


def _final(link: Link) -> tuple[np.ndarray, int, int]:
    st = link.device_stats()
    params = link.get_params()
    link.exit_firmware()
    return params, st.step, st.samples_trained


def test_killed_host_resumes_and_ends_bitwise_equal(
    fw: tuple[FirmwareBuild, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fb, data = fw
    port = SerialTcp(free_tcp_port(), nodelay=True)
    with QemuProcess(fb.target, fb.elf, serial=port) as q:  # the clean run, in this process
        with Link(port.url, timeout=5.0, connect_timeout=20.0) as link:
            assert link.info is not None
            assert stream(link, NpzSource(data, link.info), progress=False) == N
            clean, step, trained = _final(link)
        assert q.wait(timeout_s=30).exit_code == 0
    assert (step, trained) == (N, N)

    port = SerialTcp(free_tcp_port(), nodelay=True)
    common = ["--port", port.url, "--timeout", "5", "--connect-timeout", "20"]
    log = tmp_path / "first"
    with QemuProcess(fb.target, fb.elf, serial=port) as q:
        cmd = [sys.executable, "-m", "mcutrain", "stream", *common, "--data", str(data), "--quiet"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = [*cmd, "--log-dir", str(log), "--stats-every", "0", "--rate", "40"]  # >= 3 s: time to kill it
        host = subprocess.Popen(first, env=env)
        try:
            end = time.monotonic() + 60
            csv = log / "steps.csv"
            while not (csv.is_file() and len(csv.read_text().splitlines()) > KILL_AFTER):
                assert host.poll() is None, f"the first host ended early with status {host.returncode}"
                assert time.monotonic() < end, "the first host streamed nothing within 60 s"
                time.sleep(0.02)
            host.send_signal(signal.SIGKILL)
        finally:
            host.kill()
            host.wait()
        logged = len(read_csv(csv))
        assert KILL_AFTER <= logged < N, "the kill did not land mid-stream: lower KILL_AFTER"

        assert main(["stream", *common, "--data", str(data), "--quiet", "--log-dir", str(log)]) == 0
        out = capsys.readouterr().out
        resumed = int(out.split("samples from #")[1].split()[0])
        assert logged <= resumed <= logged + 1  # the device may have applied the sample the host was sending
        assert f"streamed {N - resumed} samples from #{resumed}" in out
        with Link(port.url, timeout=5.0, connect_timeout=20.0) as link:
            got, step, trained = _final(link)
        assert q.wait(timeout_s=30).exit_code == 0
    assert (step, trained) == (N, N)  # every sample applied exactly once
    steps = [r.step for r in read_csv(log / "steps.csv")]  # the second host continued the first one's log
    assert steps == sorted(set(steps)) and steps[-1] == N and len(steps) >= N - 1
    assert got.dtype == clean.dtype and np.array_equal(got.view(np.uint32), clean.view(np.uint32))
