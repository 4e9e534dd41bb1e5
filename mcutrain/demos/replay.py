"""A replay reservoir for training on a stream in recorded time order, with the exact semantics a small
static-memory firmware can mirror bit for bit (issue #14).

A drone sees its frames in time order: a take-off (the floor a few centimetres away), a stretch of one
room, a landing, the next flight. Trained on in that order, one frame per update, the network follows
whatever it saw last. The device therefore keeps a **reservoir** of ``slots`` past samples, a uniform
random sample of everything streamed so far (Vitter's algorithm R), stored exactly as the samples
arrive on the link (uint8 image, int16 zone distances, validity bits, the float32 scale and offset of
the image and of the distances), and trains on a fixed mix of new and replayed samples. The link
firmware runs this loop in C (firmware/link/mt_link_replay.c) per SAMPLE with the REPLAY flag, with the
configuration of the plan's :class:`~mcutrain.train.update_plan.LinkApp` (:func:`config_of`).

Per incoming labelled sample, in this order:

1. ``offer``: the ``n``-th sample (0-based) goes to slot ``n`` while ``n < slots``; afterwards
   ``j = rand() % (n + 1)`` and it replaces slot ``j`` if ``j < slots``, else it is dropped;
2. if ``train_new``: one training step on the incoming sample;
3. ``replay`` training steps, each on slot ``rand() % filled`` (``filled`` = slots written so far),
   the incoming sample included if it was stored.

``rand()`` is xorshift32 (``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` on a uint32, then ``x``), seeded
with a non-zero ``seed``; all arithmetic is uint32, so C gives the same draws. :func:`schedule` returns
the resulting list of training steps (which sample each step uses), the one thing the simulator and the
device must agree on. RAM: :meth:`ReplayConfig.bytes_for` (``slots`` samples plus 12 bytes of state), what
a plan with ``LinkApp(replay_slots=slots)`` counts (:func:`mcutrain.train.app_memory.link_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcutrain.train.app_memory import REPLAY_STATE_BYTES, replay_sample_bytes
from mcutrain.train.update_plan import REPLAY_SEED, LinkApp

MASK32 = 0xFFFFFFFF


def xorshift32(x: int) -> int:
    """One step of Marsaglia's xorshift32 (13, 17, 5): the next state, which is also the draw."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x & MASK32


@dataclass(frozen=True)
class ReplayConfig:
    slots: int = 32  # samples kept on the device
    replay: int = 1  # replayed training steps per incoming sample
    train_new: bool = True  # also one step on the incoming sample
    seed: int = REPLAY_SEED  # xorshift32 state, non-zero

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"replay: need slots >= 1, got {self}")
        self.app()  # the plan's checks of the rest (PlanError, a ValueError)

    def bytes_for(self, sample_bytes: int) -> int:
        """RAM of the reservoir: ``slots`` stored samples plus the rng state, the count of samples seen
        and the count of filled slots (uint32 each)."""
        return self.slots * sample_bytes + REPLAY_STATE_BYTES

    def app(self, **link: Any) -> LinkApp:
        """The plan's link firmware with this reservoir (``link``: its other LinkApp.make options)."""
        return LinkApp.make(
            **link,
            replay_slots=self.slots,
            replay_steps=self.replay,
            replay_new=self.train_new,
            replay_seed=self.seed,
        )


def config_of(app: LinkApp | None) -> ReplayConfig | None:
    """The reservoir of a plan's link firmware, or None when it has none."""
    if app is None or not app.replay_slots:
        return None
    return ReplayConfig(app.replay_slots, app.replay_steps, app.replay_new, app.replay_seed)


def sample_bytes(pixels: int, zones: int, per_sample_scale: bool = True) -> int:
    """Bytes of one stored sample: uint8 pixels, int16 zone distances, validity bits rounded up to
    bytes, and (``per_sample_scale``) the float32 scale and offset of the image and of the distances."""
    return replay_sample_bytes(pixels, zones) - (0 if per_sample_scale else 16)


class Reservoir:
    """The reservoir's bookkeeping (which sample sits in which slot); the samples themselves stay with
    the caller, referred to by their index in the stream."""

    def __init__(self, cfg: ReplayConfig) -> None:
        self.cfg = cfg
        self.state = cfg.seed
        self.seen = 0  # samples offered so far
        self.slot: list[int] = []  # stream index held by each filled slot

    def rand(self) -> int:
        self.state = xorshift32(self.state)
        return self.state

    def offer(self, index: int) -> int:
        """Offer stream sample ``index``; returns the slot it was stored in, or -1."""
        n = self.seen
        self.seen += 1
        if n < self.cfg.slots:
            self.slot.append(index)
            return n
        j = self.rand() % (n + 1)
        if j < self.cfg.slots:
            self.slot[j] = index
            return j
        return -1

    def draw(self) -> int:
        """The stream index held by a uniformly drawn filled slot."""
        return self.slot[self.rand() % len(self.slot)]


def schedule(n: int, cfg: ReplayConfig | None) -> list[int]:
    """The stream indices of the training steps for a stream of ``n`` samples (``None``: no reservoir,
    one step per sample in order)."""
    if cfg is None:
        return list(range(n))
    res = Reservoir(cfg)
    steps: list[int] = []
    for i in range(n):
        res.offer(i)
        if cfg.train_new:
            steps.append(i)
        steps.extend(res.draw() for _ in range(cfg.replay))
    return steps
