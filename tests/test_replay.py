"""The replay reservoir's exact semantics (mcutrain.demos.replay), which the link firmware's C mirrors."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.demos.replay import ReplayConfig, Reservoir, sample_bytes, schedule, xorshift32


def test_xorshift32_known_values() -> None:
    # by hand: 1 -> 1 ^ (1 << 13) = 8193 -> (>> 17 adds nothing) -> 8193 ^ (8193 << 5) = 270369
    assert xorshift32(1) == 270369
    x, seq = 0x2545F491, []
    for _ in range(1000):
        x = xorshift32(x)
        seq.append(x)
    assert all(0 < v <= 0xFFFFFFFF for v in seq) and len(set(seq)) == 1000


def test_reservoir_fills_slots_in_order_then_replaces_uniformly() -> None:
    res = Reservoir(ReplayConfig(slots=4))
    assert [res.offer(i) for i in range(4)] == [0, 1, 2, 3]
    assert res.slot == [0, 1, 2, 3] and res.state == ReplayConfig().seed  # no draw while filling
    # algorithm R: after n offers every sample is kept with probability slots / n
    n, k, counts = 40, 8, np.zeros(40)
    for seed in range(1, 2001):
        r = Reservoir(ReplayConfig(slots=k, seed=seed))
        for i in range(n):
            r.offer(i)
        counts[r.slot] += 1
    assert np.allclose(counts / 2000, k / n, atol=0.05)


def test_schedule_is_causal_and_has_the_configured_mix() -> None:
    cfg = ReplayConfig(slots=8, replay=3)
    steps = schedule(50, cfg)
    assert len(steps) == 50 * 4
    for i in range(50):
        new, *replayed = steps[4 * i : 4 * i + 4]
        assert new == i and all(0 <= j <= i for j in replayed)  # never a sample not yet streamed
    assert schedule(5, None) == [0, 1, 2, 3, 4]
    assert schedule(50, cfg) == steps  # deterministic
    assert schedule(50, ReplayConfig(slots=8, replay=3, seed=7)) != steps
    assert len(schedule(10, ReplayConfig(slots=4, replay=2, train_new=False))) == 20


def test_config_checks_and_bytes() -> None:
    with pytest.raises(ValueError):
        ReplayConfig(seed=0)
    with pytest.raises(ValueError):
        ReplayConfig(replay=0, train_new=False)
    one = sample_bytes(48 * 64, 64)
    assert one == 3072 + 128 + 8 + 16  # image, zones, bits, both blocks' scale and offset
    assert ReplayConfig(slots=64).bytes_for(one) == 64 * 3224 + 12
