"""What the drone streams (mcutrain.demos.depth_stream): standardized frames as per-sample scale and
offset, clamped near zones, the streaming order, and training over the replay schedule."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain import api
from mcutrain.data.drone import DroneBatch
from mcutrain.data.frame_scale import TARGET_MEAN, TARGET_STD, network_input
from mcutrain.data.tof import Footprint
from mcutrain.demos import depth_stream as ds
from mcutrain.demos.replay import ReplayConfig
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec


def flights(n: int = 12) -> DroneBatch:
    rng = np.random.default_rng(0)
    valid = rng.random((n, 8, 8)) < 0.6
    valid[3] = False  # an unlabelled frame: never streamed
    return DroneBatch(
        image=rng.integers(20, 200, (n, 48, 64)).astype(np.uint8),
        depth=None,  # type: ignore[arg-type]
        tof_mm=rng.integers(5, 3000, (n, 8, 8)).astype(np.int16),
        tof_status=np.full((n, 8, 8), 5, np.uint8),
        tof_valid=valid,
        footprint=Footprint(12, 22, 4, 4),
        flight=np.array(["A0"] * (n // 2) + ["O0"] * (n - n // 2)),
        t_ms=np.arange(n),
        tof_t_ms=np.arange(n),
    )


def test_encoding_standardizes_frames_and_clamps_near_zones() -> None:
    b = flights()
    r = ds.StreamRecipe(order="time", normalize=True, min_mm=100)
    frames = ds.stream_frames(b, r)
    assert len(frames) == len(b) - 1 and list(frames.t_ms[:4]) == [0, 1, 2, 4]
    x, t, m = ds.decode(ds.encode(frames, r), (1, 48, 64))
    assert np.array_equal(x, network_input(frames.image, True))  # what the simulator sees = the device
    assert abs(float(x[0].mean()) - TARGET_MEAN) < 1e-3 and float(x[0].std()) < TARGET_STD
    mm = np.round(t * 10_000).reshape(frames.tof_mm.shape)
    v = frames.tof_valid
    assert (mm[v] >= 100).all() and (mm[v] == np.maximum(frames.tof_mm[v], 100)).all()
    assert np.array_equal(m.reshape(v.shape) > 0, v)
    shuffled = ds.stream_frames(b, ds.StreamRecipe(order="shuffle", seed=1))
    assert sorted(shuffled.t_ms) == sorted(frames.t_ms) and list(shuffled.t_ms) != list(frames.t_ms)
    with pytest.raises(ValueError):
        ds.StreamRecipe(order="backwards")


def test_adapt_runs_the_replay_schedule_in_batches() -> None:
    g = api.load("depth_init")
    loss = LossConfig(LossKind.MSE, masked=True, zone=ZoneSpec(12, 22, 4, 4))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-3)
    r = ds.StreamRecipe(order="time", replay=ReplayConfig(slots=4, replay=1))
    frames = ds.stream_frames(flights(), r)
    x, t, m = ds.decode(ds.encode(frames, r), (1, 48, 64))
    res = api.plan(g, None, "last-layer", loss=loss, optimizer=opt, batch=4)
    sim = Simulator(g, res.plan)
    losses = ds.adapt(sim, x, t, m, r.replay)
    assert len(losses) == (2 * len(x)) // 4 == sim.steps
    assert not np.array_equal(sim.numpy_params()["head.bias"], g.params["head.bias"])
