"""What the drone streams to its own training step, and that training in the simulator (issue #14).

A :class:`StreamRecipe` says how labelled frames of the real flights become link samples and in which
order the device trains on them:

* **order**: ``"time"`` (flight after flight, each in recorded time order: what a flying drone has) or
  ``"shuffle"`` (one seeded permutation: what a host that buffered everything could send);
* **every**: only every k-th labelled frame of the recording is streamed (the device trains slower than
  the camera runs; applied in time order, before any shuffling);
* **normalize**: each frame is standardized on the way in (:mod:`mcutrain.data.frame_scale`), as the
  per-sample float32 ``scale`` and ``offset`` of its uint8 block, which the firmware applies anyway;
* **min_mm**: valid zone distances below it are sent as it (the ToF reads 1-4 cm when the drone stands on
  the floor; a target of 0 would drive the sigmoid output into saturation);
* **replay**: a :class:`~mcutrain.demos.replay.ReplayConfig` reservoir (or ``None``), whose
  :func:`~mcutrain.demos.replay.schedule` picks the sample of every training step.

:func:`encode` makes the samples, :func:`decode` the floats the device computes from them, and
:func:`adapt` runs the simulator over the schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mcutrain.data.drone import DroneBatch
from mcutrain.data.frame_scale import input_scale, network_input
from mcutrain.demos.replay import ReplayConfig, schedule
from mcutrain.host.sample_encoding import Block, Sample
from mcutrain.train.simulator import Simulator
from mcutrain.zoo.depth import MAX_DEPTH_M


@dataclass(frozen=True)
class StreamRecipe:
    order: str = "time"
    every: int = 1
    normalize: bool = True
    min_mm: int = 0
    replay: ReplayConfig | None = None
    seed: int = 0  # of the shuffled order

    def __post_init__(self) -> None:
        if self.order not in ("time", "shuffle"):
            raise ValueError(f"order must be 'time' or 'shuffle', not {self.order!r}")
        if self.every < 1 or self.min_mm < 0:
            raise ValueError(f"every must be >= 1 and min_mm >= 0, got {self.every} and {self.min_mm}")


def stream_frames(b: DroneBatch, r: StreamRecipe) -> DroneBatch:
    """The labelled frames of ``b`` that are streamed, in streaming order."""
    lab = b.labelled()
    lab = lab.select(slice(0, None, r.every))
    if r.order == "shuffle":
        lab = lab.select(np.random.default_rng(r.seed).permutation(len(lab)))
    return lab


def encode(b: DroneBatch, r: StreamRecipe) -> list[Sample]:
    """Link samples: the uint8 frame with its scale and offset, int16 zone millimetres, validity bits."""
    out = []
    for i in range(len(b)):
        s, o = input_scale(b.image[i], r.normalize)
        mm = np.where(b.tof_valid[i], np.maximum(b.tof_mm[i], r.min_mm), b.tof_mm[i])
        out.append(
            Sample(
                Block.u8(b.image[i].ravel(), scale=s, offset=o),
                Block.i16(mm.ravel(), scale=1e-3 / MAX_DEPTH_M),
                Block.bits(b.tof_valid[i].ravel()),
                sample_id=i,
            )
        )
    return out


def decode(samples: list[Sample], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactly the floats the device computes from the samples: inputs, targets, masks."""
    x = np.stack([s.input.to_floats() for s in samples]).reshape(len(samples), *shape)
    t = np.stack([s.target.to_floats(role="target") for s in samples])
    m = np.stack([s.mask.to_floats(role="mask") for s in samples])
    return x, t, m


def adapt(
    sim: Simulator,
    x: np.ndarray,
    t: np.ndarray,
    m: np.ndarray,
    replay: ReplayConfig | None,
    on_update: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``sim`` on the stream ``(x, t, m)``: the samples of :func:`schedule`, in its order,
    ``plan.batch`` of them per update (the device accumulates their gradients); a last incomplete batch
    is not applied. Returns the loss of every update."""
    steps = schedule(len(x), replay)
    b = sim.plan.batch
    losses = []
    for k in range(len(steps) // b):
        i = steps[k * b : (k + 1) * b]
        losses.append(sim.train_step(x[i], t[i], m[i]))
        if on_update is not None:
            on_update(k, losses[-1])
    return losses


def sim_depth(sim: Simulator, normalize: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The simulator's current model as a depth function (uint8 frames -> metres) with the recipe's
    input scaling."""

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return sim.predict(network_input(images, normalize))[:, 0].numpy() * MAX_DEPTH_M

    return run
