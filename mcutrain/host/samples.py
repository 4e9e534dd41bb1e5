"""Samples for a device that trains over the serial link: where they come from (:class:`SampleSource`:
an ``.npz`` file, or a plug-in such as a live sensor), how a stream sends them (:func:`stream`, with the
validation slots and checkpoints of :func:`checkpoint_setup`) and how pulled parameters are saved."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mcutrain.host import Block, CheckpointMode, Info, Link, Sample
from mcutrain.host.link import CheckpointSchedule

if TYPE_CHECKING:
    from mcutrain.host.monitor import Monitor


@runtime_checkable
class SampleSource(Protocol):
    """Where ``mcutrain stream`` takes samples from: a dataset, a recording or a live sensor.

    ``samples(start)`` yields :class:`Sample` objects whose ``sample_id`` counts up from ``start`` (the
    first sample the device has not applied yet: a restarted stream resumes there). ``total`` is the
    number of samples the source holds, or None for an endless live source.
    """

    @property
    def total(self) -> int | None: ...

    def samples(self, start: int) -> Iterator[Sample]: ...


class NpzSource:
    """Samples from an ``.npz`` file.

    ``x``: inputs ``[N, ...]`` in the model's layout: float (sent as float32), uint8 (sent as bytes,
    value = raw * ``scale`` + ``offset``) or int16 (likewise). Targets: ``y`` (integer class labels, sent
    as LABEL of ``info.target_numel`` classes) or ``target`` (``[N, target numel]`` floats). Optional
    ``mask`` (``[N, target numel]``, 0/1, sent as bits).
    """

    def __init__(self, path: str | Path, info: Info, scale: float = 1.0, offset: float = 0.0) -> None:
        with np.load(path) as d:
            if "x" not in d:
                raise ValueError(f"{path}: no array 'x' (the inputs)")
            self.x = d["x"]
            self.y = d.get("y")
            self.target = d.get("target")
            self.mask = d.get("mask")
        if self.y is None and self.target is None:
            raise ValueError(f"{path}: no targets: give 'y' (class labels) or 'target' (floats)")
        n = len(self.x)
        for name, a in (("y", self.y), ("target", self.target), ("mask", self.mask)):
            if a is not None and len(a) != n:
                raise ValueError(f"{path}: '{name}' has {len(a)} samples, 'x' has {n}")
        per = int(np.prod(self.x.shape[1:]))
        if per != info.input_numel:
            raise ValueError(f"{path}: samples of {per} values, the device's model takes {info.input_numel}")
        self.info, self.scale, self.offset = info, scale, offset

    @property
    def total(self) -> int:
        return len(self.x)

    def sample(self, i: int) -> Sample:
        x = self.x[i]
        if x.dtype == np.uint8:
            xb = Block.u8(x, scale=self.scale, offset=self.offset)
        elif x.dtype == np.int16:
            xb = Block.i16(x, scale=self.scale, offset=self.offset)
        else:
            xb = Block.f32(x)
        if self.y is not None:
            tb = Block.label(int(self.y[i]), self.info.target_numel)
        else:
            assert self.target is not None
            tb = Block.f32(self.target[i])
        mb = Block.none() if self.mask is None else Block.bits(np.asarray(self.mask[i]).ravel() != 0)
        return Sample(xb, tb, mb, sample_id=i)

    def samples(self, start: int) -> Iterator[Sample]:
        for i in range(start, self.total):
            yield self.sample(i)


def load_plugin(spec: str, info: Info) -> SampleSource:
    """``package.module:factory`` -> ``factory(info)``, checked to be a :class:`SampleSource`."""
    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise ValueError(f"--source {spec!r}: expected package.module:factory")
    src = getattr(importlib.import_module(mod), name)(info)
    if not isinstance(src, SampleSource):
        raise ValueError(f"--source {spec}: {type(src).__name__} has no 'total' and 'samples(start)'")
    return src


def stream(
    link: Link,
    source: SampleSource,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    monitor: Monitor | None = None,
    checkpoints: CheckpointSchedule | None = None,
) -> int:
    """Send the source's samples from the device's next one (SAMPLE + TRAIN each; SAMPLE + REPLAY when the
    firmware has a replay reservoir, ``info.replay``) at most ``rate`` per second, each ACK to ``monitor``,
    with the ``checkpoints`` schedule; returns how many were sent."""
    from tqdm import tqdm

    assert link.info is not None
    start = link.info.next_sample_id
    total = source.total
    todo = None if total is None else max(0, total - start)
    if limit is not None:
        todo = limit if todo is None else min(todo, limit)
    sent = 0
    period = 1.0 / rate if rate else 0.0
    next_t = time.monotonic()
    bar = tqdm(total=todo, initial=0, unit="sample", disable=not progress, dynamic_ncols=True)
    try:
        for s in source.samples(start):
            if todo is not None and sent >= todo:
                break
            if period:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + period, time.monotonic())
            ack = link.sample(s, replay=link.info.replay is not None)
            sent += 1
            if monitor is not None:
                monitor.on_ack(link, ack)
            if checkpoints is not None:
                checkpoints.after_sample(link, sent)
            bar.set_postfix(step=ack.step, loss=f"{ack.loss:.4g}", skipped="yes" if ack.skipped else "no")
            bar.update(1)
    finally:
        bar.close()
    return sent


def checkpoint_setup(
    link: Link, source: SampleSource, val: int, every: int, persist: bool
) -> CheckpointSchedule | None:
    """``--val``, ``--checkpoint-every``, ``--persist``: check them against the device, send the source's
    first ``val`` samples to the validation slots (those the device has not applied yet) and measure the
    reference loss with a snapshot; training then starts after them. Raises ValueError with what to do."""
    info = link.info
    assert info is not None
    if val < 0 or every < 0:
        raise ValueError("--val and --checkpoint-every take counts >= 0")
    if val > info.val_slots:
        raise ValueError(
            f"--val {val}: the device has {info.val_slots} validation slots (emit val_slots={val})"
        )
    if (every or persist) and not info.can_checkpoint:
        raise ValueError("the device's firmware keeps no snapshot: emit it with snapshot=True")
    if every and not val:
        raise ValueError("--checkpoint-every decides on validation samples: give --val N")
    if persist and not info.can_persist:
        raise ValueError("--persist: the device has no storage (emit it with storage=...)")
    schedule = CheckpointSchedule(every, persist)
    start = info.next_sample_id
    if start < val:
        for s in source.samples(start):
            if s.sample_id >= val:
                break
            link.validation_sample(s, s.sample_id)
        # the reference: the model before training (its validation loss)
        schedule.tally.reference = link.checkpoint(CheckpointMode.SNAPSHOT, persist).loss
        link.hello()  # the stream resumes after the validation samples
    return schedule if every else None


def save_params(out: Path, params: np.ndarray, info: Info, step: int) -> None:
    """The pulled parameters as ``.npz``: ``params`` and the device's model hash, board, plan and step."""
    np.savez(
        out,
        params=params,
        model_hash=np.array(info.model_hash),
        board=np.array(info.board),
        plan=np.array(info.plan),
        step=np.array(step),
    )
