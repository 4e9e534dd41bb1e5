"""The stop-and-wait machinery under :class:`~mcutrain.host.link.Link`: the port (any pyserial URL,
reopened when it fails), the request loop (retransmission with growing timeouts, replies matched to
their requests, sequence numbers), HELLO, and the link's errors and counters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import serial

from mcutrain.host.framing import MAX_FRAME, VERSION, ErrorCode, Frame, FrameDecoder, FrameError, MsgType
from mcutrain.host.messages import Ack, Chunk, ErrorReply, EvalResult, Info, Stats, parse_reply

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


_U32 = 0xFFFFFFFF
DeviceReply = Ack | Info | Stats | Chunk | EvalResult


class LinkTransport:
    """A stop-and-wait connection without the protocol's verbs: the port, :meth:`request` and
    :meth:`hello`. :class:`~mcutrain.host.link.Link` adds the verbs and documents the arguments."""

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

    # ---- HELLO: who the device is, where its sequence numbers are ------------------------------

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
    "DeviceError",
    "LinkClosed",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "LinkTransport",
    "SequenceError",
    "SerialLike",
    "VersionMismatch",
]
