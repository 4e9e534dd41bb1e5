"""On-device safety of the link firmware in QEMU (mps2-an386): validation slots, CHECKPOINT snapshot and
accept-if-better, ROLLBACK, the NaN/Inf guard, and checkpoints persisted to a semihosting file in two slots
(emit_firmware(app="link", val_slots=4, storage="semihost")). Every number is checked against the simulator
or against the bytes of the storage file; the slot format's behaviour under power loss at every byte is
checked on the host by tests/link/store_test.c.

The hand-posture CNN's last layer with Adam: a rollback that restored only the parameters (not the moments
and the step) would make the training after it differ from the simulator's.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import require_board, require_shared

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.cli import link_verbs
from mcutrain.core import ir
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.link_app import DEFAULT_STORAGE_FILE
from mcutrain.host import Block, CheckpointMode, DeviceError, ErrorCode, Link, Result, Sample
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError, UpdatePlan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the link harness
from link.harness import HERE, LINK_SRC, compile_c, sanitizer_env

pytestmark = pytest.mark.emulator

HANDPOSTURE = (
    Path(__file__).resolve().parents[3] / "shared/data/models/st_handposture_vl53l5cx_cnn2d_float.tflite"
)
BOARD = "mps2-an386"
VAL = 4
CLASSES = 8
RTOL = 1e-5
HEADER = struct.Struct("<IHHIIII20sI")  # mt_store.h: magic, format, header bytes, generation, step, ...


class Case(NamedTuple):
    fb: FirmwareBuild
    model_hash: str
    graph: ir.Graph
    plan: UpdatePlan
    x: np.ndarray
    labels: np.ndarray
    trainable: int  # floats of GET_PARAMS
    state: int  # floats of a checkpoint (parameters and Adam's two moments)


def _sample(c: Case, i: int) -> Sample:
    return Sample(Block.f32(c.x[i]), Block.label(int(c.labels[i]), CLASSES), sample_id=i)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    require_board(BOARD)
    require_shared("models", HANDPOSTURE.name)
    g = api.load(HANDPOSTURE)
    opt = OptimizerConfig(kind=OptimizerKind.ADAM, lr=1e-2)
    plan = api.plan(g, None, "last-layer", optimizer=opt).plan
    proj = emit_firmware(
        g, plan, tmp_path_factory.mktemp("ckpt") / "fw", BOARD, app="link", val_slots=VAL, storage="semihost"
    )
    mem = proj.manifest["link_memory"]
    n = proj.manifest["trainable_numel"]
    assert mem["snapshot"] == 4 * 3 * n + 4  # parameters, Adam's m and v, the step
    assert mem["validation"] == 4 * VAL * (128 + CLASSES)
    fb = build_firmware(proj.out_dir)
    assert (
        f"validation {mem['validation']:,} B" in fb.summary()
        and f"snapshot {mem['snapshot']:,} B" in fb.summary()
    )
    rng = np.random.default_rng(11)
    x = rng.random((64, *g.inputs[0][1])).astype(np.float32)
    labels = rng.integers(0, CLASSES, 64)
    return Case(fb, g.fingerprint(), g, plan, x, labels, n, 3 * n)


def _sim(c: Case, samples: range | list[int]) -> Simulator:
    sim = Simulator(c.graph, c.plan)
    eye = np.eye(CLASSES, dtype=np.float32)
    for i in samples:
        sim.train_step(c.x[i : i + 1], eye[c.labels[i] : c.labels[i] + 1])
    return sim


def _params(c: Case, sim: Simulator) -> np.ndarray:
    return np.concatenate([v for _, v in trainable_vectors(sim.graph, sim.plan, sim.numpy_params())])


def _val_loss_acc(c: Case, sim: Simulator, val: list[int]) -> tuple[float, float]:
    eye = np.eye(CLASSES, dtype=np.float32)
    loss = sim.eval_loss(c.x[val], eye[c.labels[val]])
    acc = float(np.mean(sim.predict(c.x[val]).numpy().argmax(1) == c.labels[val]))
    return loss, acc


@contextmanager
def _device(c: Case, cwd: Path) -> Iterator[tuple[Link, QemuProcess]]:
    """QEMU in ``cwd`` (where the storage file lives) and a Link to it; QEMU is killed at the end."""
    port = free_tcp_port()
    with QemuProcess(c.fb.target, c.fb.elf, serial=SerialTcp(port), cwd=cwd) as q:
        url = f"socket://127.0.0.1:{port}"
        link = Link(url, connect_timeout=20.0, timeout=5.0, expect_model_hash=c.model_hash)
        try:
            yield link, q
        finally:
            link.close()


def _close(q: QemuProcess, link: Link) -> None:
    assert link.exit_firmware() is not None
    r = q.wait(timeout_s=20)
    assert r.exit_code == 0, r.message + r.stderr


def test_accept_if_better_rollback_and_nonfinite_guard(case: Case, tmp_path: Path) -> None:
    c = case
    val, a, b, cc = list(range(VAL)), range(VAL, VAL + 16), range(20, 28), range(28, 36)
    before = _val_loss_acc(c, _sim(c, []), val)
    sim_a = _sim(c, a)
    after_a = _val_loss_acc(c, sim_a, val)
    assert after_a[0] < before[0] * 0.99  # the case is meaningful: training on A improves the validation loss
    with _device(c, tmp_path) as (link, q):
        info = link.info
        assert info is not None and info.can_checkpoint and info.can_persist and info.val_slots == VAL
        assert (info.step, info.restored_from, info.bad_slots) == (0, 0, 0)
        with pytest.raises(DeviceError) as e:
            link.checkpoint(CheckpointMode.ACCEPT_IF_BETTER)  # no validation sample yet: nothing to decide on
        assert e.value.reply.code == ErrorCode.NO_SAMPLE
        with pytest.raises(ValueError, match="validation slot 4: the device has 4"):
            link.validation_sample(_sample(c, 0), VAL)
        for k in val:
            link.validation_sample(_sample(c, k), k)
        ev = link.eval(valset=True)
        assert ev.count == VAL and ev.metric == before[1]
        np.testing.assert_allclose(ev.loss, before[0], rtol=RTOL)
        snap = link.checkpoint()  # the reference: the model before training
        assert snap.result == Result.OK and snap.loss == ev.loss and snap.step == 0

        for i in a:
            link.sample(_sample(c, i))
        kept = link.checkpoint(CheckpointMode.ACCEPT_IF_BETTER)
        assert kept.result == Result.OK and kept.step == 16
        np.testing.assert_allclose(kept.loss, after_a[0], rtol=RTOL)
        p_a = link.get_params()
        np.testing.assert_allclose(p_a, _params(c, sim_a), rtol=RTOL, atol=RTOL)

        for i in b:  # trains (moves Adam's moments and the step), then a worse model
            link.sample(_sample(c, i))
        link.put_params(np.random.default_rng(0).standard_normal(c.trainable).astype(np.float32) * 5)
        worse = link.checkpoint(CheckpointMode.ACCEPT_IF_BETTER)
        assert worse.result == Result.ROLLED_BACK and worse.loss > kept.loss and worse.step == 16
        assert np.array_equal(link.get_params(), p_a)
        for i in cc:  # continues exactly as if B had never happened: moments and step were restored
            link.sample(_sample(c, i))
        np.testing.assert_allclose(link.get_params(), _params(c, _sim(c, [*a, *cc])), rtol=RTOL, atol=RTOL)
        assert link.rollback().step == 16 and np.array_equal(link.get_params(), p_a)

        # the NaN/Inf guard: a NaN target makes the loss NaN (a NaN input would not: ReLU maps it to 0)
        target = np.zeros(CLASSES, np.float32)
        target[2] = np.nan
        bad = Sample(Block.f32(c.x[0]), Block.f32(target), sample_id=99)
        ack = link.sample(bad)
        st = link.device_stats()
        assert ack.skipped and ack.step == 16 and np.isnan(ack.loss)
        assert st.nonfinite_skips == 1 and st.step == 16 and np.array_equal(link.get_params(), p_a)
        _close(q, link)


def _slots(path: Path, state: int) -> list[tuple[int, int, int, np.ndarray] | None]:
    """(generation, step, payload CRC, payload floats) of each slot, read independently of mt_store.c."""
    data = path.read_bytes()
    out: list[tuple[int, int, int, np.ndarray] | None] = []
    size = HEADER.size + 4 * state
    for k in range(2):
        h = data[k * size : k * size + HEADER.size]
        if len(h) < HEADER.size:
            out.append(None)
            continue
        magic, fmt, hbytes, gen, step, n, crc, _, hcrc = HEADER.unpack(h)
        assert (magic, fmt, hbytes, n) == (0x4B43544D, 1, 48, 4 * state) and hcrc == zlib.crc32(h[:44])
        payload = data[k * size + HEADER.size : (k + 1) * size]
        out.append((gen, step, zlib.crc32(payload), np.frombuffer(payload, "<f4")))
        assert zlib.crc32(payload) == crc
    return out


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_persisted_checkpoints_survive_restarts_and_torn_slots(case: Case, tmp_path: Path) -> None:
    c = case
    store = tmp_path / DEFAULT_STORAGE_FILE
    slot = HEADER.size + 4 * c.state
    with _device(c, tmp_path) as (link, q):
        p0 = link.get_params()
        for i in range(6):
            link.sample(_sample(c, i))
        assert link.checkpoint(persist=True).result == Result.OK
        p6 = link.get_params()
        for i in range(6, 12):
            link.sample(_sample(c, i))
        link.checkpoint(persist=True)
        p12 = link.get_params()
        q.kill()  # power off: no goodbye
    s0, s1 = _slots(store, c.state)
    assert s0 is not None and s1 is not None
    assert (s0[0], s0[1], s1[0], s1[1]) == (1, 6, 2, 12)
    assert HEADER.unpack(store.read_bytes()[: HEADER.size])[7] == c.model_hash[:20].encode()
    assert np.array_equal(s0[3][: c.trainable], p6) and np.array_equal(s1[3][: c.trainable], p12)

    with _device(c, tmp_path) as (link, q):
        assert link.info is not None
        assert (link.info.step, link.info.restored_from, link.info.bad_slots) == (12, 2, 0)
        assert link.info.boot_source() == "storage slot 1"
        assert np.array_equal(link.get_params(), p12)
        q.kill()

    _flip(store, slot + HEADER.size + 100)  # slot 1's payload, as a write cut short would leave it
    with _device(c, tmp_path) as (link, q):
        assert link.info is not None
        assert (link.info.step, link.info.restored_from, link.info.bad_slots) == (6, 1, 2)
        assert np.array_equal(link.get_params(), p6)
        link.sample(_sample(c, 12))
        link.checkpoint(persist=True)  # into the damaged slot, never over the only good one
        q.kill()
    s0b, s1b = _slots(store, c.state)
    assert s0b is not None and s1b is not None and s0b[2] == s0[2] and (s1b[0], s1b[1]) == (2, 7)

    _flip(store, 20)  # slot 0's header
    with store.open("r+b") as f:
        f.truncate(slot + HEADER.size + 8)  # slot 1 cut inside its payload
    with _device(c, tmp_path) as (link, q):
        assert link.info is not None
        assert (link.info.step, link.info.restored_from, link.info.bad_slots) == (0, 0, 3)
        assert link.info.boot_source() == "compiled-in parameters; storage slot 0 and 1 damaged"
        assert np.array_equal(link.get_params(), p0)
        _close(q, link)


def test_slot_format_survives_power_loss_at_every_byte(tmp_path: Path) -> None:
    exe = compile_c(
        tmp_path / "store_test",
        [LINK_SRC / "mt_store.c", LINK_SRC / "mt_link.c", HERE / "store_test.c"],
        sanitize=True,
    )
    r = subprocess.run([str(exe)], capture_output=True, text=True, env=sanitizer_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "PASS", r.stdout + r.stderr


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mcutrain")
    link_verbs.add_parsers(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return int(args.func(args))


def test_stream_cli_validates_checkpoints_and_persists(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = case
    n = 28
    np.savez(tmp_path / "data.npz", x=c.x[:n], y=c.labels[:n])
    port = free_tcp_port()
    url = f"socket://127.0.0.1:{port}"
    with QemuProcess(c.fb.target, c.fb.elf, serial=SerialTcp(port), cwd=tmp_path) as q:
        common = ["stream", "--port", url, "--timeout", "5", "--connect-timeout", "20", "--quiet"]
        data = ["--data", str(tmp_path / "data.npz")]
        assert _main([*common, *data, "--val", "5"]) == 2
        assert "--val 5: the device has 4 validation slots" in capsys.readouterr().err
        assert _main([*common, *data, "--checkpoint-every", "8"]) == 2
        assert "give --val N" in capsys.readouterr().err
        rc = _main([*common, *data, "--val", str(VAL), "--checkpoint-every", "8", "--persist"])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert f"streamed {n - VAL} samples from #{VAL}" in out
        # 24 trained samples: accept-if-better after 8, 16 and 24, each persisted (after the reference)
        m = re.search(
            r"^checkpoints: (\d) accepted, (\d) rolled back, 3 persisted; validation loss (\S+) -> ",
            out,
            re.M,
        )
        assert m is not None and int(m[1]) + int(m[2]) == 3, out
        np.testing.assert_allclose(float(m[3]), _val_loss_acc(c, _sim(c, []), list(range(VAL)))[0], rtol=1e-3)
        with Link(url, timeout=5.0) as link:
            st = link.device_stats()
            kept = link.get_params()
            link.exit_firmware()
        assert q.wait(timeout_s=20).exit_code == 0
    newest = max((s for s in _slots(tmp_path / DEFAULT_STORAGE_FILE, c.state) if s), key=lambda s: s[0])
    assert newest[0] == 4 and np.array_equal(newest[3][: c.trainable], kept)
    assert newest[1] == st.step and st.step in (
        0,
        8,
        16,
        24,
    )  # the kept state: live after the last checkpoint


def test_emit_refuses_safety_options_that_cannot_work(case: Case, tmp_path: Path) -> None:
    g, plan, out = case.graph, case.plan, tmp_path / "fw"
    cases = [
        ({"app": None, "val_slots": 2}, "belong to the serial-link firmware"),
        ({"app": "link", "val_slots": 33}, r"val_slots must be 0\.\.32"),
        ({"app": "link", "storage": "semihost", "snapshot": False}, "storage needs snapshot=True"),
        ({"app": "link", "storage": "flash"}, "unknown storage 'flash'"),
        ({"app": "link", "storage": "semihost", "storage_file": "a b"}, "storage file 'a b'"),
    ]
    for kw, msg in cases:
        with pytest.raises(PlanError, match=msg):
            emit_firmware(g, plan, out, BOARD, **kw)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="semihost storage needs an Arm board under QEMU"):
        emit_firmware(g, plan, out, "stm32f746g-disco", app="link", storage="semihost")
