"""Baselines of the real-flight depth case (mcutrain.demos.depth_baselines), the split manifest and the
footprint fit, on small made-up batches with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.data.drone import DroneBatch
from mcutrain.data.flight_split import FlightSplit, flight_type
from mcutrain.data.footprint_fit import edge_score, fit_footprint
from mcutrain.data.tof import Footprint
from mcutrain.demos.depth_baselines import (
    baselines,
    blank_level,
    blanked,
    fit_scale_shift,
    zone_mean,
    zone_rmse,
)

FP = Footprint(12, 22, 4, 4)


def batch(
    mm: np.ndarray, valid: np.ndarray, flights: list[str], image: np.ndarray | None = None
) -> DroneBatch:
    n = len(mm)
    img = image if image is not None else np.full((n, 48, 64), 100, np.uint8)
    return DroneBatch(
        image=img,
        depth=None,  # type: ignore[arg-type]
        tof_mm=mm.astype(np.int16),
        tof_status=np.full((n, 8, 8), 5, np.uint8),
        tof_valid=valid,
        footprint=FP,
        flight=np.array(flights),
        t_ms=np.arange(n),
        tof_t_ms=np.arange(n),
    )


def test_split_manifest_is_disjoint_and_covers_every_type() -> None:
    s = FlightSplit.load()
    assert not set(s.train) & set(s.test)
    assert set(s.fit) | set(s.val) <= set(s.train) and not set(s.fit) & set(s.val)
    for side in (s.train, s.test):
        assert {flight_type(f) for f in side} == {"approach", "object", "rotate"}
    with pytest.raises(ValueError):
        flight_type("X3")


def test_zone_mean_scale_shift_and_rmse_per_type() -> None:
    rng = np.random.default_rng(0)
    mm = rng.integers(300, 3000, (6, 8, 8))
    valid = rng.random((6, 8, 8)) < 0.7
    train = batch(mm, valid, ["A0", "A0", "O2", "O2", "R0", "R0"])
    zm = zone_mean(train)
    i, j = 3, 5
    assert zm[i, j] == pytest.approx(mm[valid[:, i, j], i, j].mean() / 1000)
    pred = (mm / 1000 - 0.3) / 2.0  # an affine distortion of the truth
    a, b = fit_scale_shift(pred, train)
    assert (a, b) == pytest.approx((2.0, 0.3), abs=1e-9)
    err = zone_rmse(mm / 1000 + np.where(np.arange(6) < 2, 0.5, 0.0)[:, None, None], train)
    assert err["approach"] == pytest.approx(0.5) and err["object"] == 0 and err["rotate"] == 0
    assert err["all"] == pytest.approx(np.sqrt(0.25 * valid[:2].sum() / valid.sum()))
    only_o = batch(mm[2:4], valid[2:4], ["O1", "O1"])
    assert zone_rmse(mm[2:4] / 1000, only_o)["approach"] is None


def test_baselines_and_blanked_frames() -> None:
    rng = np.random.default_rng(1)
    mm = rng.integers(300, 3000, (4, 8, 8))
    valid = np.ones((4, 8, 8), bool)
    img = rng.integers(0, 256, (4, 48, 64)).astype(np.uint8)
    train, test = batch(mm, valid, ["A0"] * 4, img), batch(mm[::-1], valid, ["O1"] * 4, img[::-1].copy())
    truth = {i.tobytes(): d / 1000 for i, d in zip(img, mm, strict=True)}

    def exact(images: np.ndarray) -> np.ndarray:  # a depth function that knows each frame's zones
        return np.stack([np.repeat(np.repeat(truth[i.tobytes()], 4, 0), 4, 1) for i in images]).reshape(
            len(images), 32, 32
        )

    def dense(images: np.ndarray) -> np.ndarray:
        out = np.zeros((len(images), 48, 64))
        out[:, 12:44, 22:54] = exact(images)
        return out

    rows = baselines(dense, train, test)
    assert rows["pretrained"]["all"] == pytest.approx(0, abs=1e-6)
    assert rows["scale_shift"]["all"] == pytest.approx(0, abs=1e-6)
    assert rows["zone_mean"]["all"] > 0.3
    level = blank_level(train)
    b = blanked(test, level)
    assert (b.image == level).all() and (b.tof_mm == test.tof_mm).all() and b.footprint == FP


def test_footprint_fit_finds_the_zones_behind_the_edges() -> None:
    """Frames whose brightness steps exactly where the zone distances step: the fit must find FP."""
    rng = np.random.default_rng(2)
    n = 60
    mm = np.repeat(rng.choice([500, 2500], (n, 8, 1)), 8, axis=2)  # columns of zones ...
    mm = np.where(rng.random((n, 1, 8)) < 0.5, mm, mm.transpose(0, 2, 1))  # ... or rows
    img = np.full((n, 48, 64), 60.0) + rng.normal(0, 3, (n, 48, 64))
    img[:, 12:44, 22:54] += np.repeat(np.repeat(mm / 20.0, 4, 1), 4, 2)
    b = batch(mm, np.ones((n, 8, 8), bool), ["O0"] * n, np.clip(img, 0, 255).astype(np.uint8))
    best = fit_footprint(b, zone_px=(3, 4))
    assert best[0].footprint == FP
    assert edge_score(b, FP).score > 2 * edge_score(b, Footprint(12, 20, 3, 3)).score
