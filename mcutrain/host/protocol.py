"""mcutrain serial protocol, version 1: framing, messages and sample encodings (docs/protocol.md).

Pure Python (plus numpy for sample arrays); the device side is ``firmware/link/``. A frame on the
wire is ``0x00 COBS(header + payload + CRC-32) 0x00``; the header is ``version u8, type u8, flags u8,
0 u8, seq u32``; every integer is little-endian; the CRC is ``zlib.crc32`` of header + payload.
"""

from __future__ import annotations

import contextlib
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

VERSION = 1
HEADER = struct.Struct("<BBBxI")  # version, type, flags, reserved, seq
CRC_BYTES = 4
OVERHEAD = HEADER.size + CRC_BYTES
MAX_FRAME = 6144  # largest unstuffed frame (header + payload + CRC) of protocol v1
MIN_FRAME = 320  # smallest frame buffer a device may have
SAMPLE_HEADER = struct.Struct("<IBxxx")  # sample_id, slot
BLOCK_HEADER = struct.Struct("<BxxxIff")  # enc, count, scale, offset
ACK = struct.Struct("<BBxxIfI")  # cmd, result, step, loss, sample_id
ERROR = struct.Struct("<HBxII")  # code, request type, last_seq, detail
CHUNK = struct.Struct("<II")  # first/offset, total (PARAMS, OUTPUT) or offset, count (requests)
INFO_FIXED = struct.Struct("<BBHIIII IHHHxx III IIII I HHHBB")
STATS = struct.Struct("<IIIfffQQIIIIIIII")
EVAL_RESULT = struct.Struct("<ffI")
NO_SAMPLE_ID = 0xFFFFFFFF


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
FLAG_RUN = 0x01  # INFER: run the model first
FLAG_VALSET = 0x01  # EVAL: mean over the validation slots
FLAG_LAST = 0x01  # PUT_PARAMS: final chunk, commit
FLAG_PERSIST = 0x01  # CHECKPOINT: also write to storage
FLAG_DUP = 0x01  # ACK: duplicate, not applied again


class Enc(IntEnum):
    NONE = 0
    F32 = 1
    U8 = 2
    I16 = 3
    LABEL = 4
    BITS = 5


class CheckpointMode(IntEnum):
    SNAPSHOT = 0
    ACCEPT_IF_BETTER = 1


class ResetMode(IntEnum):
    MODEL = 0
    EXIT = 1


class Result(IntEnum):
    OK = 0
    NONFINITE = 1  # the loss was NaN/Inf: the update was skipped
    ROLLED_BACK = 2  # accept-if-better: worse, rolled back


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


# ------------------------------------------------------------------------------------------------
# Samples
# ------------------------------------------------------------------------------------------------

_ROLE_ENCODINGS = {
    "input": {Enc.NONE, Enc.F32, Enc.U8, Enc.I16},
    "target": {Enc.NONE, Enc.F32, Enc.U8, Enc.I16, Enc.LABEL},
    "mask": {Enc.NONE, Enc.BITS, Enc.F32, Enc.U8},
}


def _f32(x: float) -> float:
    """``x`` rounded to float32, as it travels (so that a Block survives pack/unpack unchanged)."""
    return float(np.float32(x))


@dataclass(frozen=True)
class Block:
    """One tensor of a sample as it travels: raw bytes plus how the device turns them into floats.

    ``u8``/``i16``: value = float32(raw) * scale + offset in float32 (two roundings, as on the device).
    """

    enc: Enc
    count: int = 0
    data: bytes = b""
    scale: float = 1.0
    offset: float = 0.0

    @staticmethod
    def none() -> Block:
        return Block(Enc.NONE)

    @staticmethod
    def f32(values: Iterable[float] | np.ndarray) -> Block:
        a = np.ascontiguousarray(np.asarray(values, dtype="<f4").ravel())
        return Block(Enc.F32, a.size, a.tobytes())

    @staticmethod
    def u8(values: np.ndarray | Sequence[int], scale: float = 1.0 / 255.0, offset: float = 0.0) -> Block:
        """uint8 values (e.g. an image, C x H x W row-major) with value = raw * scale + offset."""
        a = np.asarray(values)
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError("u8 block: values outside 0..255")
        a = np.ascontiguousarray(a.astype(np.uint8).ravel())
        return Block(Enc.U8, a.size, a.tobytes(), _f32(scale), _f32(offset))

    @staticmethod
    def i16(values: np.ndarray | Sequence[int], scale: float = 1e-3, offset: float = 0.0) -> Block:
        """int16 values (e.g. ToF distances in mm, scale 1e-3 -> metres)."""
        a = np.asarray(values)
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError("i16 block: values outside -32768..32767")
        a = np.ascontiguousarray(a.astype("<i2").ravel())
        return Block(Enc.I16, a.size, a.tobytes(), _f32(scale), _f32(offset))

    @staticmethod
    def label(index: int, classes: int) -> Block:
        """A class index, one-hot of length ``classes`` on the device."""
        if not 0 <= index < classes <= 0xFFFF:
            raise ValueError(f"label {index} outside 0..{classes - 1}")
        return Block(Enc.LABEL, classes, struct.pack("<H", index))

    @staticmethod
    def bits(mask: np.ndarray | Sequence[bool]) -> Block:
        """A 0/1 mask as bits, LSB first."""
        a = np.asarray(mask).ravel() != 0
        return Block(Enc.BITS, a.size, np.packbits(a, bitorder="little").tobytes())

    def nbytes(self) -> int:
        return len(self.data)

    def pack(self) -> bytes:
        return BLOCK_HEADER.pack(self.enc, self.count, self.scale, self.offset) + self.data

    def to_floats(self, numel: int | None = None, role: str = "input") -> np.ndarray | None:
        """What the device stores (float32), bit for bit. NONE: None (kept), or all ones for a mask."""
        n = self.count if numel is None else numel
        if self.enc == Enc.NONE:
            return np.ones(n, np.float32) if role == "mask" else None
        if self.enc == Enc.F32:
            return np.frombuffer(self.data, "<f4").astype(np.float32)
        if self.enc == Enc.LABEL:
            out = np.zeros(self.count, np.float32)
            out[struct.unpack("<H", self.data)[0]] = 1.0
            return out
        if self.enc == Enc.BITS:
            return np.unpackbits(np.frombuffer(self.data, np.uint8), bitorder="little")[: self.count].astype(
                np.float32
            )
        raw = np.frombuffer(self.data, np.uint8 if self.enc == Enc.U8 else "<i2")
        if self.enc == Enc.U8 and role == "mask":
            return (raw != 0).astype(np.float32)
        return raw.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


def _parse_block(payload: bytes, pos: int, role: str) -> tuple[Block, int]:
    if len(payload) - pos < BLOCK_HEADER.size:
        raise ValueError(f"{role} block header truncated")
    enc_raw, count, scale, offset = BLOCK_HEADER.unpack_from(payload, pos)
    enc = Enc(enc_raw)
    if enc not in _ROLE_ENCODINGS[role]:
        raise ValueError(f"{role} block: encoding {enc.name} not allowed")
    pos += BLOCK_HEADER.size
    size = {Enc.NONE: 0, Enc.F32: 4 * count, Enc.U8: count, Enc.I16: 2 * count, Enc.LABEL: 2}.get(
        enc, (count + 7) // 8
    )
    if len(payload) - pos < size:
        raise ValueError(f"{role} block data truncated")
    return Block(enc, count, payload[pos : pos + size], scale, offset), pos + size


@dataclass(frozen=True)
class Sample:
    """A SAMPLE payload: input, target and mask blocks. ``slot`` 0 is the working sample, k > 0 the
    validation slot k - 1; ``sample_id`` is the host's index of the sample (reported back in ACK/INFO,
    so that a restarted host resumes after the last applied one)."""

    input: Block
    target: Block = field(default_factory=Block.none)
    mask: Block = field(default_factory=Block.none)
    sample_id: int = 0
    slot: int = 0

    def pack(self) -> bytes:
        for role in ("input", "target", "mask"):
            enc = getattr(self, role).enc
            if enc not in _ROLE_ENCODINGS[role]:
                raise ValueError(f"{role} block: encoding {Enc(enc).name} not allowed")
        return (
            SAMPLE_HEADER.pack(self.sample_id & 0xFFFFFFFF, self.slot)
            + self.input.pack()
            + self.target.pack()
            + self.mask.pack()
        )

    @staticmethod
    def unpack(payload: bytes) -> Sample:
        if len(payload) < SAMPLE_HEADER.size:
            raise ValueError("sample header truncated")
        sample_id, slot = SAMPLE_HEADER.unpack_from(payload)
        pos = SAMPLE_HEADER.size
        blocks = []
        for role in ("input", "target", "mask"):
            b, pos = _parse_block(payload, pos, role)
            blocks.append(b)
        if pos != len(payload):
            raise ValueError(f"{len(payload) - pos} bytes after the mask block")
        return Sample(blocks[0], blocks[1], blocks[2], sample_id, slot)

    def data_bytes(self) -> int:
        """Bytes of tensor data (what a sample is worth, without any header)."""
        return self.input.nbytes() + self.target.nbytes() + self.mask.nbytes()


# ------------------------------------------------------------------------------------------------
# Replies
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    seq: int  # the last applied sequence number (cumulative)
    cmd: int  # type of the request it applied
    result: Result | int
    step: int
    loss: float
    sample_id: int
    duplicate: bool = False

    @staticmethod
    def from_frame(f: Frame) -> Ack:
        cmd, result, step, loss, sample_id = ACK.unpack(f.payload)
        with contextlib.suppress(ValueError):
            result = Result(result)
        return Ack(f.seq, cmd, result, step, loss, sample_id, bool(f.flags & FLAG_DUP))

    @property
    def skipped(self) -> bool:
        """The NaN/Inf guard skipped the update."""
        return self.result == Result.NONFINITE


@dataclass(frozen=True)
class ErrorReply:
    seq: int
    code: ErrorCode | int
    request: int
    last_seq: int
    detail: int

    @staticmethod
    def from_frame(f: Frame) -> ErrorReply:
        code, request, last_seq, detail = ERROR.unpack(f.payload)
        with contextlib.suppress(ValueError):
            code = ErrorCode(code)
        return ErrorReply(f.seq, code, request, last_seq, detail)

    @property
    def transient(self) -> bool:
        return isinstance(self.code, ErrorCode) and self.code.transient

    def describe(self) -> str:
        name = self.code.name if isinstance(self.code, ErrorCode) else str(self.code)
        text = ERROR_TEXT.get(self.code, "unknown error") if isinstance(self.code, ErrorCode) else "?"
        try:
            req = MsgType(self.request).name
        except ValueError:
            req = f"0x{self.request:02x}"
        return (
            f"device error {name} ({text}) on {req}, detail {self.detail}, last applied seq {self.last_seq}"
        )


def _str_at(payload: bytes, pos: int) -> tuple[str, int]:
    n = payload[pos]
    return payload[pos + 1 : pos + 1 + n].decode("utf-8", "replace"), pos + 1 + n


@dataclass(frozen=True)
class Info:
    version: int
    val_slots: int
    flags: int
    max_frame: int
    last_seq: int
    last_sample_id: int  # NO_SAMPLE_ID when none was applied
    step: int
    input_numel: int
    input_shape: tuple[int, int, int]
    target_numel: int
    output_numel: int
    trainable_numel: int
    arena_bytes: int
    peak_ram_bytes: int
    stack_bytes: int
    stack_used: int
    cpu_hz: int
    input_encodings: frozenset[Enc]
    target_encodings: frozenset[Enc]
    mask_encodings: frozenset[Enc]
    model_hash: str
    plan: str
    board: str
    restored_from: int = 0  # 0: compiled-in parameters at boot; 1 + k: loaded from storage slot k
    bad_slots: int = 0  # bit k: storage slot k held a damaged or foreign record at boot

    FLAG_MASK = 1
    FLAG_TRAIN = 2
    FLAG_CHECKPOINT = 4
    FLAG_PUT_PARAMS = 8
    FLAG_PERSIST = 16

    @property
    def uses_mask(self) -> bool:
        return bool(self.flags & Info.FLAG_MASK)

    @property
    def can_checkpoint(self) -> bool:
        """CHECKPOINT and ROLLBACK work (the firmware keeps a snapshot)."""
        return bool(self.flags & Info.FLAG_CHECKPOINT)

    @property
    def can_persist(self) -> bool:
        """CHECKPOINT with PERSIST works (the firmware has storage)."""
        return bool(self.flags & Info.FLAG_PERSIST)

    def boot_source(self) -> str:
        """Where the running parameters came from at boot, in words."""
        damaged = [str(k) for k in range(2) if self.bad_slots >> k & 1]
        bad = f"; storage slot {' and '.join(damaged)} damaged" if damaged else ""
        if self.restored_from:
            return f"storage slot {self.restored_from - 1}{bad}"
        if bad or not self.can_persist:
            return f"compiled-in parameters{bad}"
        return "compiled-in parameters (no saved state)"

    @property
    def next_sample_id(self) -> int:
        """Where a stream resumes: the sample after the last applied one."""
        return 0 if self.last_sample_id == NO_SAMPLE_ID else self.last_sample_id + 1

    @staticmethod
    def from_frame(f: Frame) -> Info:
        p = f.payload
        v = INFO_FIXED.unpack_from(p)
        pos = INFO_FIXED.size

        def encs(bits: int) -> frozenset[Enc]:
            return frozenset(e for e in Enc if bits >> e & 1)

        model_hash, pos = _str_at(p, pos)
        plan, pos = _str_at(p, pos)
        board, pos = _str_at(p, pos)
        return Info(
            version=v[0],
            val_slots=v[1],
            flags=v[2],
            max_frame=v[3],
            last_seq=v[4],
            last_sample_id=v[5],
            step=v[6],
            input_numel=v[7],
            input_shape=(v[8], v[9], v[10]),
            target_numel=v[11],
            output_numel=v[12],
            trainable_numel=v[13],
            arena_bytes=v[14],
            peak_ram_bytes=v[15],
            stack_bytes=v[16],
            stack_used=v[17],
            cpu_hz=v[18],
            input_encodings=encs(v[19]),
            target_encodings=encs(v[20]),
            mask_encodings=encs(v[21]),
            model_hash=model_hash,
            plan=plan,
            board=board,
            restored_from=v[22],
            bad_slots=v[23],
        )


@dataclass(frozen=True)
class Stats:
    step: int
    samples_trained: int
    nonfinite_skips: int
    last_loss: float
    loss_avg: float
    metric: float
    last_step_instr: int
    total_train_instr: int
    stack_used: int
    last_seq: int
    last_sample_id: int
    frames: int
    crc_errors: int
    bad_frames: int
    duplicates: int
    errors_sent: int

    @staticmethod
    def from_frame(f: Frame) -> Stats:
        return Stats(*STATS.unpack(f.payload))

    @property
    def has_metric(self) -> bool:
        return not math.isnan(self.metric)


@dataclass(frozen=True)
class Chunk:
    """A PARAMS or OUTPUT reply: floats [first, first + len(values)) of ``total``."""

    first: int
    total: int
    values: np.ndarray

    @staticmethod
    def from_frame(f: Frame) -> Chunk:
        first, total = CHUNK.unpack_from(f.payload)
        body = f.payload[CHUNK.size :]
        if len(body) % 4:
            raise ValueError("chunk of floats with a partial float")
        return Chunk(first, total, np.frombuffer(body, "<f4").astype(np.float32))


@dataclass(frozen=True)
class EvalResult:
    loss: float
    metric: float
    count: int

    @staticmethod
    def from_frame(f: Frame) -> EvalResult:
        return EvalResult(*EVAL_RESULT.unpack(f.payload))


Reply = Ack | ErrorReply | Info | Stats | Chunk | EvalResult | str


def parse_reply(f: Frame) -> Reply:
    """Decode a reply frame; a LOG frame gives its text. Raises ValueError for malformed payloads."""
    try:
        t = MsgType(f.type)
    except ValueError as e:
        raise ValueError(f"unknown reply type 0x{f.type:02x}") from e
    try:
        if t == MsgType.ACK:
            return Ack.from_frame(f)
        if t == MsgType.ERROR:
            return ErrorReply.from_frame(f)
        if t == MsgType.INFO:
            return Info.from_frame(f)
        if t == MsgType.STATS_REPLY:
            return Stats.from_frame(f)
        if t in (MsgType.PARAMS, MsgType.OUTPUT):
            return Chunk.from_frame(f)
        if t == MsgType.EVAL_RESULT:
            return EvalResult.from_frame(f)
        if t == MsgType.LOG:
            return f.payload.decode("utf-8", "replace")
    except (struct.error, IndexError) as e:
        raise ValueError(f"malformed {t.name} payload of {len(f.payload)} bytes: {e}") from e
    raise ValueError(f"{t.name} is not a reply")


# ------------------------------------------------------------------------------------------------
# Request payloads
# ------------------------------------------------------------------------------------------------


def chunk_request(first: int, count: int = 0) -> bytes:
    """GET_PARAMS / INFER payload: from ``first``, at most ``count`` floats (0: as many as fit)."""
    return CHUNK.pack(first, count)


def put_params_payload(offset: int, total: int, values: np.ndarray) -> bytes:
    return CHUNK.pack(offset, total) + np.ascontiguousarray(values, dtype="<f4").tobytes()


def floats_per_chunk(max_frame: int) -> int:
    """Floats in one PARAMS/OUTPUT/PUT_PARAMS frame of a device with frame size ``max_frame``."""
    return (max_frame - OVERHEAD - CHUNK.size) // 4


def sample_frame_size(sample: Sample) -> int:
    """Unstuffed frame bytes of a SAMPLE."""
    return OVERHEAD + len(sample.pack())
