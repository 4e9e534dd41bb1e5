"""The serial link end to end: the hand-posture CNN's link firmware (emit_firmware(app="link")) in QEMU
(mps2-an386, Cortex-M4F) over a TCP serial port; the host streams 200 samples as SAMPLE+TRAIN, pulls the
parameters and compares them with the simulator's for the same samples in the same order. The same run
through the fault-injecting proxy of tests/link (drops, corruption, duplicates, reordering, garbage in both
directions) must end with the same parameters: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import serial

from mcutrain import api
from mcutrain.firmware import FirmwareBuild, build_firmware, emit_firmware, trainable_vectors
from mcutrain.host import Block, Link, Sample
from mcutrain.plan import OptimizerConfig
from mcutrain.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.sim import Simulator
from mcutrain.targets import load_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the link harness
from link.harness import FaultProxy, Faults

pytestmark = pytest.mark.emulator

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HANDPOSTURE = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
BOARD = "mps2-an386"
SAMPLES = 200
SEED = 7
RTOL = 1e-5
QEMU_LIMIT_S = 120.0


def _require() -> None:
    t = load_target(BOARD)
    assert t.qemu is not None
    missing = [x for x in (t.tool("gcc"), t.tool("objdump"), t.qemu.binary) if shutil.which(x) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (see scripts/setup.sh)")
    if not HANDPOSTURE.is_file():
        pytest.skip(f"{HANDPOSTURE} is absent (../shared/data: the real models)")


class Case(NamedTuple):
    model_hash: str
    fb: FirmwareBuild
    x: np.ndarray
    labels: np.ndarray
    classes: int
    want: np.ndarray  # the simulator's trainable parameters after the samples, mt_export_params layout


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """(graph, plan, build, samples (x, labels), the simulator's parameters after the samples)."""
    _require()
    g = api.load(HANDPOSTURE)
    plan = api.plan(g, None, "last-layer", optimizer=OptimizerConfig(lr=1e-3)).plan
    proj = emit_firmware(g, plan, tmp_path_factory.mktemp("link") / "fw", BOARD, app="link")
    fb = build_firmware(proj.out_dir)
    rng = np.random.default_rng(SEED)
    shape = g.inputs[0][1]
    classes = plan.loss.target_numel(g.shapes[g.outputs[0]])
    # inputs in [0, 1) like normalised ToF frames (standard-normal ones drive the loss to ~50, where 200
    # steps of SGD amplify float round-off beyond any tolerance)
    x = rng.random((SAMPLES, *shape)).astype(np.float32)
    labels = rng.integers(0, classes, SAMPLES)
    sim = Simulator(g, plan)
    onehot = np.eye(classes, dtype=np.float32)
    for i in range(SAMPLES):
        sim.train_step(x[i : i + 1], onehot[labels[i] : labels[i] + 1], None)
    want = np.concatenate([v for _, v in trainable_vectors(g, plan, sim.numpy_params())])
    return Case(g.fingerprint(), fb, x, labels, classes, want)


def _sample(x: np.ndarray, label: int, classes: int, i: int) -> Sample:
    return Sample(Block.f32(x), Block.label(int(label), classes), Block.none(), sample_id=i)


@contextlib.contextmanager
def _qemu(fb: FirmwareBuild) -> Iterator[QemuProcess]:
    port = free_tcp_port()
    with QemuProcess(fb.target, fb.elf, icount=True, serial=SerialTcp(port)) as q:
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


def _connect(url: str, **kw: object) -> Link:
    """Link once QEMU listens (it opens its port a moment after starting)."""
    end = time.monotonic() + 20.0
    while True:
        try:
            return Link(url, **kw)  # type: ignore[arg-type]
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _stream(link: Link, c: Case) -> tuple[np.ndarray, list]:
    acks = [link.sample(_sample(c.x[i], c.labels[i], c.classes, i)) for i in range(SAMPLES)]
    return link.get_params(), acks


def _check(case: Case, got: np.ndarray, acks: list, stats: object) -> None:
    want = case.want
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.max(np.abs(want))))
    assert [a.sample_id for a in acks] == list(range(SAMPLES))
    assert acks[-1].step == SAMPLES and not any(a.skipped for a in acks)
    assert stats.step == SAMPLES and stats.samples_trained == SAMPLES  # type: ignore[attr-defined]
    assert stats.last_step_instr > 0 and stats.total_train_instr >= SAMPLES  # type: ignore[attr-defined]


def test_link_stream_and_pull_equal_the_simulator(case: Case) -> None:
    fb = case.fb
    t0 = time.monotonic()
    with _qemu(fb) as q:
        assert isinstance(q.serial, SerialTcp)
        link = _connect(q.serial.url, timeout=5.0, max_timeout=60.0, expect_model_hash=case.model_hash)
        try:
            info = link.info
            assert info is not None and info.model_hash == case.model_hash and info.board == BOARD
            assert info.trainable_numel == fb.manifest["trainable_numel"] and info.last_seq == 0
            got, acks = _stream(link, case)
            stats = link.device_stats()
            assert link.exit_firmware() is not None
        finally:
            link.close()
        r = q.wait(timeout_s=30)
    assert r.exit_code == 0, r.message + r.stderr
    _check(case, got, acks, stats)
    print(f"\nclean link run: {time.monotonic() - t0:.1f} s, {stats.last_step_instr} instructions per step")


def test_link_through_fault_proxy_gives_identical_parameters(case: Case) -> None:
    fb = case.fb
    faults = Faults(drop=0.02, corrupt=0.03, duplicate=0.03, reorder=0.02, garbage=0.02)
    with _qemu(fb) as q:
        assert isinstance(q.serial, SerialTcp)
        dev = _SocketDevice(q.serial.url)
        proxy = FaultProxy(dev, faults, seed=SEED)  # type: ignore[arg-type]
        try:
            link = _connect(proxy.url, timeout=0.4, retries=12, max_timeout=30.0)
            try:
                got, acks = _stream(link, case)
                stats = link.device_stats()
                link_stats = link.stats
                link.exit_firmware()
            finally:
                link.close()
        finally:
            proxy.close()
            dev.close()
        r = q.wait(timeout_s=30)
    assert not r.timed_out, r.message
    injected = proxy.injected
    assert sum(injected.values()) > 10, injected
    _check(case, got, acks, stats)
    print(f"\nfaults injected {injected}; host {link_stats}")
