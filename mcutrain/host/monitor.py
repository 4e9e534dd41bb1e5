"""Watching on-device training: a :class:`Monitor` that ``mcutrain stream`` feeds with every ACK (or that
``mcutrain monitor`` feeds with polled STATS), a live terminal view (:mod:`mcutrain.host.monitor_views`),
a CSV row and TensorBoard scalars per step, and PNG curves at the end (docs/monitor.md).

>>> mon = Monitor(log_dir="logs", view=make_view())  # doctest: +SKIP
>>> mon.start(link.info)
>>> for s in samples:
...     mon.on_ack(link, link.sample(s))  # may also ask the device for STATS or run the held-out samples
>>> mon.close()  # writes logs/curves.png
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from mcutrain.host.link import Link
from mcutrain.host.messages import Ack, Info, Stats
from mcutrain.host.monitor_views import View
from mcutrain.host.sample_encoding import Enc, Sample
from mcutrain.host.tbevents import EventWriter

EMA = 0.05  # weight of a new loss in the moving average (the device's loss_avg uses the same)
CSV_NAME = "steps.csv"
PLOT_NAME = "curves.png"
INFO_NAME = "device.json"


@dataclass(frozen=True)
class Record:
    """One row of the log: a training step as the host saw it."""

    time_s: float  # seconds since the monitor started
    step: int  # the device's step counter after this sample
    sample_id: int
    loss: float
    loss_avg: float  # moving average of the finite losses (EMA)
    skipped: bool  # the device's NaN/Inf guard skipped the update
    samples_per_s: float
    instr_per_step: int | None = None  # from STATS, when the monitor asked at this step
    stack_used: int | None = None
    val_loss: float | None = None  # held-out evaluation, at the steps it ran
    val_metric: float | None = None

    @staticmethod
    def columns() -> list[str]:
        return [f.name for f in dataclasses.fields(Record)]

    def row(self) -> list[str]:
        def text(v: object) -> str:
            if v is None:
                return ""
            if isinstance(v, bool):
                return str(int(v))
            if isinstance(v, float):
                return f"{v:.9g}"
            return str(v)

        return [text(getattr(self, c)) for c in self.columns()]

    @staticmethod
    def from_row(row: dict[str, str]) -> Record:
        """Inverse of :meth:`row` (for reading a log back)."""
        kinds = {f.name: str(f.type) for f in dataclasses.fields(Record)}
        out: dict[str, object] = {}
        for name, v in row.items():
            kind = kinds[name]
            if v == "":
                out[name] = None
            elif kind == "bool":
                out[name] = v == "1"
            elif "int" in kind:
                out[name] = int(v)
            else:
                out[name] = float(v)
        return Record(**out)  # type: ignore[arg-type]


def read_csv(path: str | Path) -> list[Record]:
    with Path(path).open(newline="") as f:
        return [Record.from_row(r) for r in csv.DictReader(f)]


# ---- held-out evaluation -------------------------------------------------------------------------


class HeldOut:
    """Held-out samples that the monitor evaluates every ``every`` steps: each is stored on the device
    without training (SAMPLE without TRAIN), EVAL gives its loss and INFER its output, from which the
    host computes the accuracy when targets are class labels (else the device's EVAL metric, if any).

    The held-out SAMPLEs carry the id of the last trained sample, so the device's resume point
    (INFO.last_sample_id) stays where training is; a plan that accumulates gradients over several
    samples (batch > 1) must not be interrupted like this (the monitor refuses it).
    """

    def __init__(self, samples: Sequence[Sample], every: int) -> None:
        if every < 1:
            raise ValueError("held-out evaluation: every must be >= 1 step")
        if not samples:
            raise ValueError("held-out evaluation needs at least one sample")
        self.samples = list(samples)
        self.every = every
        self.labels = [
            int(np.argmax(s.target.to_floats(role="target"))) if s.target.enc == Enc.LABEL else None
            for s in self.samples
        ]

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def run(self, link: Link, resume_id: int) -> tuple[float, float | None]:
        """(mean loss, accuracy or the device's mean metric or None) over the held-out samples."""
        losses, hits, metrics = [], [], []
        for s, label in zip(self.samples, self.labels, strict=True):
            link.sample(dataclasses.replace(s, sample_id=resume_id, slot=0), train=False)
            r = link.eval()
            losses.append(r.loss)
            if label is not None:
                hits.append(float(np.argmax(link.infer()) == label))
            elif not math.isnan(r.metric):
                metrics.append(r.metric)
        metric = float(np.mean(hits)) if hits else float(np.mean(metrics)) if metrics else None
        return float(np.mean(losses)), metric


# ---- the monitor ---------------------------------------------------------------------------------


class Monitor:
    """Observer of a training run: ``start(info)``, then ``on_ack(link, ack)`` per streamed sample (or
    ``on_stats(stats)`` per poll), then ``close()``.

    ``stats_every``: ask the device for STATS every so many steps (instructions of the step just done,
    stack used); ``held_out``: evaluate held-out samples every ``held_out.every`` steps. With
    ``log_dir``: ``steps.csv`` (one row per step, flushed at once; a monitor started on an existing log
    appends to it, so a restarted stream continues its log), TensorBoard scalars (a new event file per
    monitor), ``device.json`` (the INFO) and, at ``close()``, ``curves.png`` of the records of this
    monitor.
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        view: View | None = None,
        stats_every: int = 10,
        held_out: HeldOut | None = None,
        rate_window: int = 20,
    ) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.view = view
        self.stats_every = stats_every
        self.held_out = held_out
        self.records: list[Record] = []
        self.info: Info | None = None
        self._t0 = time.monotonic()
        self._times: deque[tuple[float, int]] = deque(maxlen=rate_window + 1)
        self._avg = math.nan
        self._csv_file: IO[str] | None = None
        self._tb: EventWriter | None = None
        self._skips: int | None = None  # the device's NaN/Inf skips at the last poll

    def start(self, info: Info) -> None:
        batch = re.search(r"batch=(\d+)", info.plan)
        if self.held_out is not None and batch is not None and int(batch.group(1)) > 1:
            raise ValueError(
                f"the device accumulates gradients over several samples ({info.plan}): held-out "
                "evaluation between them would disturb it; stream without held-out samples"
            )
        self.info = info
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / INFO_NAME).write_text(json.dumps(_info_dict(info), indent=1) + "\n")
            path = self.log_dir / CSV_NAME
            resumed = path.is_file() and path.stat().st_size > 0  # a restarted stream: continue the log
            if resumed and _first_line(path) != ",".join(Record.columns()):
                raise ValueError(f"{path} is not a monitor log of this version: choose another --log-dir")
            self._csv_file = path.open("a", newline="")
            if not resumed:
                csv.writer(self._csv_file).writerow(Record.columns())
                self._csv_file.flush()
            self._tb = EventWriter(self.log_dir)
            self._tb.scalar("device/plan_peak_ram_bytes", info.peak_ram_bytes, info.step)
            self._tb.scalar("device/arena_bytes", info.arena_bytes, info.step)
        if self.view is not None:
            self.view.header(info)

    def _rate(self, step: int) -> float:
        now = time.monotonic()
        self._times.append((now, step))
        (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _smooth(self, loss: float) -> float:
        if math.isfinite(loss):
            self._avg = loss if math.isnan(self._avg) else (1 - EMA) * self._avg + EMA * loss
        return self._avg

    def on_ack(self, link: Link, ack: Ack) -> Record:
        """A SAMPLE/TRAIN ACK from ``stream``: log the step, ask for STATS and run the held-out samples
        when due (through the same link: stop-and-wait, nothing else is in flight)."""
        stats = link.device_stats() if self.stats_every and ack.step % self.stats_every == 0 else None
        val_loss = val_metric = None
        if self.held_out is not None and self.held_out.due(ack.step):
            val_loss, val_metric = self.held_out.run(link, ack.sample_id)
        rec = Record(
            time_s=time.monotonic() - self._t0,
            step=ack.step,
            sample_id=ack.sample_id,
            loss=ack.loss,
            loss_avg=self._smooth(ack.loss),
            skipped=ack.skipped,
            samples_per_s=self._rate(ack.step),
            instr_per_step=None if stats is None else stats.last_step_instr,
            stack_used=None if stats is None else stats.stack_used,
            val_loss=val_loss,
            val_metric=val_metric,
        )
        self.add(rec)
        return rec

    def on_stats(self, stats: Stats) -> Record | None:
        """A polled STATS (``mcutrain monitor``): a row when the device made progress since the last."""
        if self.records and stats.step == self.records[-1].step:
            return None
        skips, self._skips = self._skips, stats.nonfinite_skips
        rec = Record(
            time_s=time.monotonic() - self._t0,
            step=stats.step,
            sample_id=stats.last_sample_id,
            loss=stats.last_loss,
            loss_avg=stats.loss_avg,
            skipped=skips is not None and stats.nonfinite_skips > skips,  # since the last poll
            samples_per_s=self._rate(stats.step),
            instr_per_step=stats.last_step_instr,
            stack_used=stats.stack_used,
            val_metric=stats.metric if stats.has_metric else None,
        )
        self.add(rec)
        return rec

    def add(self, rec: Record) -> None:
        """Log one record to every sink."""
        self.records.append(rec)
        if self._csv_file is not None:
            csv.writer(self._csv_file).writerow(rec.row())
            self._csv_file.flush()
        if self._tb is not None:
            wall = time.time()
            scalars = {
                "train/loss": rec.loss,
                "train/loss_avg": rec.loss_avg,
                "link/samples_per_s": rec.samples_per_s,
                "device/instructions_per_step": rec.instr_per_step,
                "device/stack_used_bytes": rec.stack_used,
                "held_out/loss": rec.val_loss,
                "held_out/metric": rec.val_metric,
            }
            for tag, v in scalars.items():
                if v is not None:
                    self._tb.scalar(tag, v, rec.step, wall)
        if self.view is not None:
            self.view.update(rec)

    def close(self) -> Path | None:
        """Last view line, close the logs, write the PNG (returns its path when there is a log folder)."""
        if self.view is not None and self.records:
            self.view.update(self.records[-1], final=True)
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self.log_dir is None or not self.records:
            return None
        path = self.log_dir / PLOT_NAME
        plot_curves(self.records, path, self.info)
        return path

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(path: Path) -> str:
    with path.open() as f:
        return f.readline().strip()


def _info_dict(info: Info) -> dict[str, object]:
    d = dataclasses.asdict(info)
    for k in ("input_encodings", "target_encodings", "mask_encodings"):
        d[k] = sorted(Enc(e).name for e in d[k])
    return d


def plot_curves(records: Sequence[Record], path: str | Path, info: Info | None = None) -> None:
    """Loss (and its average, and the held-out loss), held-out metric, samples/s and instructions per
    step against the step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r.step for r in records])

    def series(name: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [(r.step, getattr(r, name)) for r in records if getattr(r, name) is not None]
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)

    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    a = ax[0, 0]
    a.plot(steps, [r.loss for r in records], lw=0.6, alpha=0.5, label="loss")
    a.plot(steps, [r.loss_avg for r in records], lw=1.8, label=f"moving average (EMA {EMA:g})")
    vs, vl = series("val_loss")
    if vs.size:
        a.plot(vs, vl, "o-", label="held-out loss")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.legend()
    a = ax[0, 1]
    ms, mv = series("val_metric")
    if ms.size:
        a.plot(ms, mv, "o-")
    a.set_title("held-out metric" if ms.size else "held-out metric (none evaluated)")
    a.set_xlabel("step")
    a = ax[1, 0]
    a.plot(steps, [r.samples_per_s for r in records])
    a.set_xlabel("step")
    a.set_ylabel("samples/s")
    a = ax[1, 1]
    s, v = series("instr_per_step")
    if s.size:
        a.plot(s, v, ".")
    a.set_xlabel("step")
    a.set_ylabel("instructions per step")
    if info is not None:
        fig.suptitle(f"{info.board}: model {info.model_hash[:12]}, {info.plan}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
