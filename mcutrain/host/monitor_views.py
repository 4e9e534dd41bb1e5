"""The terminal views of the training :class:`~mcutrain.host.monitor.Monitor` (docs/monitor.md): a
live block of lines redrawn in place on a terminal (:class:`LiveView`), periodic plain lines for CI logs
and pipes (:class:`PlainView`); :func:`make_view` picks one.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Protocol

from mcutrain.host.messages import Info

if TYPE_CHECKING:
    from mcutrain.host.monitor import Record


class View(Protocol):
    def header(self, info: Info) -> None: ...

    def update(self, rec: Record, final: bool = False) -> None: ...


def ram_line(info: Info, stack_used: int | None = None) -> str:
    used = stack_used if stack_used is not None else info.stack_used
    return (
        f"RAM: plan peak {info.peak_ram_bytes:,} B (arena {info.arena_bytes:,} B), stack {used:,} of "
        f"{info.stack_bytes:,} B used, link frame {info.max_frame:,} B"
    )


def step_line(rec: Record) -> str:
    parts = [
        f"step {rec.step}",
        f"sample #{rec.sample_id}",
        f"loss {rec.loss:.5g}",
        f"avg {rec.loss_avg:.5g}",
        f"{rec.samples_per_s:.1f} samples/s",
    ]
    if rec.instr_per_step is not None:
        parts.append(f"{rec.instr_per_step:,} instr/step")
    if rec.val_loss is not None:
        parts.append(f"held-out loss {rec.val_loss:.5g}")
    if rec.val_metric is not None:
        parts.append(f"metric {rec.val_metric:.4g}")
    if rec.skipped:
        parts.append("SKIPPED (non-finite)")
    return ", ".join(parts)


class PlainView:
    """One line at most every ``every_s`` seconds (and the last one): for CI logs and pipes."""

    def __init__(self, out: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.out = out or sys.stdout
        self.every_s = every_s
        self._last = -math.inf

    def header(self, info: Info) -> None:
        print(f"monitor: model {info.model_hash[:12]} on {info.board}, plan {info.plan}", file=self.out)
        print(f"monitor: {ram_line(info)}", file=self.out, flush=True)

    def update(self, rec: Record, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last >= self.every_s:
            self._last = now
            print(f"monitor: {step_line(rec)}", file=self.out, flush=True)


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 48) -> str:
    v = [x for x in values if math.isfinite(x)][-width:]
    if not v:
        return ""
    lo, hi = min(v), max(v)
    span = hi - lo or 1.0
    return "".join(_SPARK[min(7, int((x - lo) / span * 8))] for x in v)


class LiveView:
    """A block of lines redrawn in place (ANSI cursor movements), at most ``every_s`` apart."""

    def __init__(self, out: IO[str] | None = None, every_s: float = 0.2) -> None:
        self.out = out or sys.stdout
        self.every_s = every_s
        self._last = -math.inf
        self._lines = 0
        self._info: Info | None = None
        self._avg: deque[float] = deque(maxlen=48)

    def header(self, info: Info) -> None:
        self._info = info

    def update(self, rec: Record, final: bool = False) -> None:
        self._avg.append(rec.loss_avg)
        now = time.monotonic()
        if not final and now - self._last < self.every_s:
            return
        self._last = now
        info = self._info
        lines = []
        if info is not None:
            lines.append(f"mcutrain monitor · {info.board} · model {info.model_hash[:12]} · {info.plan}")
            lines.append(ram_line(info, rec.stack_used))
        lines += [step_line(rec), f"loss avg {sparkline(self._avg)}"]
        up = f"\x1b[{self._lines}F" if self._lines else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._lines = len(lines)


def make_view(out: IO[str] | None = None, every_s: float | None = None) -> View:
    """The live view on a terminal, plain periodic lines otherwise."""
    out = out or sys.stdout
    if out.isatty():
        return LiveView(out, 0.2 if every_s is None else every_s)
    return PlainView(out, 5.0 if every_s is None else every_s)
