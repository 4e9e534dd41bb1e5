"""Scheduling: buffer lifetimes, storage sharing and static arena offsets.

The arena planner is its own small interface (:func:`place`): buffers with a size and a lifetime
``[first, last]`` in step indices get byte offsets such that buffers alive at the same time never
overlap. Placement is greedy (lowest fitting offset) in several orders, largest first among them, plus
seeded perturbations of it, and keeps the smallest arena; :func:`lower_bound` gives the largest total
of bytes alive at one step, which no placement can beat.

Before placement, buffers are grouped into storages: views (reshape outputs, gradients of reshape /
add / concat inputs) share their base buffer, and an elementwise step whose input dies at that step
writes its output in place.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mcutrain.train.derive import Action, Buffer, BufKind, Step, TrainGraph

ALIGN = 8  # bytes; every arena offset is a multiple of this


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Interval:
    size: int
    first: int
    last: int

    def overlaps(self, other: Interval) -> bool:
        return self.first <= other.last and other.first <= self.last


_ORDERS = {
    "size": lambda it, i: (-it.size, it.first, i),
    "area": lambda it, i: (-it.size * (it.last - it.first + 1), -it.size, i),
    "start": lambda it, i: (it.first, -it.size, i),
    "length": lambda it, i: (-(it.last - it.first), -it.size, i),
}


def _place_in_order(items: Sequence[Interval], order: list[int]) -> tuple[list[int], int]:
    offsets = [0] * len(items)
    placed: list[int] = []
    for i in order:
        it = items[i]
        taken = sorted((offsets[j], offsets[j] + items[j].size) for j in placed if items[j].overlaps(it))
        off = 0
        for lo, hi in taken:
            if off + it.size <= lo:
                break
            off = max(off, align(hi))
        offsets[i] = off
        placed.append(i)
    size = max((offsets[i] + items[i].size for i in range(len(items))), default=0)
    return offsets, align(size)


def place(items: Sequence[Interval], tries: int = 64) -> tuple[list[int], int]:
    """Offsets for ``items`` and the arena size: lowest-fitting-offset placement in several greedy
    orders (largest first, largest size x lifetime first, earliest first, longest-lived first) and in
    ``tries`` seeded shuffles of the largest-first order, keeping the smallest arena; it stops early
    at the lower bound. Deterministic."""
    bound = align(lower_bound(items)[0])
    orders = [sorted(range(len(items)), key=lambda i, key=key: key(items[i], i)) for key in _ORDERS.values()]
    rng = random.Random(0)
    base = orders[0]
    for _ in range(tries):  # perturb the largest-first order: swap neighbours of similar size
        o = base[:]
        for k in range(len(o) - 1):
            if rng.random() < 0.3:
                o[k], o[k + 1] = o[k + 1], o[k]
        orders.append(o)
    best: tuple[list[int], int] | None = None
    for order in orders:
        cand = _place_in_order(items, order)
        if best is None or cand[1] < best[1]:
            best = cand
        if best[1] <= bound:
            break
    return best if best is not None else ([], 0)


def lower_bound(items: Sequence[Interval]) -> tuple[int, int]:
    """(largest total of bytes alive at one step, that step)."""
    if not items:
        return 0, 0
    last = max(it.last for it in items)
    live = [0] * (last + 2)
    for it in items:
        live[it.first] += it.size
        live[it.last + 1] -= it.size
    best, at, run = 0, 0, 0
    for s in range(last + 1):
        run += live[s]
        if run > best:
            best, at = run, s
    return best, at


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every arena buffer of one phase (training step or inference)."""

    offsets: dict[str, int]  # buffer name -> byte offset (views resolved)
    size: int
    lower_bound: int
    peak_step: int
    live_at_peak: tuple[str, ...]  # storage roots alive at the peak step
    storage_of: dict[str, str]  # buffer name -> storage root
    storage_bytes: dict[str, int]


def plan_phase(
    buffers: dict[str, Buffer], steps: Sequence[Step], outside: frozenset[BufKind] = frozenset({BufKind.IO})
) -> ArenaPlan:
    """Group ``buffers`` into storages, compute their lifetimes over ``steps`` and place them. Buffers
    whose storage is of a kind in ``outside`` (caller-owned I/O, persistent gradients) get no offset."""
    used = {b for s in steps for b in (*s.reads, *s.writes)}
    # resolve views: buffer -> (root, offset)
    root: dict[str, tuple[str, int]] = {}

    def resolve(name: str) -> tuple[str, int]:
        if name not in root:
            b = buffers[name]
            if b.view_of is None:
                root[name] = (name, 0)
            else:
                r, off = resolve(b.view_of)
                root[name] = (r, off + b.view_offset)
        return root[name]

    def inside(name: str) -> bool:
        return buffers[resolve(name)[0]].kind not in outside

    used_roots = {resolve(n)[0] for n in used}
    names = sorted(
        n
        for n in buffers
        if inside(n) and (n in used or (buffers[n].view_of and resolve(n)[0] in used_roots))
    )
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for idx, s in enumerate(steps):
        for b in (*s.reads, *s.writes):
            if not inside(b):
                continue
            r = resolve(b)[0]
            first.setdefault(r, idx)
            last[r] = idx
    # storage sharing for in-place elementwise steps: union of roots
    merged: dict[str, tuple[str, int]] = {}

    def find(r: str) -> tuple[str, int]:
        off = 0
        while r in merged:
            r, o = merged[r]
            off += o
        return r, off

    size: dict[str, int] = {r: align(buffers[r].nbytes) for r in first}
    for idx, s in enumerate(steps):
        if not s.inplace or len(s.writes) != 1 or not s.reads or s.accumulate:
            continue
        src, dst = s.reads[0], s.writes[0]
        if not inside(src) or not inside(dst) or buffers[dst].view_of is not None:
            continue
        rs, _ = find(resolve(src)[0])
        rd, _ = find(resolve(dst)[0])
        if rs == rd or last[rs] != idx or first[rd] != idx or size[rd] > size[rs]:
            continue
        if resolve(src)[1] != 0 or buffers[src].nbytes != buffers[dst].nbytes:
            continue
        merged[rd] = (rs, 0)
        last[rs] = max(last[rs], last[rd])
    roots = sorted(r for r in first if r not in merged)
    items = [Interval(size[r], first[r], last[r]) for r in roots]
    offs, arena = place(items)
    base = dict(zip(roots, offs, strict=True))
    offsets: dict[str, int] = {}
    storage_of: dict[str, str] = {}
    for n in list(first) + names:
        r0, o0 = resolve(n)
        r, o1 = find(r0)
        offsets[n] = base[r] + o0 + o1
        storage_of[n] = r
    lb, peak = lower_bound(items)
    live = tuple(r for r, it in zip(roots, items, strict=True) if it.first <= peak <= it.last)
    return ArenaPlan(offsets, arena, lb, peak, live, storage_of, {r: size[r] for r in roots})


@dataclass(frozen=True)
class StepSchedule:
    train: ArenaPlan
    infer: ArenaPlan

    @property
    def arena_bytes(self) -> int:
        return max(self.train.size, self.infer.size)


def schedule(tg: TrainGraph) -> StepSchedule:
    outside = {BufKind.IO}
    if tg.plan.batch > 1:  # gradients accumulate over several calls: they cannot live in the arena
        outside.add(BufKind.WGRAD)
    return StepSchedule(
        plan_phase(tg.buffers, tg.steps, frozenset(outside)), plan_phase(tg.buffers, tg.infer_steps)
    )


def backward_steps(tg: TrainGraph) -> list[Step]:
    return [s for s in tg.steps if s.action in (Action.IGRAD, Action.WGRAD, Action.UPDATE)]
