"""Messages of the mcutrain serial protocol v1 (docs/protocol.md): the payloads of the replies
(:class:`Ack`, :class:`ErrorReply`, :class:`Info`, :class:`Stats`, :class:`Chunk`,
:class:`EvalResult`; :func:`parse_reply` decodes a reply frame) and of the requests, and the modes and
results they carry. Every integer is little-endian.
"""

from __future__ import annotations

import contextlib
import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from mcutrain.host.framing import ERROR_TEXT, FLAG_DUP, OVERHEAD, ErrorCode, Frame, MsgType
from mcutrain.host.sample_encoding import Enc

ACK = struct.Struct("<BBxxIfI")  # cmd, result, step, loss, sample_id
ERROR = struct.Struct("<HBxII")  # code, request type, last_seq, detail
CHUNK = struct.Struct("<II")  # first/offset, total (PARAMS, OUTPUT) or offset, count (requests)
INFO_FIXED = struct.Struct("<BBHIIII IHHHxx III IIII I HHHBB")
INFO_REPLAY = struct.Struct(
    "<IIHBxII"
)  # slots, seed, replayed steps, train_new, seen, filled (after the strings)
INFO_BLEND = struct.Struct("<fI")  # the blend's weight A, target elements with a mean (after the reservoir's)
STATS = struct.Struct("<IIIfffQQIIIIIIII")
EVAL_RESULT = struct.Struct("<ffI")
NO_SAMPLE_ID = 0xFFFFFFFF


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
class ReplayInfo:
    """The device's replay reservoir (INFO, flag 32): its configuration, compiled in from the plan, and
    how many samples it has seen and holds."""

    slots: int
    seed: int
    replay: int  # replayed training steps per incoming sample
    train_new: bool  # one step on the incoming sample too
    seen: int
    filled: int


@dataclass(frozen=True)
class BlendInfo:
    """The device's running mean of the targets (INFO, flag 64): INFER BLEND's weight, compiled in from
    the plan, and how many target elements have a mean so far (the others answer the prediction alone)."""

    a: float
    seen: int


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
    replay: ReplayInfo | None = None  # the replay reservoir (None: the firmware has none)
    blend: BlendInfo | None = None  # the running mean of INFER BLEND (None: the firmware has none)

    FLAG_MASK = 1
    FLAG_TRAIN = 2
    FLAG_CHECKPOINT = 4
    FLAG_PUT_PARAMS = 8
    FLAG_PERSIST = 16
    FLAG_REPLAY = 32
    FLAG_BLEND = 64

    @property
    def uses_mask(self) -> bool:
        return bool(self.flags & Info.FLAG_MASK)

    @property
    def can_checkpoint(self) -> bool:
        """CHECKPOINT and ROLLBACK work (the firmware keeps a snapshot)."""
        return bool(self.flags & Info.FLAG_CHECKPOINT)

    @property
    def can_blend(self) -> bool:
        """INFER BLEND works (the firmware keeps a running mean of the targets: the plan's LinkApp.blend)."""
        return bool(self.flags & Info.FLAG_BLEND)

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
        replay = None
        if v[2] & Info.FLAG_REPLAY:  # a truncated record is malformed, not "no reservoir" (struct.error)
            r = INFO_REPLAY.unpack_from(p, pos)
            replay = ReplayInfo(r[0], r[1], r[2], bool(r[3]), r[4], r[5])
            pos += INFO_REPLAY.size
        blend = None
        if v[2] & Info.FLAG_BLEND:
            a, seen = INFO_BLEND.unpack_from(p, pos)
            blend = BlendInfo(a, seen)
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
            replay=replay,
            blend=blend,
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
