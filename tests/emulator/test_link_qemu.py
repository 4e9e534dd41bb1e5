"""The serial link end to end: the hand-posture CNN's link firmware (emit_firmware(app="link")) in QEMU
over a TCP serial port, on mps2-an386 (Cortex-M4F, CMSDK UART) and rv32-qemu (rv32imfc, NS16550 UART);
the host streams 200 samples as SAMPLE+TRAIN, pulls the parameters and compares them with the
simulator's for the same samples in the same order. The same run (100 samples on rv32) through the
fault-injecting proxy of tests/link (drops, corruption, duplicates, reordering, garbage in both directions)
must end with the same parameters: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import serial
from conftest import SHARED, require_board, require_shared

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.host import Block, Link, Sample
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import OptimizerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the link harness
from link.harness import FaultProxy, Faults

pytestmark = pytest.mark.emulator

HANDPOSTURE = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
BOARDS = ("mps2-an386", "rv32-qemu")
SAMPLES = 200
#: Samples of the fault-proxy run per board. Its time goes to the host's timeouts and retransmissions (the
#: same on every board), not to training; rv32 runs half of them to keep the test time (docs/firmware.md):
#: the protocol code is the same C on both, and rv32's UART driver and ISA also get 200 clean samples.
FAULT_SAMPLES = {"mps2-an386": SAMPLES, "rv32-qemu": 100}
SEED = 7
RTOL = 1e-5
QEMU_LIMIT_S = 120.0


class Case(NamedTuple):
    board: str
    model_hash: str
    fb: FirmwareBuild
    x: np.ndarray
    labels: np.ndarray
    classes: int
    want: dict[int, np.ndarray]  # n -> the simulator's trainable parameters after n samples (export layout)


@pytest.fixture(scope="module")
def reference() -> tuple:
    """(graph, plan, samples x, labels, classes, {n: the simulator's parameters after n samples}): one
    for every board."""
    g = api.load(HANDPOSTURE)
    plan = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=1e-3)).plan
    rng = np.random.default_rng(SEED)
    shape = g.inputs[0][1]
    classes = plan.loss.target_numel(g.shapes[g.outputs[0]])
    # inputs in [0, 1) like normalised ToF frames (standard-normal ones drive the loss to ~50, where 200
    # steps of SGD amplify float round-off beyond any tolerance)
    x = rng.random((SAMPLES, *shape)).astype(np.float32)
    labels = rng.integers(0, classes, SAMPLES)
    sim = Simulator(g, plan)
    onehot = np.eye(classes, dtype=np.float32)
    want = {}
    for i in range(SAMPLES):
        sim.train_step(x[i : i + 1], onehot[labels[i] : labels[i] + 1], None)
        if i + 1 in (SAMPLES, *FAULT_SAMPLES.values()):
            want[i + 1] = np.concatenate([v for _, v in trainable_vectors(g, plan, sim.numpy_params())])
    return g, plan, x, labels, classes, want


@pytest.fixture(scope="module", params=BOARDS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The link firmware built for the board, with the reference samples and parameters."""
    board = request.param
    require_board(board)
    require_shared("models", HANDPOSTURE.name)
    g, plan, x, labels, classes, want = request.getfixturevalue("reference")  # after the skip check
    proj = emit_firmware(g, plan, tmp_path_factory.mktemp("link") / board, board, app="link")
    return Case(board, g.fingerprint(), build_firmware(proj.out_dir), x, labels, classes, want)


def _sample(x: np.ndarray, label: int, classes: int, i: int) -> Sample:
    return Sample(Block.f32(x), Block.label(int(label), classes), Block.none(), sample_id=i)


@contextlib.contextmanager
def _qemu(fb: FirmwareBuild) -> Iterator[QemuProcess]:
    port = free_tcp_port()
    with QemuProcess(fb.target, fb.elf, icount=True, serial=SerialTcp(port, nodelay=True)) as q:
        yield q  # QemuProcess kills QEMU's process group on exit, whatever happened


class _SocketDevice:
    """A QEMU TCP serial port in the shape FaultProxy expects of a DeviceProcess (write / read)."""

    def __init__(self, url: str, timeout_s: float = 20.0) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                self.port = serial.serial_for_url(url, timeout=0)
                break
            except serial.SerialException:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, wait: float) -> bytes:
        end = time.monotonic() + wait
        while True:
            data = self.port.read(65536)
            if data or time.monotonic() >= end:
                return bytes(data)
            time.sleep(0.002)

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self.port.close()


def _stream(link: Link, c: Case, n: int) -> tuple[np.ndarray, list]:
    acks = [link.sample(_sample(c.x[i], c.labels[i], c.classes, i)) for i in range(n)]
    return link.get_params(), acks


def _check(case: Case, n: int, got: np.ndarray, acks: list, stats: object) -> None:
    want = case.want[n]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.max(np.abs(want))))
    assert [a.sample_id for a in acks] == list(range(n))
    assert acks[-1].step == n and not any(a.skipped for a in acks)
    assert stats.step == n and stats.samples_trained == n  # type: ignore[attr-defined]
    assert stats.last_step_instr > 0 and stats.total_train_instr >= n  # type: ignore[attr-defined]


def test_link_stream_and_pull_equal_the_simulator(case: Case) -> None:
    fb = case.fb
    t0 = time.monotonic()
    with _qemu(fb) as q:
        assert isinstance(q.serial, SerialTcp)
        link = Link(
            q.serial.url,
            connect_timeout=20.0,
            timeout=5.0,
            max_timeout=60.0,
            expect_model_hash=case.model_hash,
        )
        try:
            info = link.info
            assert info is not None and info.model_hash == case.model_hash and info.board == case.board
            assert info.trainable_numel == fb.manifest["trainable_numel"] and info.last_seq == 0
            got, acks = _stream(link, case, SAMPLES)
            stats = link.device_stats()
            assert link.exit_firmware() is not None
        finally:
            link.close()
        r = q.wait(timeout_s=30)
    assert r.exit_code == 0, r.message + r.stderr
    _check(case, SAMPLES, got, acks, stats)
    print(f"\nclean link run: {time.monotonic() - t0:.1f} s, {stats.last_step_instr} instructions per step")


def test_link_through_fault_proxy_gives_identical_parameters(case: Case) -> None:
    fb, n = case.fb, FAULT_SAMPLES[case.board]
    faults = Faults(drop=0.02, corrupt=0.03, duplicate=0.03, reorder=0.02, garbage=0.02)
    with _qemu(fb) as q:
        assert isinstance(q.serial, SerialTcp)
        dev = _SocketDevice(q.serial.url)
        proxy = FaultProxy(dev, faults, seed=SEED)  # type: ignore[arg-type]
        try:
            link = Link(proxy.url, connect_timeout=20.0, timeout=0.4, retries=12, max_timeout=30.0)
            try:
                got, acks = _stream(link, case, n)
                stats = link.device_stats()
                link_stats = link.stats
            finally:
                link.close()
        finally:
            proxy.close()
            dev.close()
        # still serving (no fault, no exit). RESET(EXIT) is not sent through the proxy: an ACK dropped after
        # the firmware has ended would keep the host retrying through its whole budget (the clean run exits)
        alive = q.running
    assert alive, "the firmware ended during the faulty session"
    injected = proxy.injected
    assert sum(injected.values()) > 10, injected
    _check(case, n, got, acks, stats)
    print(f"\n{n} samples, faults injected {injected}; host {link_stats}")
