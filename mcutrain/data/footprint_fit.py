"""Calibrate where the 8x8 ToF zones fall in the camera image, from the recordings themselves.

Where two neighbouring zones read very different distances (an object's edge against the background),
the camera image should show an edge on the line between them; where they read the same distance, it
usually shows none. For a candidate footprint (zone size in pixels, top, left) the **edge score** is

    mean |image gradient| across zone borders whose two zones differ by more than ``jump_m``
    / mean |image gradient| across borders whose zones differ by less than ``flat_m``

computed for vertical borders (horizontal gradient) and horizontal borders (vertical gradient)
separately and summed; only pairs of valid zones count. The footprint that maximizes it is the one
whose zone borders line up with the image's depth edges. :func:`fit_footprint` searches every
placement of 3, 4 and 5-pixel zones in the 48x64 network input (the zone loss needs whole pixels).

On the 15 training flights of ``datasets/tof_drone_flights.toml`` (``benchmarks/depth_footprint.py``)
the best footprint has 4x4-pixel zones at rows 12-43, columns 22-53: a camera field of view of
79.3 deg, with the ToF centred 4 pixels below and 6 to the right of the image centre, where the
assumed 87 deg and a centred footprint gave 3x3-pixel zones at rows 12-35, columns 20-43.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mcutrain.data.scenes import SceneBatch
from mcutrain.data.tof import Footprint


@dataclass(frozen=True)
class FootprintScore:
    footprint: Footprint
    score: float  # vertical + horizontal border ratio
    vertical: float  # across vertical zone borders (left-right neighbours)
    horizontal: float  # across horizontal zone borders (top-bottom neighbours)


def _ratio(grad: np.ndarray, d: np.ndarray, valid: np.ndarray, jump_m: float, flat_m: float) -> float:
    """``grad``, ``d``, ``valid``: [N, pairs] border gradient, distance difference, both zones valid."""
    jump = valid & (d > jump_m)
    flat = valid & (d < flat_m)
    if not jump.any() or not flat.any():
        return 0.0
    return float(grad[jump].mean() / max(grad[flat].mean(), 1e-6))


def edge_score(b: SceneBatch, fp: Footprint, jump_m: float = 0.4, flat_m: float = 0.05) -> FootprintScore:
    """The edge score of footprint ``fp`` on the frames of ``b`` (module docstring)."""
    img = b.image.astype(np.float32)
    z, zs = fp.zones, fp.zone_h
    dist = b.tof_mm.astype(np.float32) / 1000.0
    v = b.tof_valid
    rows = img[:, fp.top : fp.top + z * zs]  # the footprint's rows
    # vertical borders: between columns x - 1 and x, x = left + (j + 1) * zs, averaged over each zone's rows
    xs = fp.left + (np.arange(z - 1) + 1) * zs
    gx = np.abs(rows[:, :, xs] - rows[:, :, xs - 1]).reshape(len(img), z, zs, z - 1).mean(axis=2)
    cols = img[:, :, fp.left : fp.left + z * zs]
    ys = fp.top + (np.arange(z - 1) + 1) * zs
    gy = np.abs(cols[:, ys] - cols[:, ys - 1]).reshape(len(img), z - 1, z, zs).mean(axis=3)
    vert = _ratio(gx, np.abs(np.diff(dist, axis=2)), v[:, :, 1:] & v[:, :, :-1], jump_m, flat_m)
    horiz = _ratio(gy, np.abs(np.diff(dist, axis=1)), v[:, 1:] & v[:, :-1], jump_m, flat_m)
    return FootprintScore(fp, vert + horiz, vert, horiz)


def candidates(
    size: tuple[int, int], zone_px: tuple[int, ...] = (3, 4, 5), zones: int = 8
) -> list[Footprint]:
    """Every placement of square zones of ``zone_px`` pixels that fits an ``H x W`` image."""
    h, w = size
    return [
        Footprint(top, left, zs, zs, zones)
        for zs in zone_px
        for top in range(0, h - zones * zs + 1)
        for left in range(0, w - zones * zs + 1)
    ]


def fit_footprint(b: SceneBatch, zone_px: tuple[int, ...] = (3, 4, 5)) -> list[FootprintScore]:
    """All candidate footprints scored on ``b``, best first."""
    size = (int(b.image.shape[1]), int(b.image.shape[2]))
    scores = [edge_score(b, fp) for fp in candidates(size, zone_px, b.footprint.zones)]
    return sorted(scores, key=lambda s: -s.score)


def with_footprint(b: SceneBatch, fp: Footprint) -> SceneBatch:
    """``b`` (any :class:`SceneBatch`, e.g. a ``DroneBatch``) with its zones mapped to ``fp``."""
    return replace(b, footprint=fp)
