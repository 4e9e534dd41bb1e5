"""Serial protocol v1: Python framing, the C device side (host build), and host <-> device exchanges.

The C side is compiled with gcc here (tests/link/harness.py): a ctypes shim for the framing and the
sample decoding, and ``fake_device`` (ASan + UBSan) that runs ``mt_link_service`` over pipes with a
toy model that logs the CRC of every sample it trains on. A fault-injecting TCP proxy sits between
the Python ``Link`` and the device. No QEMU needed.
"""

from __future__ import annotations

import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from link import harness as h
from link.make_corpus import cases as corpus_cases

from mcutrain.boards.qemu import free_tcp_port
from mcutrain.demos.blend import RunningMean
from mcutrain.host import framing as F
from mcutrain.host import messages as M
from mcutrain.host import sample_encoding as S
from mcutrain.host.framing import ErrorCode, Frame, FrameDecoder, FrameError, MsgType
from mcutrain.host.link import Link
from mcutrain.host.link_transport import DeviceError, LinkClosed, LinkError, LinkTimeout, SequenceError
from mcutrain.host.sample_encoding import Block, Enc, Sample

RNG_SEED = 20240611


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mt_link")


@pytest.fixture(scope="module")
def shim(build_dir: Path) -> h.Shim:
    return h.build_shim(build_dir)


@pytest.fixture(scope="module")
def device_exe(build_dir: Path) -> Path:
    return h.build_fake_device(build_dir)


@pytest.fixture(scope="module")
def fuzzer(build_dir: Path) -> Path:
    return h.build_fuzzer(build_dir)


class Rig:
    """A fake device behind a fault proxy; checks the device's exit status and stderr at the end."""

    def __init__(
        self, exe: Path, log: Path, *args: str, faults: h.Faults | None = None, seed: int = 0
    ) -> None:
        self.log = log
        self.device = h.DeviceProcess(exe, *args, log=log)
        self.proxy = h.FaultProxy(self.device, faults or h.Faults(), seed)
        self.url = self.proxy.url
        self.killed = False

    def applied(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def close(self) -> None:
        self.proxy.close()
        rc, err = self.device.close()
        if self.killed:
            return
        assert rc == 0, f"fake device exited with {rc}:\n{err}"
        assert "runtime error" not in err and "ERROR: AddressSanitizer" not in err, err


@pytest.fixture
def rig(device_exe: Path, tmp_path: Path):
    rigs: list[Rig] = []

    def make(*args: str, faults: h.Faults | None = None, seed: int = 0, name: str = "log") -> Rig:
        r = Rig(device_exe, tmp_path / f"{name}.txt", *args, faults=faults, seed=seed)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.close()


def random_bytes(rng: random.Random, n: int, zero_rate: float) -> bytes:
    return bytes(0 if rng.random() < zero_rate else rng.randrange(1, 256) for _ in range(n))


def random_frame(rng: random.Random, max_payload: int = 600) -> Frame:
    n = rng.choice([0, 1, 2, 253, 254, 255, 508, rng.randrange(max_payload)])
    return Frame(
        rng.randrange(256),
        rng.randrange(256),
        rng.randrange(1 << 32),
        random_bytes(rng, n, rng.random() * 0.3),
    )


# ------------------------------------------------------------------------------------------------
# Python framing
# ------------------------------------------------------------------------------------------------


def test_cobs_round_trip_randomized() -> None:
    rng = random.Random(RNG_SEED)
    sizes = [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000, 6144]
    for k in range(1500):
        n = sizes[k % len(sizes)] if k < 2 * len(sizes) else rng.randrange(700)
        data = random_bytes(rng, n, rng.choice([0.0, 0.01, 0.2, 0.9, 1.0]))
        enc = F.cobs_encode(data)
        assert 0 not in enc
        assert len(enc) <= n + n // 254 + 1
        assert F.cobs_decode(enc) == data


def test_frame_round_trip_and_stream_decoding() -> None:
    rng = random.Random(RNG_SEED + 1)
    frames = [random_frame(rng) for _ in range(300)]
    stream = bytearray()
    for f in frames:
        wire = f.encode()
        assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
        assert F.decode_wire(wire) == f
        stream += wire
    dec = FrameDecoder()
    got: list[Frame | FrameError] = []
    pos = 0
    while pos < len(stream):  # arbitrary read sizes
        step = rng.randrange(1, 300)
        got += dec.feed(stream[pos : pos + step])
        pos += step
    assert got == frames


def test_frame_errors_are_classified() -> None:
    good = Frame(MsgType.HELLO, 0, 7, b"hello").encode()
    dec = FrameDecoder(max_frame=64)
    flipped = bytearray(good)
    flipped[good.index(b"hello")] ^= 0x10
    events = dec.feed(bytes(flipped))
    assert [e.code for e in events] == [ErrorCode.CRC]  # type: ignore[union-attr]
    assert [e.code for e in dec.feed(good[:6] + b"\x00")] == [ErrorCode.FRAMING]  # type: ignore[union-attr]
    assert [e.code for e in dec.feed(b"\x00\x03ab\x00")] == [ErrorCode.SHORT]  # type: ignore[union-attr]
    big = Frame(MsgType.SAMPLE, 0, 1, b"\x01" * 100).encode()
    assert [e.code for e in dec.feed(big)] == [ErrorCode.OVERSIZE]  # type: ignore[union-attr]
    assert dec.feed(b"\x00" * 5) == []  # empty frames are ignored


def test_noise_costs_only_the_noise() -> None:
    good = Frame(MsgType.HELLO, 0, 7, b"hello").encode()
    got = FrameDecoder().feed(b"boot banner\r\n" + good + b"\xff\xfe" + good)
    frames = [g for g in got if isinstance(g, Frame)]
    assert frames == [F.decode_wire(good)] * 2
    assert len(got) == 4  # the banner and the two stray bytes are one dropped frame each


def test_sample_blocks_pack_and_decode() -> None:
    rng = np.random.default_rng(RNG_SEED)
    img = rng.integers(0, 256, (1, 64, 80))
    mm = rng.integers(-32768, 32768, 64)
    mask = rng.random(64) < 0.5
    s = Sample(Block.u8(img, 1 / 255.0, -0.5), Block.i16(mm, 1e-3), Block.bits(mask), sample_id=42, slot=1)
    assert Sample.unpack(s.pack()) == s
    x = s.input.to_floats()
    assert x is not None and x.dtype == np.float32
    assert np.array_equal(x, img.ravel().astype(np.float32) * np.float32(1 / 255.0) + np.float32(-0.5))
    m = s.mask.to_floats(role="mask")
    assert m is not None and np.array_equal(m, mask.astype(np.float32))
    lab = Block.label(3, 10).to_floats()
    assert lab is not None and lab.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert Block.none().to_floats(5, role="mask").tolist() == [1.0] * 5  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="outside"):
        Block.u8([256])
    with pytest.raises(ValueError, match="not allowed"):
        Sample(Block.label(1, 4)).pack()


# ------------------------------------------------------------------------------------------------
# C framing and samples against Python
# ------------------------------------------------------------------------------------------------


def test_c_crc_is_zlib(shim: h.Shim) -> None:
    rng = random.Random(RNG_SEED + 2)
    for n in (0, 1, 3, 4, 100, 5000):
        data = random_bytes(rng, n, 0.1)
        assert shim.crc32(data) == zlib.crc32(data)


def test_c_encoder_is_byte_identical_to_python(shim: h.Shim) -> None:
    rng = random.Random(RNG_SEED + 3)
    for _ in range(400):
        f = random_frame(rng, 2000)
        assert shim.encode(f) == f.encode()


def test_c_decodes_python_frames_and_vice_versa(shim: h.Shim) -> None:
    rng = random.Random(RNG_SEED + 4)
    frames = [random_frame(rng) for _ in range(300)]
    stream = b"".join(f.encode() for f in frames)
    assert [e.frame for e in shim.parse(stream)] == frames
    c_stream = b"".join(shim.encode(f) for f in frames)
    assert FrameDecoder().feed(c_stream) == frames


def mutate(rng: random.Random, wire: bytes) -> bytes:
    b = bytearray(wire)
    kind = rng.randrange(7)
    if kind == 0:
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b = b[: rng.randrange(len(b))]
    elif kind == 2:
        b = b + b  # duplicated
    elif kind == 3:
        at = rng.randrange(len(b))
        b[at:at] = random_bytes(rng, rng.randrange(1, 10), 0.1)
    elif kind == 4:
        del b[rng.randrange(len(b))]
    elif kind == 5:
        b = b[1:-1]  # delimiters lost: runs into the next frame
    else:
        b = b"\x01" * 900 + b  # oversized noise before the frame
    return bytes(b)


def test_c_and_python_receivers_agree_on_damaged_streams(shim: h.Shim) -> None:
    """Corrupted, truncated, duplicated, spliced and oversized frames: both receivers report the same
    sequence of frames and error codes, and every intact frame after damage is still received."""
    rng = random.Random(RNG_SEED + 5)
    codes: set[int] = set()
    for cap in (320, 1024, 6144):
        parts, intact = [], []
        for _ in range(250):
            f = random_frame(rng, 900)
            if rng.random() < 0.5:
                parts.append(mutate(rng, f.encode()))
            else:
                parts.append(f.encode())
                if len(f.body()) <= cap:
                    intact.append(f)
        stream = b"".join(parts)
        c_events = shim.parse(stream, cap)
        py_events = FrameDecoder(max_frame=cap).feed(stream)
        c_view = [e.frame if e.code == 1 else -e.code for e in c_events]
        py_view = [e if isinstance(e, Frame) else int(e.code) for e in py_events]
        assert c_view == py_view
        received = [e for e in py_view if isinstance(e, Frame)]
        it = iter(received)
        assert all(any(g == f for g in it) for f in intact), "an intact frame was lost"
        codes |= {-e.code for e in c_events if e.code < 0}
    assert codes <= {1, 2, 3, 4} and {1, 2, 3} <= codes


def test_c_sample_decoding_matches_python_bit_for_bit(shim: h.Shim) -> None:
    rng = np.random.default_rng(RNG_SEED)
    xn, tn = 300, 16
    for k in range(60):
        inputs = [
            Block.u8(rng.integers(0, 256, xn), float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))),
            Block.i16(rng.integers(-32768, 32768, xn), float(rng.uniform(1e-4, 1e-1)), float(rng.normal())),
            Block.f32(rng.normal(size=xn).astype(np.float32)),
        ]
        targets = [
            Block.label(int(rng.integers(tn)), tn),
            Block.i16(rng.integers(0, 4000, tn), 1e-3),
            Block.f32(rng.normal(size=tn)),
            Block.u8(rng.integers(0, 256, tn), 0.5, 1.0),
        ]
        masks = [
            Block.bits(rng.random(tn) < 0.5),
            Block.none(),
            Block.f32(rng.random(tn)),
            Block.u8(rng.integers(0, 3, tn)),
        ]
        s = Sample(inputs[k % 3], targets[k % 4], masks[(k // 3) % 4], sample_id=k)
        r, x, t, m, _, sid = shim.decode_sample(s.pack(), xn, tn)
        assert r == 0 and sid == k
        for got, block, role in ((x, s.input, "input"), (t, s.target, "target"), (m, s.mask, "mask")):
            want = block.to_floats(tn if role != "input" else xn, role=role)
            assert want is not None
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (k, role)


def test_c_sample_errors(shim: h.Shim) -> None:
    ok = Sample(Block.u8(np.zeros(10)), Block.label(2, 4), Block.bits([1, 0, 1, 1]))
    assert shim.decode_sample(ok.pack(), 10, 4)[0] == 0
    r, *_, detail, _ = shim.decode_sample(replace(ok, input=Block.u8(np.zeros(9))).pack(), 10, 4)
    assert (r, detail) == (-ErrorCode.SIZE, 10)
    bad_label = Block(Enc.LABEL, 4, struct.pack("<H", 4))
    r, *_, detail, _ = shim.decode_sample(replace(ok, target=bad_label).pack(), 10, 4)
    assert (r, detail) == (-ErrorCode.RANGE, 4)
    assert shim.decode_sample(ok.pack()[:-1], 10, 4)[0] == -ErrorCode.LENGTH
    assert shim.decode_sample(ok.pack() + b"\x00", 10, 4)[0] == -ErrorCode.LENGTH
    wrong_role = S.SAMPLE_HEADER.pack(0, 0) + Block.bits([1] * 10).pack() + ok.target.pack() + ok.mask.pack()
    assert shim.decode_sample(wrong_role, 10, 4)[0] == -ErrorCode.ENCODING
    # a count whose byte size overflows 32 bits must not pass the length check
    huge = struct.pack("<IBxxx", 0, 0) + struct.pack("<BxxxIff", Enc.F32, 0x40000001, 1, 0) + bytes(4)
    assert shim.decode_sample(huge, 10, 4)[0] == -ErrorCode.LENGTH
    # NONE keeps input and target, a missing mask is all ones
    r, x, t, m, *_ = shim.decode_sample(Sample(Block.none()).pack(), 10, 4)
    assert r == 0 and np.isnan(x).all() and np.isnan(t).all() and (m == 1).all()


# ------------------------------------------------------------------------------------------------
# The service, frame by frame (raw bytes to the fake device)
# ------------------------------------------------------------------------------------------------


def reply(dev: h.DeviceProcess, f: Frame) -> M.Reply:
    got = [g for g in dev.exchange(f.encode()) if isinstance(g, Frame)]
    assert len(got) == 1, got
    return M.parse_reply(got[0])


def test_service_sequencing_duplicates_and_errors(device_exe: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    dev = h.DeviceProcess(device_exe, "--shape", "1", "2", "5", "--target", "4", log=log)
    try:
        s = Sample(Block.u8(np.arange(10)), Block.i16([1, 2, 3, 4]), Block.bits([1, 1, 0, 1]), sample_id=9)
        first = reply(dev, Frame(MsgType.SAMPLE, F.FLAG_TRAIN, 1, s.pack()))
        assert isinstance(first, M.Ack) and (first.seq, first.step, first.sample_id) == (1, 1, 9)
        assert not first.duplicate
        again = reply(dev, Frame(MsgType.SAMPLE, F.FLAG_TRAIN, 1, s.pack()))  # a retransmission
        assert isinstance(again, M.Ack) and again.duplicate
        assert (again.seq, again.step, again.loss) == (1, 1, first.loss)
        older = reply(dev, Frame(MsgType.TRAIN, 0, 0))  # an old duplicate: cumulative ACK of seq 1
        assert isinstance(older, M.Ack) and older.duplicate and older.seq == 1
        gap = reply(dev, Frame(MsgType.TRAIN, 0, 5))
        assert isinstance(gap, M.ErrorReply) and gap.code == ErrorCode.SEQUENCE
        assert (gap.last_seq, gap.detail, gap.seq) == (1, 2, 5)
        assert log.read_text().split() == [h.applied_crc(s)]
        # errors do not consume sequence numbers
        wrong = replace(s, input=Block.u8(np.arange(9)))
        e = reply(dev, Frame(MsgType.SAMPLE, 0, 2, wrong.pack()))
        assert isinstance(e, M.ErrorReply) and (e.code, e.detail, e.request) == (
            ErrorCode.SIZE,
            10,
            MsgType.SAMPLE,
        )
        ok = reply(dev, Frame(MsgType.TRAIN, 0, 2))
        assert isinstance(ok, M.Ack) and ok.seq == 2 and ok.step == 2
        e = reply(dev, Frame(MsgType.INFER, F.FLAG_RUN, 77, b"\x00"))
        assert isinstance(e, M.ErrorReply) and (e.code, e.seq) == (ErrorCode.LENGTH, 77)
        e = reply(dev, Frame(0x42, 0, 78))
        assert isinstance(e, M.ErrorReply) and e.code == ErrorCode.TYPE
        e = reply(dev, Frame(MsgType.HELLO, 0, 79, version=2))
        assert isinstance(e, M.ErrorReply) and (e.code, e.detail) == (ErrorCode.VERSION, 1)
        e = reply(dev, Frame(MsgType.ROLLBACK, 0, 3))  # no snapshot yet: the toy's callback fails
        assert isinstance(e, M.ErrorReply) and e.code == ErrorCode.APP and e.detail == 0xFFFFFFFF
        e = reply(dev, Frame(MsgType.CHECKPOINT, 0, 3, b"\x05"))
        assert isinstance(e, M.ErrorReply) and e.code == ErrorCode.RANGE
        # damaged frames are answered with a transient error, replies (an echo) are ignored
        bad = bytearray(Frame(MsgType.HELLO, 0, 80).encode())
        bad[bad.index(80)] ^= 1  # the sequence number's byte
        got = dev.exchange(bytes(bad))
        assert len(got) == 1 and isinstance(got[0], Frame)
        err = M.parse_reply(got[0])
        assert isinstance(err, M.ErrorReply) and err.code == ErrorCode.CRC and err.transient
        assert dev.exchange(Frame(MsgType.ACK, 0, 1, bytes(16)).encode(), timeout=0.3) == []
        info = reply(dev, Frame(MsgType.HELLO, 0, 81))
        assert isinstance(info, M.Info) and (info.last_seq, info.last_sample_id, info.step) == (2, 9, 2)
        exit_ack = reply(dev, Frame(MsgType.RESET, 0, 3, bytes([M.ResetMode.EXIT])))
        assert isinstance(exit_ack, M.Ack) and exit_ack.seq == 3
    finally:
        rc, err = dev.close()
    assert rc == 0, err


# ------------------------------------------------------------------------------------------------
# Link <-> device
# ------------------------------------------------------------------------------------------------


def test_link_verbs(rig) -> None:
    r = rig("--banner")
    with Link(r.url, timeout=0.5) as link:
        info = link.info
        assert info is not None
        assert (info.version, info.input_shape, info.target_numel, info.trainable_numel) == (
            1,
            (1, 64, 80),
            64,
            3000,
        )
        assert info.max_frame == 6144 and info.uses_mask and info.next_sample_id == 0 and info.val_slots == 2
        assert info.model_hash.startswith("0123456789abcdef") and info.board == "host"
        assert link.stats.frame_errors == 1  # the boot banner
        samples = [h.make_sample(i) for i in range(20)]
        acks = [link.sample(s) for s in samples]
        assert [a.seq for a in acks] == list(range(1, 21))
        assert acks[16].skipped and not acks[15].skipped  # sample 16 has a NaN target
        assert acks[-1].step == 19 and acks[-1].sample_id == 19
        st = link.device_stats()
        assert (st.step, st.samples_trained, st.nonfinite_skips, st.last_seq) == (19, 20, 1, 20)
        assert st.crc_errors == 0 and st.duplicates == 0
        params = link.get_params()
        assert params.shape == (3000,) and params.dtype == np.float32
        out = link.infer(samples[3])
        x = samples[3].input.to_floats()
        assert x is not None
        assert np.array_equal(out, x[:64] + params[:64])
        assert not info.can_blend
        with pytest.raises(DeviceError, match="UNSUPPORTED"):  # no running mean in this firmware
            link.infer(blend=True)
        assert link.eval().count == 1 and link.eval(valset=True).count == 2
        new = np.arange(3000, dtype=np.float32) * 0.25
        link.put_params(new)
        assert np.array_equal(link.get_params(), new)
        snap = link.checkpoint()
        assert snap.result == M.Result.OK
        link.sample(h.make_sample(100))
        assert not np.array_equal(link.get_params(), new)
        link.rollback()
        assert np.array_equal(link.get_params(), new)
        assert link.reset_model().step == 0
        with pytest.raises(DeviceError, match=r"SIZE.*detail 5120"):
            link.sample(Sample(Block.u8(np.zeros(10)), Block.i16(np.zeros(64))))
        with pytest.raises(DeviceError, match="RANGE"):
            link.sample(Sample(Block.none(), Block.label(0, 64), slot=7))
        assert r.applied() == [c for c in map(h.applied_crc, [*samples, h.make_sample(100)]) if c]
        assert link.exit_firmware() is not None


def test_link_small_device_frames(rig) -> None:
    r = rig("--frame", "320", "--params", "1000", "--mask", "0")
    with Link(r.url, timeout=0.5) as link:
        assert link.max_frame == 320 and link.info is not None and not link.info.uses_mask
        new = np.linspace(-1, 1, 1000, dtype=np.float32)
        link.put_params(new)  # 14 chunks of 75 floats
        assert np.array_equal(link.get_params(), new)
        with pytest.raises(ValueError, match="exceeds the device's frame size 320"):
            link.sample(h.make_sample(0))
        small = Sample(Block.none(), Block.i16(np.zeros(64)), Block.bits(np.ones(64)))
        with pytest.raises(DeviceError, match="ENCODING"):  # this plan takes no mask
            link.sample(small)


def run_stream(url: str, samples: list[Sample], timeout: float = 0.1) -> tuple[Link, np.ndarray]:
    link = Link(url, timeout=timeout, retries=12, max_timeout=2.0)
    for s in samples:
        link.sample(s)
    return link, link.get_params()


def test_exactly_once_in_order_through_faults(rig) -> None:
    """Dropped, corrupted, duplicated, reordered, truncated frames and garbage in both directions:
    every sample is trained once, in order, and the parameters equal those of a clean run."""
    n = 60
    samples = [h.make_sample(i, seed=1) for i in range(n)]
    want = [c for c in map(h.applied_crc, samples) if c]
    clean = rig(name="clean")
    link, clean_params = run_stream(clean.url, samples)
    link.close()
    assert clean.applied() == want  # C decoding == Python reference decoding, end to end

    faults = h.Faults(drop=0.04, corrupt=0.04, duplicate=0.05, reorder=0.04, truncate=0.02, garbage=0.04)
    faulty = rig(faults=faults, seed=7, name="faulty")
    t0 = time.monotonic()
    link, params = run_stream(faulty.url, samples)
    elapsed = time.monotonic() - t0
    stats, dev = link.stats, link.device_stats()
    link.close()
    assert faulty.applied() == want
    assert np.array_equal(params, clean_params)
    injected = faulty.proxy.injected
    assert all(injected.get(k, 0) > 0 for k in ("drop", "corrupt", "duplicate", "reorder", "garbage")), (
        injected
    )
    assert stats.retransmits > 0 and dev.duplicates > 0 and dev.crc_errors + dev.bad_frames > 0
    print(f"\n{n} samples through faults {injected} in {elapsed:.1f} s: {stats}")


@pytest.mark.parametrize(("slots", "steps", "new"), [(8, 3, 1), (5, 2, 0)])
def test_replay_reservoir_trains_on_the_schedule_through_faults(
    rig, slots: int, steps: int, new: int
) -> None:
    """The C reservoir (mt_link_replay.c) behind a faulty link: the samples of its training steps, in
    order, are exactly those of mcutrain.demos.replay.schedule() (algorithm R, xorshift32), over 200
    samples; duplicated SAMPLEs are not offered twice, and a sample the reservoir cannot store is refused."""
    from mcutrain.demos.replay import ReplayConfig, schedule

    cfg = ReplayConfig(slots, steps, bool(new), seed=0xC0FFEE + slots)
    rng = np.random.default_rng(3)
    samples = [
        Sample(
            Block.u8(rng.integers(0, 256, 40), scale=1 / 255.0, offset=-0.5),
            Block.i16(rng.integers(-3000, 3000, 8), scale=1e-3, offset=0.25),
            Block.bits(rng.random(8) < 0.8) if i % 3 else Block.none(),  # NONE: stored as all ones
            sample_id=i,
        )
        for i in range(200)
    ]
    faults = h.Faults(drop=0.03, corrupt=0.03, duplicate=0.05, reorder=0.03, garbage=0.03)
    args = ("--shape", "1", "5", "8", "--target", "8", "--params", "64")
    r = rig(*args, "--replay", str(slots), str(steps), str(new), str(cfg.seed), faults=faults, seed=slots)
    link = Link(r.url, timeout=0.3, retries=12)
    assert link.info is not None and link.info.replay == M.ReplayInfo(slots, cfg.seed, steps, bool(new), 0, 0)
    acks = [link.sample(s, replay=True) for s in samples]
    with pytest.raises(DeviceError) as err:  # an f32 input is not what the reservoir stores
        link.sample(
            replace(samples[0], input=Block.f32(np.zeros(40, np.float32)), sample_id=200), replay=True
        )
    assert err.value.reply.code == ErrorCode.ENCODING
    info = link.hello()
    link.close()
    crcs = [h.applied_crc(s) for s in samples]
    steps_run = schedule(len(samples), cfg)
    assert r.applied() == [crcs[i] for i in steps_run]
    assert acks[-1].step == len(steps_run) and info.replay.seen == 200 and info.replay.filled == slots
    assert r.proxy.injected.get("duplicate", 0) > 0
    other = schedule(len(samples), replace(cfg, seed=cfg.seed + 1))
    assert r.applied() != [crcs[i] for i in other]


def test_host_killed_and_restarted_mid_stream(rig) -> None:
    """SIGKILL the streaming host process mid-stream (possibly mid-frame), start it again: it resumes
    after the last sample the device applied; nothing is lost or applied twice."""
    n = 60
    want = [c for c in (h.applied_crc(h.make_sample(i, seed=2)) for i in range(n)) if c]
    r = rig(faults=h.Faults(drop=0.03, corrupt=0.03, duplicate=0.03), seed=3)
    client = [sys.executable, str(h.HERE / "stream_client.py"), r.url, str(n), "2", "0.15"]
    for kill_after in (12, 31):
        p = subprocess.Popen(client, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 60
        while len(r.applied()) < kill_after and time.monotonic() < end and p.poll() is None:
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert kill_after <= len(r.applied()) < len(want)
    done = subprocess.run(client, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resume at ") and done.stdout.rstrip().endswith("done")
    assert int(done.stdout.split()[2]) > 31
    assert r.applied() == want


def test_link_raises_when_the_device_stops_answering(rig) -> None:
    r = rig(faults=h.Faults(drop=1.0))
    t0 = time.monotonic()
    with pytest.raises(
        LinkTimeout, match=r"did not answer HELLO: 4 attempts over .* s, last problem: no reply"
    ):
        Link(r.url, timeout=0.05, retries=3, backoff=2.0)
    assert time.monotonic() - t0 < 0.05 * (1 + 2 + 4 + 8) + 1.0


def test_link_on_loopback_hears_only_itself() -> None:
    with pytest.raises(LinkTimeout, match="loop://"):
        Link("loop://", timeout=0.05, retries=1)


def test_link_when_the_device_dies(rig) -> None:
    r = rig()
    link = Link(r.url, timeout=0.1, retries=3, connect_timeout=0.5)
    link.sample(h.make_sample(0))
    r.device.proc.kill()
    r.device.proc.wait()
    t0 = time.monotonic()
    with pytest.raises(LinkError):
        link.sample(h.make_sample(1))
    assert time.monotonic() - t0 < 5.0
    link.close()
    r.killed = True


def test_link_detects_a_device_that_lost_its_state(rig) -> None:
    r = rig()
    with Link(r.url, timeout=0.3) as link:
        link.sample(h.make_sample(0))
        link.next_seq += 5  # as if the device had restarted behind our back
        with pytest.raises(SequenceError, match="hello"):
            link.sample(h.make_sample(1))
        link.hello()
        assert link.sample(h.make_sample(1)).seq == 2


def test_link_refuses_another_model(rig) -> None:
    r = rig()
    with pytest.raises(LinkError, match="runs model 0123456789abcdef"):
        Link(r.url, timeout=0.3, expect_model_hash="feedface")


def test_closed_port_gives_a_clear_error() -> None:
    port = free_tcp_port()
    with pytest.raises(LinkClosed, match=f"cannot open socket://127.0.0.1:{port}"):
        Link(f"socket://127.0.0.1:{port}", connect_timeout=0.2)


# ------------------------------------------------------------------------------------------------
# Fuzzing and the regression corpus (ASan + UBSan)
# ------------------------------------------------------------------------------------------------


def test_corpus_is_generated_by_make_corpus() -> None:
    for name, data in corpus_cases().items():
        assert (h.CORPUS / f"{name}.bin").read_bytes() == data, f"re-run tests/link/make_corpus.py ({name})"


def test_regression_corpus_under_sanitizers(fuzzer: Path) -> None:
    files = sorted(map(str, h.CORPUS.glob("*")))
    assert len(files) >= 20
    res = subprocess.run([str(fuzzer), *files], capture_output=True, text=True, env=h.sanitizer_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all valid" in res.stdout


def test_fuzz_short(fuzzer: Path) -> None:
    res = subprocess.run(
        [str(fuzzer), "-n", "30000", "-s", "11"], capture_output=True, text=True, env=h.sanitizer_env()
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_fuzz_one_million_frames(fuzzer: Path) -> None:
    t0 = time.monotonic()
    res = subprocess.run(
        [str(fuzzer), "-n", "1000000", "-s", "1"], capture_output=True, text=True, env=h.sanitizer_env()
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "fuzzed 1000000 frames" in res.stdout
    assert time.monotonic() - t0 < 60
    print("\n" + res.stdout.strip())


# ------------------------------------------------------------------------------------------------
# Style, portability, efficiency
# ------------------------------------------------------------------------------------------------

STYLE = h.REPO / ".clang-format"
C_FILES = sorted([*h.LINK_SRC.glob("*.[ch]"), *h.HERE.glob("*.[ch]")])


@pytest.mark.skipif(not h.have("clang-format"), reason="clang-format not installed")
def test_c_sources_are_clang_formatted() -> None:
    res = subprocess.run(
        ["clang-format", f"--style=file:{STYLE}", "--dry-run", "--Werror", *map(str, C_FILES)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]


CROSS = {
    "arm-none-eabi-gcc": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"],
    "riscv64-unknown-elf-gcc": ["-march=rv32imfc", "-mabi=ilp32f", "-mcmodel=medany"],
}


@pytest.mark.parametrize("cc", sorted(CROSS))
def test_firmware_link_cross_compiles(cc: str, tmp_path: Path) -> None:
    if not h.have(cc):
        pytest.skip(f"{cc} not installed")
    for src in h.LINK_SOURCES:
        cmd = [
            cc,
            *CROSS[cc],
            "--specs=picolibc.specs",
            "-Os",
            *h.WARN_FLAGS,
            "-Wcast-align",
            "-c",
            str(src),
            "-o",
            str(tmp_path / "x.o"),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_image_sample_framing_efficiency_matches_docs() -> None:
    """The numbers of docs/protocol.md: a 64x80 uint8 image + 64 int16 zones + 64 mask bits."""
    s = h.make_sample(0)
    data = s.data_bytes()
    body = S.sample_frame_size(s)
    worst = F.wire_size(body)
    actual = len(Frame(MsgType.SAMPLE, F.FLAG_TRAIN, 1, s.pack()).encode())
    assert (data, body, worst) == (5256, 5324, 5347)
    assert actual <= worst
    assert data / worst > 0.98
    doc = (h.REPO / "docs" / "protocol.md").read_text()
    for number in ("5256", "5324", "5347", "98.3"):
        assert number in doc, f"docs/protocol.md lacks {number}"


def _libfuzzer_available(tmp: Path) -> bool:
    probe = tmp / "probe.c"
    probe.write_text(
        "#include <stddef.h>\nint LLVMFuzzerTestOneInput(const char *d, size_t n);\n"
        "int LLVMFuzzerTestOneInput(const char *d, size_t n) { (void)d; (void)n; return 0; }\n"
    )
    cmd = ["clang", "-fsanitize=fuzzer", str(probe), "-o", str(tmp / "probe")]
    return h.have("clang") and subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.mark.slow
def test_libfuzzer_smoke(build_dir: Path, tmp_path: Path) -> None:
    """A few seconds of libFuzzer from the corpus (CRC checks compiled out), when clang has its runtime."""
    if not _libfuzzer_available(tmp_path):
        pytest.skip("clang's libFuzzer runtime is missing (apt-get install libclang-rt-14-dev)")
    exe = build_dir / "fuzz_libfuzzer"
    srcs = [*h.LINK_SOURCES, h.HERE / "toy_app.c", h.HERE / "fuzz_common.c", h.HERE / "fuzz_libfuzzer.c"]
    cmd = [
        "clang",
        *h.WARN_FLAGS,
        "-O1",
        "-g",
        "-fsanitize=fuzzer,address,undefined",
        "-fno-sanitize-recover=all",
        "-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION",
        f"-I{h.LINK_SRC}",
        f"-I{h.HERE}",
        *map(str, srcs),
        "-o",
        str(exe),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    work = tmp_path / "corpus"
    work.mkdir()
    for f in h.CORPUS.glob("*"):
        (work / f.name).write_bytes(f.read_bytes())
    res = subprocess.run(
        [str(exe), "-max_total_time=4", "-max_len=4096", str(work)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=h.sanitizer_env(),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Done" in res.stderr


def test_info_reservoir_and_blend_flags() -> None:
    """INFO's reservoir record follows the strings when flag 32 is set, the blend's when flag 64 is; cut
    short either is a malformed INFO (not a device without a reservoir or a blend)."""
    fixed = bytearray(M.INFO_FIXED.size)
    strings = b"".join(bytes([len(s)]) + s for s in (b"0123", b"plan", b"host"))
    record = M.INFO_REPLAY.pack(16, 0x2545F491, 3, 1, 40, 16)
    blend = M.INFO_BLEND.pack(0.5, 60)

    def info(flags: int, tail: bytes) -> bytes:
        struct.pack_into("<H", fixed, 2, flags)
        return bytes(fixed) + strings + tail

    both = M.Info.FLAG_REPLAY | M.Info.FLAG_BLEND
    got = M.parse_reply(Frame(MsgType.INFO, payload=info(both, record + blend)))
    assert isinstance(got, M.Info) and got.can_blend and got.board == "host"
    assert got.replay == M.ReplayInfo(16, 0x2545F491, 3, True, 40, 16) and got.blend == M.BlendInfo(0.5, 60)
    alone = M.parse_reply(Frame(MsgType.INFO, payload=info(M.Info.FLAG_BLEND, blend)))
    assert isinstance(alone, M.Info) and alone.replay is None and alone.blend == M.BlendInfo(0.5, 60)
    plain = M.parse_reply(Frame(MsgType.INFO, payload=info(0, b"")))
    assert isinstance(plain, M.Info) and plain.replay is None and plain.blend is None and not plain.can_blend
    for flags, tail in ((M.Info.FLAG_REPLAY, record[:-1]), (both, record + blend[:-1])):
        with pytest.raises(ValueError, match="malformed INFO"):
            M.parse_reply(Frame(MsgType.INFO, payload=info(flags, tail)))


def test_infer_blend_in_chunks_counts_only_trained_finite_valid_targets(rig) -> None:
    """INFER BLEND over 600-byte frames (200 targets: two OUTPUT chunks) on the toy device, whose output
    is in the targets' space: the mirror's blend of the plain output. Masked elements, NaN targets and
    samples stored without training are not counted; RESET forgets everything."""
    r = rig("--shape", "1", "4", "4", "--target", "200", "--frame", "600", "--params", "50", "--blend", ".25")
    rng = np.random.default_rng(3)

    def sample(i: int) -> Sample:
        target = Block.i16(rng.integers(200, 4000, 200), np.nan if i == 5 else 1e-3)  # 5: all NaN
        return Sample(Block.u8(rng.integers(0, 256, 16)), target, Block.bits(rng.random(200) < 0.7), i)

    samples = [sample(i) for i in range(12)]
    rm = RunningMean(200)
    with Link(r.url, timeout=0.5) as link:
        assert link.info is not None and link.info.can_blend and link.info.max_frame == 600
        assert link.info.blend == M.BlendInfo(0.25, 0)
        link.sample(samples[0])
        link.reset_model()  # forgets sample 0
        y0 = link.infer(samples[1])
        assert np.array_equal(link.infer(blend=True), y0)  # nothing seen: the output itself
        for s in samples[1:]:
            link.sample(s, train=s.sample_id != 9)  # sample 9: stored, not trained on
            if s.sample_id != 9:
                rm.observe(s.target.to_floats(role="target"), s.mask.to_floats(200, role="mask"))
        y = link.infer(samples[2])
        got = link.infer(blend=True)
        seen = link.hello().blend
        link.exit_firmware()
    assert seen == M.BlendInfo(0.25, int(np.count_nonzero(rm.count)))
    assert got.shape == (200,) and np.isfinite(got).all() and rm.count.max() <= 9  # samples 1-11 but 5, 9
    np.testing.assert_array_equal(got, rm.blend(y, 0.25))  # the same float32 operations, in order
