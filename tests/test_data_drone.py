"""The real drone flights reader (mcutrain.data.drone); skipped without ../shared/data."""

from __future__ import annotations

import numpy as np
import pytest

from mcutrain.data import drone
from mcutrain.data.shared import SharedDataMissing


def _root():
    try:
        return drone.flights_dir()
    except SharedDataMissing as e:
        pytest.skip(f"no shared data folder with tof_drone_flights: {e}")


def test_match_nearest_within_limit() -> None:
    tof = np.array([100, 100, 166, 233, 400], np.int64)
    idx = drone.match(np.array([100, 130, 170, 300, 500, 1000]), tof)
    assert idx.tolist() == [0, 0, 2, 3, -1, -1]  # first on ties; 500-400 and 1000 are > 67 ms away


def test_zone_validity_rule() -> None:
    nt = np.array([1, 1, 1, 0, 2, 1, 1])
    st = np.array([5, 9, 4, 5, 5, 255, 10])
    assert drone.zone_valid(nt, st).tolist() == [True, True, False, False, False, False, False]


def test_preprocess_area_resize() -> None:
    img = np.zeros((244, 324), np.uint8)
    img[2:7, 2:7] = 250  # exactly the first 5x5 block of the centre crop
    out = drone.preprocess(img)
    assert out.shape == (48, 64) and out.dtype == np.uint8
    assert out[0, 0] == 250 and out.sum() == 250


def test_reader_one_flight() -> None:
    root = _root()
    assert "O0" in drone.list_flights(root)
    b = drone.load_flight("O0")
    n = len(b)
    assert n > 100 and b.depth is None
    assert b.image.shape == (n, 48, 64) and b.image.dtype == np.uint8
    assert b.tof_mm.shape == (n, 8, 8) and b.tof_mm.dtype == np.int16
    assert b.tof_valid.shape == (n, 8, 8) and b.tof_valid.dtype == bool
    assert np.all(np.abs(b.t_ms - b.tof_t_ms) <= drone.MAX_DT_MS)
    assert np.mean(b.t_ms == b.tof_t_ms) > 0.5  # most have a ToF frame with the same timestamp
    assert np.all(np.diff(b.t_ms) > 0)
    # the validity rule against the raw CSV of the first matched frame
    t, mm, nt, st = drone.read_tof(root / "O0" / "state_ToF.csv")
    j = int(np.argmin(np.abs(t - b.t_ms[0])))
    assert np.array_equal(b.tof_valid[0], (nt[j] == 1) & ((st[j] == 5) | (st[j] == 9)))
    assert np.array_equal(b.tof_mm[0], mm[j])
    assert 0.05 < b.tof_valid.mean() < 0.95
    f = b.footprint
    assert f.top >= 0 and f.left >= 0 and f.top + f.height <= 48 and f.left + f.width <= 64
    assert f.zone_means(b.image.astype(np.float32)).shape == (n, 8, 8)


def test_reader_several_flights_and_order() -> None:
    _root()
    a, c = drone.load_flight("O2"), drone.load_flight("O5")
    b = drone.load_flights("O2,O5")
    assert len(b) == len(a) + len(c) and list(np.unique(b.flight)) == ["O2", "O5"]
    assert np.array_equal(b.image[: len(a)], a.image)
    lab = b.labelled()
    assert lab.tof_valid.reshape(len(lab), -1).any(axis=1).all()
    s = drone.stream_order(lab, "shuffle", 0)
    assert sorted(s.t_ms.tolist()) == sorted(lab.t_ms.tolist())
    with pytest.raises(FileNotFoundError):
        drone.load_flight("nope")
