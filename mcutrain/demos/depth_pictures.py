"""Pictures of predicted depth on real frames: camera, the valid ToF zones on their footprint, and the
prediction of each model given (for docs/depth.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcutrain.data.drone import DroneBatch
from mcutrain.data.flight_split import FLIGHT_TYPES, flight_type
from mcutrain.demos.depth_baselines import DepthFn

VMAX_M = 4.0  # the colour scale's far end: the ToF's range


def pick_frames(b: DroneBatch, per_type: int = 2, seed: int = 0) -> np.ndarray:
    """``per_type`` frames with at least 16 valid zones of each flight type, from as many different
    flights as there are (spread over the sorted flight names); seeded."""
    rng = np.random.default_rng(seed)
    types = np.array([flight_type(f) for f in b.flight])
    rich = b.tof_valid.reshape(len(b), -1).sum(axis=1) >= 16
    out: list[int] = []
    for t in FLIGHT_TYPES.values():
        names = sorted({str(f) for f in b.flight[(types == t) & rich]})
        for k in range(per_type if names else 0):
            name = names[(k * len(names)) // per_type] if len(names) >= per_type else names[k % len(names)]
            idx = np.setdiff1d(np.flatnonzero((b.flight == name) & rich), out)
            if len(idx):
                out.append(int(rng.choice(idx)))
    return np.array(out, dtype=np.int64)


def zone_map(b: DroneBatch, i: int) -> np.ndarray:
    """Frame ``i``'s valid zone distances painted over their footprint (NaN elsewhere), metres."""
    fp = b.footprint
    out = np.full(b.image.shape[1:], np.nan, np.float32)
    z = np.where(b.tof_valid[i], b.tof_mm[i] / 1000.0, np.nan)
    out[fp.top : fp.top + fp.height, fp.left : fp.left + fp.width] = np.repeat(
        np.repeat(z, fp.zone_h, axis=0), fp.zone_w, axis=1
    )
    return out


def before_after(path: Path, b: DroneBatch, models: dict[str, DepthFn], per_type: int = 2) -> None:
    """A grid: one row per picked frame; camera, ToF zones, then each model's depth (0 to 4 m)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = pick_frames(b, per_type)
    preds = {name: f(b.image[idx]) for name, f in models.items()}
    cols = 2 + len(models)
    fig, axes = plt.subplots(
        len(idx),
        cols,
        figsize=(1.45 * cols + 0.8, 1.12 * len(idx) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for r, i in enumerate(idx):
        panels = [(b.image[i], "camera"), (zone_map(b, i), "ToF zones")]
        panels += [(p[r], name) for name, p in preds.items()]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            if c == 0:
                ax.imshow(img, cmap="gray", vmin=0, vmax=255)
                ax.set_ylabel(f"{b.flight[i]} ({flight_type(str(b.flight[i]))})", fontsize=7)
            else:
                im = ax.imshow(img, cmap="viridis", vmin=0, vmax=VMAX_M)
                fp = b.footprint
                ax.add_patch(
                    matplotlib.patches.Rectangle(
                        (fp.left - 0.5, fp.top - 0.5), fp.width, fp.height, fill=False, ec="w", lw=0.6
                    )
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6, label="depth (m)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
