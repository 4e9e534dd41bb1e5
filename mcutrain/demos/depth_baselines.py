"""Honest yardsticks for depth on the real drone flights: what a network must beat to show that it
reads depth from the image (issue #14).

All scores are zone RMSE in metres over the valid ToF zones of the held-out frames, pooled per flight
type (approach, object, rotate) and over all of them; a prediction enters as the dense map's mean over
each zone's footprint, exactly as the zone loss pools it on the device.

* ``pretrained``: the network before any adaptation;
* ``zone_mean``: each of the 64 zones predicts its mean distance over the valid training zones (no
  image at all);
* ``scale_shift``: the pre-trained zone predictions mapped by ``a * z + b``, with ``a`` and ``b`` the
  least-squares fit on the valid training zones (the pre-trained network, calibrated to the rig's range);
* ``blanked``: a network evaluated on blank frames (every pixel the training frames' mean level), so
  that its output depends on the position of each zone only, never on the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from mcutrain.core import ir, semantics
from mcutrain.data.drone import DroneBatch
from mcutrain.data.flight_split import FLIGHT_TYPES, flight_type
from mcutrain.data.frame_scale import network_input
from mcutrain.zoo.depth import MAX_DEPTH_M

#: Images uint8 ``[N, H, W]`` -> depth in metres ``[N, H, W]``.
DepthFn = Callable[[np.ndarray], np.ndarray]
GROUPS = (*FLIGHT_TYPES.values(), "all")


def graph_depth(graph: ir.Graph, standardize: bool = False, batch_size: int = 256) -> DepthFn:
    """The float32 forward pass of ``graph`` as a :data:`DepthFn`, frames scaled as
    :func:`mcutrain.data.frame_scale.network_input` does (``standardize``: per-frame standardization)."""

    def run(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(network_input(images[i : i + batch_size], standardize))
            with torch.no_grad():
                out.append(semantics.forward(graph, x)[:, 0].numpy() * MAX_DEPTH_M)
        return np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.float32)

    return run


def zone_predictions(depth: DepthFn, b: DroneBatch) -> np.ndarray:
    """Each frame's dense prediction pooled over the ToF footprint: ``[N, 8, 8]`` metres."""
    return b.footprint.zone_means(depth(b.image))


def truth_m(b: DroneBatch) -> np.ndarray:
    return b.tof_mm.astype(np.float64) / 1000.0


def zone_rmse(zones: np.ndarray, b: DroneBatch) -> dict[str, float | None]:
    """RMSE over the valid zones per flight type and over all (``None`` where a type has no frame)."""
    err2 = (np.asarray(zones, np.float64) - truth_m(b)) ** 2
    types = np.array([flight_type(f) for f in b.flight])
    out: dict[str, float | None] = {}
    for g in GROUPS:
        v = b.tof_valid & (types == g)[:, None, None] if g != "all" else b.tof_valid
        out[g] = float(np.sqrt(err2[v].mean())) if v.any() else None
    return out


def zone_mean(train: DroneBatch) -> np.ndarray:
    """The mean valid distance of each zone over the training frames ``[8, 8]`` (zones never valid: the
    mean over all valid zones)."""
    v = train.tof_valid
    d = np.where(v, truth_m(train), 0.0)
    n = v.sum(axis=0)
    overall = d.sum() / max(1, v.sum())
    return np.where(n > 0, d.sum(axis=0) / np.maximum(n, 1), overall)


def fit_scale_shift(pred: np.ndarray, train: DroneBatch) -> tuple[float, float]:
    """Least-squares ``(a, b)`` with ``a * pred + b`` closest to the valid training zones."""
    v = train.tof_valid
    a, b = np.polyfit(np.asarray(pred, np.float64)[v], truth_m(train)[v], 1)
    return float(a), float(b)


def blank_level(train: DroneBatch) -> int:
    """The grey level of a blank frame: the training frames' mean pixel, rounded."""
    return int(np.rint(train.image.mean()))


def blanked(b: DroneBatch, level: int) -> DroneBatch:
    """``b`` with every pixel of every frame set to ``level``: labels and footprint unchanged."""
    return replace(b, image=np.full_like(b.image, level))


def baselines(pretrained: DepthFn, train: DroneBatch, test: DroneBatch) -> dict[str, dict[str, float | None]]:
    """The image-free and calibration yardsticks on ``test``, fitted on ``train`` (module docstring);
    ``blanked`` needs a trained network and is measured by the caller with :func:`blanked`."""
    p_test = zone_predictions(pretrained, test)
    a, b = fit_scale_shift(zone_predictions(pretrained, train), train)
    return {
        "pretrained": zone_rmse(p_test, test),
        "zone_mean": zone_rmse(np.broadcast_to(zone_mean(train), test.tof_mm.shape), test),
        "scale_shift": zone_rmse(a * p_test + b, test),
    }


def format_table(rows: dict[str, dict[str, float | None]]) -> str:
    """A Markdown table: one row per model, one column per flight type."""
    head = "| model | " + " | ".join(GROUPS) + " |"
    lines = [head, "|---" * (len(GROUPS) + 1) + "|"]
    for name, r in rows.items():
        cells = [f"{r[g]:.3f}" if r.get(g) is not None else "-" for g in GROUPS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
