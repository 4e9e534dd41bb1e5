"""mcutrain serial protocol, version 1: the framing (docs/protocol.md).

Pure Python; the device side is ``firmware/link/``. A frame on the wire is
``0x00 COBS(header + payload + CRC-32) 0x00``; the header is ``version u8, type u8, flags u8, 0 u8,
seq u32``; every integer is little-endian; the CRC is ``zlib.crc32`` of header + payload. The message
payloads are in :mod:`mcutrain.host.messages`, the sample encodings in
:mod:`mcutrain.host.sample_encoding`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
HEADER = struct.Struct("<BBBxI")  # version, type, flags, reserved, seq
CRC_BYTES = 4
OVERHEAD = HEADER.size + CRC_BYTES
MAX_FRAME = 6144  # largest unstuffed frame (header + payload + CRC) of protocol v1
MIN_FRAME = 320  # smallest frame buffer a device may have


class MsgType(IntEnum):
    HELLO = 0x01
    SAMPLE = 0x02
    TRAIN = 0x03
    INFER = 0x04
    EVAL = 0x05
    STATS = 0x06
    GET_PARAMS = 0x07
    PUT_PARAMS = 0x08
    CHECKPOINT = 0x09
    ROLLBACK = 0x0A
    RESET = 0x0B
    ACK = 0x80
    INFO = 0x81
    OUTPUT = 0x84
    EVAL_RESULT = 0x85
    STATS_REPLY = 0x86
    PARAMS = 0x87
    LOG = 0x90
    ERROR = 0xFF

    @property
    def sequenced(self) -> bool:
        """Applied once per sequence number (the others are queries that echo their number)."""
        return self in _SEQUENCED

    @property
    def is_reply(self) -> bool:
        return bool(self & 0x80)


_SEQUENCED = frozenset(
    {
        MsgType.SAMPLE,
        MsgType.TRAIN,
        MsgType.PUT_PARAMS,
        MsgType.CHECKPOINT,
        MsgType.ROLLBACK,
        MsgType.RESET,
    }
)

#: Header flags (their meaning depends on the message type).
FLAG_TRAIN = 0x01  # SAMPLE: train on it once stored
FLAG_REPLAY = 0x02  # SAMPLE: offer it to the replay reservoir and run the reservoir's steps
FLAG_RUN = 0x01  # INFER: run the model first
FLAG_BLEND = 0x02  # INFER: the prediction blended with the running mean of the targets (targets' space)
FLAG_VALSET = 0x01  # EVAL: mean over the validation slots
FLAG_LAST = 0x01  # PUT_PARAMS: final chunk, commit
FLAG_PERSIST = 0x01  # CHECKPOINT: also write to storage
FLAG_DUP = 0x01  # ACK: duplicate, not applied again


class ErrorCode(IntEnum):
    CRC = 1
    FRAMING = 2
    OVERSIZE = 3
    SHORT = 4
    VERSION = 5
    TYPE = 6
    LENGTH = 7
    ENCODING = 8
    SIZE = 9
    RANGE = 10
    SEQUENCE = 11
    UNSUPPORTED = 12
    NO_SAMPLE = 13
    APP = 14

    @property
    def transient(self) -> bool:
        """A damaged frame: retransmitting the same request is the cure."""
        return self in (ErrorCode.CRC, ErrorCode.FRAMING, ErrorCode.OVERSIZE, ErrorCode.SHORT)


ERROR_TEXT = {
    ErrorCode.CRC: "CRC mismatch",
    ErrorCode.FRAMING: "COBS block cut short",
    ErrorCode.OVERSIZE: "frame larger than the device's buffer",
    ErrorCode.SHORT: "frame shorter than header + CRC",
    ErrorCode.VERSION: "protocol version not supported (detail: the device's version)",
    ErrorCode.TYPE: "unknown request type",
    ErrorCode.LENGTH: "payload length does not match the message",
    ErrorCode.ENCODING: "encoding not allowed for this block (or a mask sent to a plan without one)",
    ErrorCode.SIZE: "element count differs from the model's (detail: expected count)",
    ErrorCode.RANGE: "offset, label, slot or mode out of range (detail: the limit)",
    ErrorCode.SEQUENCE: "sequence gap (detail: the sequence number the device expects)",
    ErrorCode.UNSUPPORTED: "the firmware has no handler for this request",
    ErrorCode.NO_SAMPLE: "no sample stored yet",
    ErrorCode.APP: "the firmware's handler failed (detail: its error code)",
}


# ------------------------------------------------------------------------------------------------
# Framing
# ------------------------------------------------------------------------------------------------


class FrameError(ValueError):
    """A received frame that was dropped; ``code`` is the matching device error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def cobs_encode(data: bytes | bytearray) -> bytes:
    """COBS without delimiters; byte-identical to the device's encoder (blocks of at most 254 bytes)."""
    out = bytearray()
    for seg in bytes(data).split(b"\x00"):
        while len(seg) >= 254:
            out.append(0xFF)
            out += seg[:254]
            seg = seg[254:]
        out.append(len(seg) + 1)
        out += seg
    return bytes(out)


def cobs_decode(data: bytes | bytearray) -> bytes:
    """Inverse of :func:`cobs_encode` (no delimiters inside); raises FrameError(FRAMING)."""
    out = bytearray()
    i, n, code = 0, len(data), 0xFF
    while i < n:
        c = data[i]
        if c == 0:
            raise FrameError(ErrorCode.FRAMING, f"zero byte inside a COBS frame at {i}")
        if code != 0xFF:
            out.append(0)
        block = data[i + 1 : i + c]
        if len(block) != c - 1 or 0 in block:
            raise FrameError(ErrorCode.FRAMING, f"COBS block at {i} cut short")
        out += block
        i += c
        code = c
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    flags: int = 0
    seq: int = 0
    payload: bytes = b""
    version: int = VERSION

    def body(self) -> bytes:
        """The unstuffed frame: header + payload + CRC."""
        head = HEADER.pack(self.version, self.type, self.flags, self.seq & 0xFFFFFFFF) + self.payload
        return head + struct.pack("<I", crc32(head))

    def encode(self) -> bytes:
        """Bytes on the wire: 0x00, COBS(body), 0x00."""
        return b"\x00" + cobs_encode(self.body()) + b"\x00"

    @property
    def msg(self) -> MsgType | int:
        try:
            return MsgType(self.type)
        except ValueError:
            return self.type

    def __repr__(self) -> str:
        t = self.msg
        name = t.name if isinstance(t, MsgType) else f"0x{t:02x}"
        return f"Frame({name}, flags={self.flags}, seq={self.seq}, {len(self.payload)} B)"


def parse_body(body: bytes, max_frame: int = MAX_FRAME) -> Frame:
    """Check an unstuffed frame (length, CRC) and split it; raises FrameError."""
    if len(body) > max_frame:
        raise FrameError(ErrorCode.OVERSIZE, f"frame of {len(body)} bytes exceeds {max_frame}")
    if len(body) < OVERHEAD:
        raise FrameError(ErrorCode.SHORT, f"frame of {len(body)} bytes is shorter than {OVERHEAD}")
    want = struct.unpack_from("<I", body, len(body) - CRC_BYTES)[0]
    if crc32(body[:-CRC_BYTES]) != want:
        raise FrameError(ErrorCode.CRC, "CRC mismatch")
    version, type_, flags, seq = HEADER.unpack_from(body)
    return Frame(type_, flags, seq, bytes(body[HEADER.size : -CRC_BYTES]), version)


def decode_wire(wire: bytes) -> Frame:
    """One frame from its wire bytes (with or without delimiters)."""
    return parse_body(cobs_decode(wire.strip(b"\x00")))


class FrameDecoder:
    """Incremental receiver: ``feed(bytes)`` returns the frames and FrameErrors completed so far.

    It classifies exactly like the device's ``mt_link_feed`` with a ``max_frame``-byte buffer: bytes
    between two zero bytes form a frame, empty frames are ignored, and a dropped frame is OVERSIZE if
    it decodes to more than ``max_frame`` bytes, else FRAMING if a COBS block is cut short, else SHORT,
    else CRC.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._limit = 2 * max_frame + 16  # encoded bytes beyond which the frame surely decodes too long
        self._buf = bytearray()
        self._over = False

    def feed(self, data: bytes | bytearray) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        parts = bytes(data).split(b"\x00")
        for k, part in enumerate(parts):
            if not self._over:
                self._buf += part
                if len(self._buf) > self._limit:
                    self._over = True
                    self._buf.clear()
            if k == len(parts) - 1:
                break  # no delimiter after this part yet
            if self._over:
                out.append(FrameError(ErrorCode.OVERSIZE, f"frame exceeds {self.max_frame} bytes"))
            elif self._buf:
                out.append(self._classify(bytes(self._buf)))
            self._buf.clear()
            self._over = False
        return out

    def _classify(self, enc: bytes) -> Frame | FrameError:
        body = bytearray()
        i, n, code, cut = 0, len(enc), 0xFF, False
        while i < n:
            c = enc[i]
            if code != 0xFF:
                body.append(0)
            block = enc[i + 1 : i + c]
            body += block
            if len(body) > self.max_frame:
                return FrameError(ErrorCode.OVERSIZE, f"frame exceeds {self.max_frame} bytes")
            if len(block) < c - 1:
                cut = True
                break
            i += c
            code = c
        if cut:
            return FrameError(ErrorCode.FRAMING, "COBS block cut short by a delimiter")
        try:
            return parse_body(bytes(body), self.max_frame)
        except FrameError as e:
            return e

    def reset(self) -> None:
        self._buf.clear()
        self._over = False


def wire_size(body_bytes: int) -> int:
    """Exact bytes on the wire for a frame body with no zero bytes (the worst case): COBS adds one byte
    per started 254-byte block, plus the two delimiters."""
    return body_bytes + body_bytes // 254 + 1 + 2
