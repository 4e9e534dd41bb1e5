"""The host's mirror of the link firmware's running mean of the targets and of INFER BLEND
(firmware/link/mt_link_blend.c; docs/depth.md, "The blend on the device").

The device updates each target element's mean in place, ``mean += (t - mean) / count``, once per
trained-on sample (SAMPLE with TRAIN or REPLAY, not per replayed step), for its valid and finite
elements, in float32 and in the order the samples arrived; the same float32 operations here give the
same means bit for bit. The blend ``A * prediction + (1 - A) * mean`` is then one float32 expression per
element (the prediction alone where no valid target was seen).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


class RunningMean:
    """Per target element: the float32 mean and the count of the valid targets seen so far."""

    def __init__(self, numel: int) -> None:
        self.mean = np.zeros(numel, F32)
        self.count = np.zeros(numel, np.uint32)

    def observe(self, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count one sample's valid elements: ``mask`` != 0 (None: all) and finite."""
        t = np.asarray(target, F32).ravel()
        valid = np.isfinite(t) if mask is None else (np.asarray(mask, F32).ravel() != 0) & np.isfinite(t)
        d = t[valid] - self.mean[valid]  # float32 throughout, one rounding per operation as in the C
        self.count[valid] += 1
        self.mean[valid] += d / self.count[valid].astype(F32)

    def blend(self, pred: np.ndarray, a: float) -> np.ndarray:
        """``a * pred + (1 - a) * mean`` in float32 where a target was seen, else ``pred``; ``pred``: one
        prediction in the targets' space, or a batch of them (leading axes)."""
        p = np.asarray(pred, F32)
        return np.where(self.count > 0, F32(a) * p + (F32(1) - F32(a)) * self.mean, p)
