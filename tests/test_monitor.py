"""The training monitor (mcutrain.host.monitor) and its TensorBoard event files (mcutrain.host.tbevents),
against the link's fake device (tests/link: the real mt_link_service with a toy model, ASan + UBSan, no
QEMU): every ACK becomes a CSV row and TensorBoard scalars that decode back to the ACK's values; STATS and
held-out evaluation land at the steps they were asked for; the PNG is written; the view degrades to plain
lines off a terminal; ``mcutrain monitor --port`` polls STATS without moving the device's resume point.
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mcutrain.cli import main
from mcutrain.host import Block, Link, Sample
from mcutrain.host import tbevents as tb
from mcutrain.host.monitor import EMA, HeldOut, Monitor, read_csv
from mcutrain.host.monitor_views import LiveView, PlainView, make_view

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/: the link harness
from link import harness as h

CLASSES = 10
SHAPE = (1, 4, 4)


@pytest.fixture(scope="module")
def device_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not h.have("gcc"):
        pytest.skip("gcc not installed")
    return h.build_fake_device(tmp_path_factory.mktemp("fake"))


@pytest.fixture
def url(device_exe: Path) -> Iterator[str]:
    """A fake device of a 1x4x4 input, 10 classes, 40 parameters, behind a fault-free proxy."""
    dev = h.DeviceProcess(device_exe, "--shape", "1", "4", "4", "--target", str(CLASSES), "--mask", "0")
    proxy = h.FaultProxy(dev, h.Faults())
    try:
        yield proxy.url
    finally:
        proxy.close()
        rc, err = dev.close()
        assert rc == 0 and "runtime error" not in err, err


def _sample(i: int) -> Sample:
    rng = np.random.default_rng(i)
    x = rng.random(int(np.prod(SHAPE))).astype(np.float32)
    return Sample(Block.f32(x), Block.label(int(rng.integers(CLASSES)), CLASSES), sample_id=i)


def _events_file(log_dir: Path) -> Path:
    files = list(log_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    return files[0]


def test_monitor_logs_every_ack_to_csv_and_tensorboard(url: str, tmp_path: Path) -> None:
    n, stats_every, eval_every = 30, 5, 10
    held = [_sample(1000 + k) for k in range(3)]
    out = io.StringIO()  # not a TTY: plain lines
    view = make_view(out, every_s=0.0)
    assert isinstance(view, PlainView)
    mon = Monitor(tmp_path / "logs", view, stats_every=stats_every, held_out=HeldOut(held, eval_every))
    acks = []
    with Link(url, timeout=2.0) as link:
        assert link.info is not None
        mon.start(link.info)
        for i in range(n):
            ack = link.sample(_sample(i))
            acks.append(ack)
            mon.on_ack(link, ack)
        png = mon.close()
        # the held-out samples did not move the resume point
        assert link.hello().next_sample_id == n
        # what the held-out evaluation at step 30 should have found (no training since)
        want_loss, hits = [], []
        for s in held:
            link.sample(s, train=False)
            want_loss.append(link.eval().loss)
            hits.append(np.argmax(link.infer()) == np.argmax(s.target.to_floats(role="target")))

    rows = read_csv(tmp_path / "logs" / "steps.csv")
    assert [r.step for r in rows] == [a.step for a in acks] == list(range(1, n + 1))
    assert [r.sample_id for r in rows] == list(range(n))
    assert [np.float32(r.loss) for r in rows] == [np.float32(a.loss) for a in acks]
    avg = acks[0].loss
    for r, a in zip(rows, acks, strict=True):
        avg = (1 - EMA) * avg + EMA * a.loss if r.step > 1 else avg
        assert r.loss_avg == pytest.approx(avg, rel=1e-7)
    polled = [r.step for r in rows if r.instr_per_step is not None]
    assert polled == list(range(stats_every, n + 1, stats_every))
    assert all(r.instr_per_step == 1000 and r.stack_used == 1234 for r in rows if r.instr_per_step)  # toy app
    evals = [r for r in rows if r.val_loss is not None]
    assert [r.step for r in evals] == [10, 20, 30]
    assert evals[-1].val_loss == pytest.approx(float(np.mean(want_loss)), rel=1e-6)
    assert evals[-1].val_metric == pytest.approx(float(np.mean(hits)))

    scalars = tb.read_scalars(_events_file(tmp_path / "logs"))
    assert scalars["train/loss"] == [(a.step, float(np.float32(a.loss))) for a in acks]
    assert [s for s, _ in scalars["device/instructions_per_step"]] == [5, 10, 15, 20, 25, 30]
    assert [v for _, v in scalars["held_out/loss"]] == pytest.approx([r.val_loss for r in evals], rel=1e-6)
    assert scalars["device/arena_bytes"][0][1] >= 0

    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("monitor: model ") and "RAM: plan peak" in lines[1]
    steps = [ln for ln in lines[2:] if ln.startswith("monitor: step ")]
    assert len(steps) == n + 1  # one per step (every_s=0) and the final line
    assert "\x1b" not in out.getvalue()  # no terminal control codes in a log
    assert "held-out loss" in steps[9] and "instr/step" in steps[4]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_view_redraws_in_place_on_a_terminal(url: str) -> None:
    out = _Tty()
    view = make_view(out, every_s=0.0)
    assert isinstance(view, LiveView)
    mon = Monitor(None, view, stats_every=1)
    with Link(url, timeout=2.0) as link:
        assert link.info is not None
        mon.start(link.info)
        for i in range(3):
            mon.on_ack(link, link.sample(_sample(i)))
    assert mon.close() is None  # no log folder: no PNG
    text = out.getvalue()
    assert text.count("\x1b[4F") == 3  # redraws 2, 3 and the final one move up over the 4 lines
    assert "step 3, sample #2" in text and "1,000 instr/step" in text


def test_monitor_command_polls_stats_without_moving_the_resume_point(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Link(url, timeout=2.0) as link:
        for i in range(7):
            link.sample(_sample(i))
        before = link.hello()
    argv = ["monitor", "--port", url, "--polls", "3", "--interval", "0.05", "--log-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "monitor: step 7, sample #6" in out and "monitor: 3 polls, 1 steps logged" in out
    rows = read_csv(tmp_path / "steps.csv")
    assert len(rows) == 1 and rows[0].step == 7 and rows[0].instr_per_step == 1000
    with Link(url, timeout=2.0) as link:
        after = link.hello()
    assert (after.last_seq, after.last_sample_id) == (before.last_seq, before.last_sample_id)
    assert main(["monitor", "--port", url, "--interval", "0"]) == 2


def test_event_file_format_by_hand(tmp_path: Path) -> None:
    assert tb.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tb.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    # Event{wall_time=0.0, step=3, summary{value{tag="a", simple_value=1.0}}}, encoded by hand
    value = b"\x0a\x01a" + b"\x15" + struct.pack("<f", 1.0)
    want = b"\x09" + bytes(8) + b"\x10\x03" + b"\x2a\x0a" + b"\x0a\x08" + value
    assert tb.scalar_event("a", 1.0, 3, 0.0) == want
    rec = tb.record(want)
    assert rec[:8] == struct.pack("<Q", len(want)) and len(rec) == 8 + 4 + len(want) + 4
    with tb.EventWriter(tmp_path) as w:
        w.scalar("x/y", 2.5, step=-1, wall_time=12.5)
        w.scalar("x/y", float("inf"), step=2**40)
    path = _events_file(tmp_path)
    evs = tb.read_events(path)
    assert evs[0].file_version == "brain.Event:2" and not evs[0].scalars
    assert (evs[1].step, evs[1].wall_time, evs[1].scalars) == (-1, 12.5, {"x/y": 2.5})
    assert evs[2].step == 2**40 and evs[2].scalars["x/y"] == float("inf")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0x01  # a flipped bit in the last event's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="data CRC mismatch"):
        tb.read_events(path)
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(ValueError, match="cut short"):
        tb.read_events(path)
