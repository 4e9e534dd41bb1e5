"""Host end of the mcutrain serial link: a stop-and-wait client over any pyserial URL.

>>> with Link("socket://127.0.0.1:4444") as link:  # doctest: +SKIP
...     info = link.info  # HELLO: model, plan, memory, where to resume
...     for i, sample in enumerate(samples[info.next_sample_id :], start=info.next_sample_id):
...         ack = link.sample(replace(sample, sample_id=i))  # stored and trained once, exactly
...     params = link.get_params()

Every request is retransmitted until its reply arrives (timeouts grow exponentially, and never below
twice the slowest reply seen so far), at most ``retries`` times; then :class:`LinkTimeout` says what
was asked, how often and for how long. Sequenced requests (SAMPLE, TRAIN, PUT_PARAMS, CHECKPOINT,
ROLLBACK, RESET) carry consecutive sequence numbers; the device applies each number once and
acknowledges repeats without applying them again, so retransmission never duplicates a training step.
On connect, HELLO tells the last sequence number and sample id the device applied: the link continues
from there, so a restarted host resumes where the device is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Protocol

import numpy as np
import serial

from mcutrain.host.protocol import (
    FLAG_LAST,
    FLAG_PERSIST,
    FLAG_RUN,
    FLAG_TRAIN,
    FLAG_VALSET,
    MAX_FRAME,
    VERSION,
    Ack,
    CheckpointMode,
    Chunk,
    ErrorCode,
    ErrorReply,
    EvalResult,
    Frame,
    FrameDecoder,
    FrameError,
    Info,
    MsgType,
    ResetMode,
    Result,
    Sample,
    Stats,
    chunk_request,
    floats_per_chunk,
    parse_reply,
    put_params_payload,
)

log = logging.getLogger("mcutrain.link")


class SerialLike(Protocol):
    """What the link needs of a port: pyserial's ``Serial`` (any ``serial_for_url`` URL) has it."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class LinkError(RuntimeError):
    """The link failed; the message says what was asked and what happened."""


class LinkTimeout(LinkError):
    """The device stopped answering: no valid reply after every retry."""


class LinkClosed(LinkError):
    """The port closed (e.g. QEMU exited, cable pulled) and could not be reopened."""


class DeviceError(LinkError):
    """The device refused a request (an ERROR reply that retransmitting cannot cure)."""

    def __init__(self, reply: ErrorReply, request: str) -> None:
        super().__init__(f"{request}: {reply.describe()}")
        self.reply = reply


class SequenceError(LinkError):
    """Host and device disagree about what was applied (the device restarted, or another host talked
    to it): call :meth:`Link.hello` to resynchronise."""


class VersionMismatch(LinkError):
    """The device speaks another protocol version or runs another model."""


@dataclass
class LinkStats:
    requests: int = 0
    retransmits: int = 0
    timeouts: int = 0
    frame_errors: int = 0  # damaged frames received from the device
    device_frame_errors: int = 0  # ERROR replies saying our frame arrived damaged
    stale_replies: int = 0  # replies to earlier requests (duplicates, late arrivals)
    duplicate_acks: int = 0  # ACKs of requests the device had already applied
    reconnects: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    logs: list[str] = field(default_factory=list)


@dataclass
class CheckpointTally:
    """What a stream's checkpoints did: accepted, rolled back, persisted, and the validation loss at the
    first and the last accepted checkpoint (``reference``, ``best``)."""

    accepted: int = 0
    rolled_back: int = 0
    persisted: int = 0
    reference: float = math.nan
    best: float = math.nan

    def add(self, ack: Ack, persisted: bool = False) -> None:
        if ack.result == Result.ROLLED_BACK:
            self.rolled_back += 1
        else:
            self.accepted += 1
            self.best = ack.loss
            if math.isnan(self.reference):
                self.reference = ack.loss
        self.persisted += int(persisted)

    def summary(self) -> str:
        """One line for people, e.g. ``checkpoints: 3 accepted, 1 rolled back, 3 persisted; validation
        loss 2.08 -> 1.71``."""
        text = f"checkpoints: {self.accepted} accepted, {self.rolled_back} rolled back"
        text += f", {self.persisted} persisted"
        if not math.isnan(self.best):
            text += f"; validation loss {self.reference:.4g} -> {self.best:.4g}"
        return text


@dataclass
class CheckpointSchedule:
    """Accept-if-better every ``every`` trained samples of a stream (``persist``: also to storage)."""

    every: int
    persist: bool = False
    tally: CheckpointTally = field(default_factory=CheckpointTally)

    def after_sample(self, link: Link, trained: int) -> Ack | None:
        """Call after each trained sample (``trained`` counts them): checkpoints every ``every``."""
        return self.checkpoint(link) if self.every > 0 and trained % self.every == 0 else None

    def finish(self, link: Link, trained: int) -> Ack | None:
        """A last checkpoint for the samples trained since the previous one."""
        return self.checkpoint(link) if self.every > 0 and trained % self.every else None

    def checkpoint(self, link: Link) -> Ack:
        ack = link.checkpoint(CheckpointMode.ACCEPT_IF_BETTER, self.persist)
        self.tally.add(ack, self.persist)
        return ack


_U32 = 0xFFFFFFFF
DeviceReply = Ack | Info | Stats | Chunk | EvalResult


class Link:
    """A stop-and-wait connection to one device running protocol v1.

    ``port`` is a pyserial URL (``/dev/ttyACM0``, ``socket://127.0.0.1:PORT``, ``loop://``) or an
    already open serial-like object. ``timeout`` is the first wait for a reply (seconds); each retry
    waits ``backoff`` times longer, up to ``max_timeout``; after ``retries`` retransmissions the request
    fails with :class:`LinkTimeout`. ``expect_model_hash`` (a prefix is enough) makes connecting fail
    when the firmware runs another model.
    """

    def __init__(
        self,
        port: str | SerialLike,
        *,
        baudrate: int = 115200,
        timeout: float = 1.0,
        retries: int = 6,
        backoff: float = 2.0,
        max_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        hello: bool = True,
        expect_model_hash: str | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        if timeout <= 0 or backoff < 1 or retries < 0:
            raise ValueError("timeout must be > 0, backoff >= 1 and retries >= 0")
        self.url = port if isinstance(port, str) else None
        self.baudrate = baudrate
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_timeout = max(max_timeout, timeout)
        self.connect_timeout = connect_timeout
        self.expect_model_hash = expect_model_hash
        self.on_log = on_log
        self.stats = LinkStats()
        self.max_frame = MAX_FRAME
        self.info: Info | None = None
        self.next_seq = 1
        self._tag = int.from_bytes(os.urandom(4), "little") | 1  # query tags: unlike any stale reply's
        self._slowest = 0.0
        self._decoder = FrameDecoder()
        self._port: SerialLike | None = None
        self._port = self._open() if isinstance(port, str) else port
        if hello:
            try:
                self.hello()
            except BaseException:
                self.close()
                raise

    # ---- port ----------------------------------------------------------------------------------

    def _open(self) -> SerialLike:
        assert self.url is not None
        end = time.monotonic() + self.connect_timeout
        delay = 0.05
        while True:
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.timeout)
                port.reset_input_buffer()
                return port
            except OSError as e:  # serial.SerialException is an OSError
                if time.monotonic() + delay > end:
                    raise LinkClosed(f"cannot open {self.url} within {self.connect_timeout:g} s: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _reopen(self, why: Exception) -> None:
        if self.url is None:
            raise LinkClosed(f"the port closed: {why}") from why
        log.warning("link %s lost (%s): reconnecting", self.url, why)
        self._close_port()
        self._decoder.reset()
        self._port = self._open()
        self.stats.reconnects += 1

    def _close_port(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):  # closing a broken port may fail in many ways
                self._port.close()
            self._port = None

    def close(self) -> None:
        self._close_port()

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        if self._port is None:
            raise LinkClosed("the link is closed")
        self._port.write(data)
        self._port.flush()
        self.stats.bytes_out += len(data)

    def _read(self, wait: float) -> bytes:
        """Bytes that arrive within ``wait`` seconds: blocks for the first, then takes what is there."""
        port = self._port
        if port is None:
            raise LinkClosed("the link is closed")
        port.timeout = max(wait, 0.0)
        data = port.read(1)
        if data:
            port.timeout = 0
            data += port.read(65536)
        self.stats.bytes_in += len(data)
        return data

    # ---- the request loop ----------------------------------------------------------------------

    def _wait_for(self, attempt: int) -> float:
        return min(max(self.timeout, 2.0 * self._slowest) * self.backoff**attempt, self.max_timeout)

    def request(self, type_: MsgType, payload: bytes = b"", flags: int = 0) -> DeviceReply:
        """Send one request and return its reply; retransmits, reconnects and raises as documented."""
        expect = _REPLY_OF[type_]
        if type_.sequenced:
            seq = self.next_seq
        else:
            seq = self._tag
            self._tag = (self._tag + 1) & _U32
        frame = Frame(type_, flags, seq, payload)
        body = frame.body()
        if len(body) > self.max_frame:
            raise ValueError(
                f"{type_.name} frame of {len(body)} bytes exceeds the device's frame size {self.max_frame}"
            )
        wire = frame.encode()
        what = f"{type_.name} seq {seq}" if type_.sequenced else f"{type_.name}"
        self.stats.requests += 1
        start = time.monotonic()
        problem = "no reply"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retransmits += 1
                log.debug("%s: retransmission %d (%s)", what, attempt, problem)
            sent = time.monotonic()
            try:
                self._write(wire)
            except OSError as e:
                problem = f"write failed: {e}"
                self._reopen(e)
                continue
            end = sent + self._wait_for(attempt)
            retransmit = False
            while not retransmit:
                left = end - time.monotonic()
                if left <= 0:
                    self.stats.timeouts += 1
                    problem = f"no reply within {self._wait_for(attempt):.2f} s"
                    break
                try:
                    data = self._read(left)
                except OSError as e:
                    problem = f"read failed: {e}"
                    self._reopen(e)
                    break
                for item in self._decoder.feed(data):
                    if isinstance(item, FrameError):
                        self.stats.frame_errors += 1
                        problem = f"damaged reply ({item})"
                        continue
                    verdict = self._match(frame, expect, item)
                    if verdict is _RETRANSMIT:
                        retransmit = True
                        problem = "the device received a damaged frame"
                    elif verdict is not None:
                        self._slowest = max(self._slowest, time.monotonic() - sent)
                        if type_.sequenced:
                            self.next_seq = (seq + 1) & _U32
                        return verdict
        raise LinkTimeout(
            f"the device at {self.url or 'the port'} did not answer {what}: {self.retries + 1} attempts "
            f"over {time.monotonic() - start:.1f} s, last problem: {problem}. Is the firmware running, "
            f"speaking protocol v{VERSION} at {self.baudrate} baud, and not stuck?"
        )

    def _match(self, sent: Frame, expect: MsgType, f: Frame) -> DeviceReply | object | None:
        """The reply to ``sent``, _RETRANSMIT, or None for anything else (ignored)."""
        if not f.type & 0x80:
            return None  # a request: our own echo (loop://) or noise
        try:
            reply = parse_reply(f)
        except ValueError as e:
            self.stats.frame_errors += 1
            log.warning("ignoring a malformed reply: %s", e)
            return None
        if isinstance(reply, str):
            self.stats.logs.append(reply)
            if self.on_log:
                self.on_log(reply)
            else:
                log.info("device: %s", reply)
            return None
        what = MsgType(sent.type).name
        if isinstance(reply, ErrorReply):
            if reply.transient:
                self.stats.device_frame_errors += 1
                return _RETRANSMIT
            if reply.seq != sent.seq or reply.request != sent.type:
                self.stats.stale_replies += 1
                return None
            if reply.code == ErrorCode.SEQUENCE:
                raise SequenceError(
                    f"{what} seq {sent.seq}: the device has applied up to seq {reply.last_seq} and expects "
                    f"{reply.detail}; it restarted or another host used it. Call hello() to resynchronise."
                )
            if reply.code == ErrorCode.VERSION:
                raise VersionMismatch(
                    f"the device speaks protocol v{reply.detail}, this host v{VERSION}: update one side"
                )
            raise DeviceError(reply, f"{what} seq {sent.seq}")
        if f.type != expect:
            self.stats.stale_replies += 1
            return None
        if isinstance(reply, Ack):
            ahead = (reply.seq - sent.seq) & _U32
            if ahead == 0:
                if reply.duplicate:
                    self.stats.duplicate_acks += 1
                return reply
            if ahead < 0x80000000:
                raise SequenceError(
                    f"{what} seq {sent.seq}: the device already applied seq {reply.seq}; another host is "
                    "using it or this link did not start with hello()"
                )
            self.stats.stale_replies += 1  # an older ACK
            return None
        if f.seq != sent.seq:
            self.stats.stale_replies += 1
            return None
        return reply

    # ---- the protocol's verbs ------------------------------------------------------------------

    def hello(self) -> Info:
        """Ask the device who it is and what it applied last; later sequence numbers continue from there."""
        info = self.request(MsgType.HELLO)
        assert isinstance(info, Info)
        if info.version != VERSION:
            raise VersionMismatch(f"the device speaks protocol v{info.version}, this host v{VERSION}")
        if self.expect_model_hash and not info.model_hash.startswith(self.expect_model_hash):
            raise VersionMismatch(
                f"the device runs model {info.model_hash[:16]}, expected {self.expect_model_hash[:16]}: "
                "flash the firmware built from this plan"
            )
        self.info = info
        self.max_frame = min(MAX_FRAME, info.max_frame)
        self.next_seq = (info.last_seq + 1) & _U32
        return info

    def sample(self, sample: Sample, train: bool = True) -> Ack:
        """Store a sample on the device and (``train``) run one training step on it. Returns the ACK:
        ``ack.loss``, ``ack.step``, ``ack.skipped`` (NaN/Inf guard)."""
        return self._ack(MsgType.SAMPLE, sample.pack(), FLAG_TRAIN if train else 0)

    def train(self) -> Ack:
        """One training step on the stored sample."""
        return self._ack(MsgType.TRAIN)

    def infer(self, sample: Sample | None = None) -> np.ndarray:
        """Model output (float32) for ``sample`` (stored first) or for the stored input."""
        if sample is not None:
            self.sample(sample, train=False)
        out: list[np.ndarray] = []
        first, total, flags = 0, None, FLAG_RUN
        while total is None or first < total:
            chunk = self.request(MsgType.INFER, chunk_request(first), flags)
            assert isinstance(chunk, Chunk)
            total, flags = chunk.total, 0
            if chunk.first != first or (len(chunk.values) == 0 and first < total):
                raise LinkError(f"INFER: asked from {first}, got {chunk.first}+{len(chunk.values)}")
            out.append(chunk.values)
            first += len(chunk.values)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def eval(self, valset: bool = False) -> EvalResult:
        """Loss (and metric) of the stored sample, or the mean over the device's validation slots."""
        r = self.request(MsgType.EVAL, b"", FLAG_VALSET if valset else 0)
        assert isinstance(r, EvalResult)
        return r

    def device_stats(self) -> Stats:
        """Training and link statistics of the device (step, losses, instructions, error counters)."""
        r = self.request(MsgType.STATS)
        assert isinstance(r, Stats)
        return r

    def get_params(self) -> np.ndarray:
        """All trainable parameters (float32, the layout of mt_export_params), in chunks."""
        out: list[np.ndarray] = []
        first, total = 0, None
        per = floats_per_chunk(self.max_frame)
        while total is None or first < total:
            chunk = self.request(MsgType.GET_PARAMS, chunk_request(first, per))
            assert isinstance(chunk, Chunk)
            total = chunk.total
            if chunk.first != first or (len(chunk.values) == 0 and first < total):
                raise LinkError(f"GET_PARAMS: asked from {first}, got {chunk.first}+{len(chunk.values)}")
            out.append(chunk.values)
            first += len(chunk.values)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def put_params(self, values: np.ndarray) -> Ack:
        """Write all trainable parameters; the last chunk carries the commit flag."""
        v = np.ascontiguousarray(np.asarray(values, dtype=np.float32).ravel())
        per = floats_per_chunk(self.max_frame)
        ack: Ack | None = None
        first = 0
        while ack is None or first < v.size:
            part = v[first : first + per]
            last = first + part.size >= v.size
            ack = self._ack(
                MsgType.PUT_PARAMS, put_params_payload(first, v.size, part), FLAG_LAST if last else 0
            )
            first += part.size
        return ack

    def checkpoint(self, mode: CheckpointMode = CheckpointMode.SNAPSHOT, persist: bool = False) -> Ack:
        """Snapshot the training state, or (``ACCEPT_IF_BETTER``) keep it only if the loss over the written
        validation slots is lower than at the last accepted checkpoint, else restore the snapshot
        (``ack.result == Result.ROLLED_BACK``). ``ack.loss`` is the validation loss (NaN when no slot was
        written). ``persist``: the kept state is also written to the device's storage."""
        return self._ack(MsgType.CHECKPOINT, bytes([mode]), FLAG_PERSIST if persist else 0)

    def rollback(self) -> Ack:
        """Restore the snapshot (parameters, optimizer state, step) of the last kept checkpoint."""
        return self._ack(MsgType.ROLLBACK)

    def validation_sample(self, sample: Sample, slot: int) -> Ack:
        """Store ``sample`` in validation slot ``slot`` (0-based; the device has ``info.val_slots``)."""
        slots = self.info.val_slots if self.info is not None else 0
        if not 0 <= slot < slots:
            raise ValueError(
                f"validation slot {slot}: the device has {slots} (emit the firmware with val_slots=N)"
            )
        return self.sample(replace(sample, slot=slot + 1), train=False)

    def reset_model(self) -> Ack:
        """Pretrained parameters again, optimizer state and step cleared (sequence numbers go on)."""
        return self._ack(MsgType.RESET, bytes([ResetMode.MODEL]))

    def exit_firmware(self) -> Ack | None:
        """Ask the firmware to end its program (QEMU exits); None when it ended before its ACK came."""
        try:
            return self._ack(MsgType.RESET, bytes([ResetMode.EXIT]))
        except (LinkTimeout, LinkClosed):
            return None

    def _ack(self, type_: MsgType, payload: bytes = b"", flags: int = 0) -> Ack:
        r = self.request(type_, payload, flags)
        assert isinstance(r, Ack)
        return r


_RETRANSMIT = object()

_REPLY_OF = {
    MsgType.HELLO: MsgType.INFO,
    MsgType.SAMPLE: MsgType.ACK,
    MsgType.TRAIN: MsgType.ACK,
    MsgType.INFER: MsgType.OUTPUT,
    MsgType.EVAL: MsgType.EVAL_RESULT,
    MsgType.STATS: MsgType.STATS_REPLY,
    MsgType.GET_PARAMS: MsgType.PARAMS,
    MsgType.PUT_PARAMS: MsgType.ACK,
    MsgType.CHECKPOINT: MsgType.ACK,
    MsgType.ROLLBACK: MsgType.ACK,
    MsgType.RESET: MsgType.ACK,
}


__all__ = [
    "CheckpointSchedule",
    "CheckpointTally",
    "DeviceError",
    "FrameError",
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "SequenceError",
    "SerialLike",
    "VersionMismatch",
]
