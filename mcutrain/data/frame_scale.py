"""How a uint8 camera frame becomes the depth network's input: ``value = raw * scale + offset`` with one
float32 ``scale`` and ``offset`` per frame, the form the link's uint8 blocks carry and the firmware
applies. Plain: ``raw / 255``. Standardized: the frame's mean goes to ``TARGET_MEAN`` and its standard
deviation (plus ``STD_FLOOR`` grey levels, so that a flat frame is not blown up) to ``TARGET_STD``; the
real flights' exposure differs from flight to flight (mean grey level 43 to 149), the synthetic
scenes' too."""

from __future__ import annotations

import numpy as np

TARGET_MEAN = 0.5
TARGET_STD = 0.2
STD_FLOOR = 5.0


def input_scale(image: np.ndarray, standardize: bool) -> tuple[float, float]:
    """The float32 ``(scale, offset)`` of one uint8 frame."""
    if not standardize:
        return float(np.float32(1.0 / 255.0)), 0.0
    a = image.astype(np.float64)
    scale = TARGET_STD / (a.std() + STD_FLOOR)
    return float(np.float32(scale)), float(np.float32(TARGET_MEAN - a.mean() * scale))


def network_input(images: np.ndarray, standardize: bool) -> np.ndarray:
    """Frames ``[N, H, W]`` uint8 -> ``[N, 1, H, W]`` float32, exactly as the device computes them."""
    out = np.empty((len(images), 1, *images.shape[1:]), np.float32)
    for i, im in enumerate(images):
        s, o = input_scale(im, standardize)
        out[i, 0] = im.astype(np.float32) * np.float32(s) + np.float32(o)
    return out
