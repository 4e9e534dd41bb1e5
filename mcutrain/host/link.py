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

import math
from dataclasses import dataclass, field, replace
from types import TracebackType

import numpy as np

from mcutrain.host.framing import (
    FLAG_BLEND,
    FLAG_LAST,
    FLAG_PERSIST,
    FLAG_REPLAY,
    FLAG_RUN,
    FLAG_TRAIN,
    FLAG_VALSET,
    MsgType,
)
from mcutrain.host.link_transport import LinkClosed, LinkError, LinkTimeout, LinkTransport
from mcutrain.host.messages import (
    Ack,
    CheckpointMode,
    Chunk,
    EvalResult,
    ResetMode,
    Result,
    Stats,
    chunk_request,
    floats_per_chunk,
    put_params_payload,
)
from mcutrain.host.sample_encoding import Sample


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


class Link(LinkTransport):
    """A stop-and-wait connection to one device running protocol v1.

    ``port`` is a pyserial URL (``/dev/ttyACM0``, ``socket://127.0.0.1:PORT``, ``loop://``) or an
    already open serial-like object. ``timeout`` is the first wait for a reply (seconds); each retry
    waits ``backoff`` times longer, up to ``max_timeout``; after ``retries`` retransmissions the request
    fails with :class:`LinkTimeout`. ``expect_model_hash`` (a prefix is enough) makes connecting fail
    when the firmware runs another model.
    """

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the protocol's verbs ------------------------------------------------------------------

    def sample(self, sample: Sample, train: bool = True, replay: bool = False) -> Ack:
        """Store a sample on the device and (``train``) run one training step on it; with ``replay``
        (a firmware with a reservoir, ``info.replay``) offer it to the reservoir and run the reservoir's
        steps instead (docs/protocol.md). Returns the ACK: ``ack.loss`` (of the first step),
        ``ack.step``, ``ack.skipped`` (NaN/Inf guard, on any step)."""
        flags = FLAG_REPLAY if replay else FLAG_TRAIN if train else 0
        return self._ack(MsgType.SAMPLE, sample.pack(), flags)

    def train(self) -> Ack:
        """One training step on the stored sample."""
        return self._ack(MsgType.TRAIN)

    def infer(self, sample: Sample | None = None, blend: bool = False) -> np.ndarray:
        """Model output (float32) for ``sample`` (stored first) or for the stored input; with ``blend``, the
        device's blended prediction in the targets' space (zones): ``A * prediction + (1 - A) * the running
        mean of the targets it trained on`` (firmware planned with ``LinkApp.blend``)."""
        if sample is not None:
            self.sample(sample, train=False)
        out: list[np.ndarray] = []
        more = FLAG_BLEND if blend else 0
        first, total, flags = 0, None, FLAG_RUN | more
        while total is None or first < total:
            chunk = self.request(MsgType.INFER, chunk_request(first), flags)
            assert isinstance(chunk, Chunk)
            total, flags = chunk.total, more
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


__all__ = ["CheckpointSchedule", "CheckpointTally", "Link"]
