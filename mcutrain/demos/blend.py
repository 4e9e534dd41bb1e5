"""The host's mirror of the link firmware's running mean of the targets and of INFER BLEND
(firmware/link/mt_link_blend.c; docs/depth.md, "The blend on the device").

The device adds each trained-on sample's valid targets to float32 sums in the order the samples arrived
(once per SAMPLE with TRAIN or REPLAY, not per replayed step), so the same float32 additions here give
the same sums bit for bit; the blend ``A * prediction + (1 - A) * sum / count`` is then one float32
expression per target element (the prediction alone where no valid target was seen).
"""

from __future__ import annotations

import numpy as np


class RunningMean:
    """Per target element: the float32 sum and the count of the valid targets seen so far."""

    def __init__(self, numel: int) -> None:
        self.sum = np.zeros(numel, np.float32)
        self.count = np.zeros(numel, np.uint32)

    def observe(self, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count one sample's valid elements: ``mask`` != 0 (None: all) and finite."""
        t = np.asarray(target, np.float32).ravel()
        valid = (
            np.isfinite(t) if mask is None else (np.asarray(mask, np.float32).ravel() != 0) & np.isfinite(t)
        )
        self.sum[valid] = (self.sum[valid] + t[valid]).astype(np.float32)
        self.count[valid] += 1

    def mean(self) -> np.ndarray:
        """The running mean (NaN where nothing was seen)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.sum / self.count.astype(np.float32)
        return np.where(self.count > 0, m, np.nan).astype(np.float32)

    def blend(self, pred: np.ndarray, a: float) -> np.ndarray:
        """``a * pred + (1 - a) * mean`` in float32 where a target was seen, else ``pred``; ``pred``: one
        prediction in the targets' space, or a batch of them (leading axes)."""
        p = np.asarray(pred, np.float32)
        a32 = np.float32(a)
        rest = np.float32(1.0) - a32
        out = (a32 * p).astype(np.float32) + (rest * np.nan_to_num(self.mean())).astype(np.float32)
        return np.where(self.count > 0, out.astype(np.float32), p)
