"""The CIFAR-10 subset of the shared data (1,000 real test images) and two input shifts to adapt to.

Images come back as the MLPerf Tiny ResNet-8 takes them: float32 ``[N, 3, 32, 32]`` (channels first,
mcutrain's IR layout for the TFLite model's NHWC ``(1, 32, 32, 3)`` input), raw pixel values 0..255.

* ``clean``: the images as stored;
* ``grayscale``: ITU-R BT.709 luma ``0.2126 R + 0.7152 G + 0.0722 B`` rounded half up to an integer (an
  8-bit gray image), replicated to the 3 channels;
* ``noise``: additive Gaussian sensor noise (sigma 25 in pixel units, ``numpy.random.default_rng(seed)``
  drawn over the whole file in NHWC order), clipped to 0..255.

Constants live in ``datasets/cifar10_shift.toml``. :meth:`CifarImages.split` is the adapt/test protocol:
a seeded stratified half per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain.data.shared import read_manifest, shared_path

MANIFEST = "cifar10_shift"
SHIFTS = ("clean", "grayscale", "noise")


class CifarError(ValueError):
    """A bad source file, shift name or split parameter; the message says which."""


@dataclass(frozen=True)
class CifarShiftConfig:
    gray_weights: tuple[float, float, float]
    gray_round: bool
    noise_sigma: float
    noise_seed: int
    split_fraction: float
    split_seed: int

    @staticmethod
    def from_manifest(manifest: Mapping[str, Any] | None = None) -> CifarShiftConfig:
        m = manifest if manifest is not None else read_manifest(MANIFEST)
        g, n, s = m["shifts"]["grayscale"], m["shifts"]["noise"], m["splits"]
        w = tuple(float(v) for v in g["weights"])
        if len(w) != 3:
            raise CifarError(f"manifest shifts.grayscale.weights needs 3 values (R, G, B), got {w}")
        return CifarShiftConfig(
            (w[0], w[1], w[2]), bool(g["round"]), float(n["sigma"]), int(n["seed"]), float(s["fraction"]),
            int(s["seed"]),
        )  # fmt: skip


@dataclass(frozen=True)
class CifarImages:
    x: np.ndarray  # float32 [N, 3, 32, 32], 0..255
    y: np.ndarray  # int64 [N]
    index: np.ndarray  # int64 [N]: row in the source file
    classes: tuple[str, ...]
    shift: str

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray | slice) -> CifarImages:
        return CifarImages(self.x[idx], self.y[idx], self.index[idx], self.classes, self.shift)

    def one_hot(self) -> np.ndarray:
        return np.eye(len(self.classes), dtype=np.float32)[self.y]

    def split(
        self, fraction: float | None = None, seed: int | None = None
    ) -> tuple[CifarImages, CifarImages]:
        """(adapt, test): see :func:`adapt_test_split` (defaults from the manifest)."""
        cfg = CifarShiftConfig.from_manifest()
        a, t = adapt_test_split(
            self.y,
            cfg.split_fraction if fraction is None else fraction,
            cfg.split_seed if seed is None else seed,
        )
        return self.take(a), self.take(t)


def read(source: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The raw file: ``x`` uint8 [N, 32, 32, 3] (NHWC), ``y`` int64 [N], class names."""
    path = Path(source) if source is not None else shared_path(read_manifest(MANIFEST)["source"])
    try:
        with np.load(path) as d:
            x, y = d["x"], d["y"].astype(np.int64)
            classes = (
                tuple(str(c) for c in d["classes"])
                if "classes" in d
                else tuple(read_manifest(MANIFEST)["classes"])
            )
    except (OSError, KeyError, ValueError) as e:
        raise CifarError(f"cannot read CIFAR images {path}: {e} (expected an .npz with x and y)") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or len(y) != len(x):
        raise CifarError(
            f"{path}: x must be uint8 [N, H, W, 3] with one label per image, got {x.dtype} {x.shape}"
        )
    return x, y, classes


def grayscale(
    x: np.ndarray, weights: tuple[float, float, float] = (0.2126, 0.7152, 0.0722), rnd: bool = True
) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NHWC gray replicated to 3 channels. With ``rnd`` the luma is rounded half
    up in exact integer arithmetic (weights in units of 1e-4), so that ties do not depend on float order."""
    if rnd:
        w = np.round(np.asarray(weights) * 10_000).astype(np.int64)
        lum = (x.astype(np.int64) @ w + 5_000) // 10_000
    else:
        lum = x.astype(np.float64) @ np.asarray(weights, dtype=np.float64)
    return np.repeat(lum[..., None], 3, axis=-1).astype(np.float32)


def gaussian_noise(x: np.ndarray, sigma: float = 25.0, seed: int = 0) -> np.ndarray:
    """NHWC pixels plus N(0, sigma^2) noise from ``default_rng(seed)``, clipped to 0..255, float32."""
    rng = np.random.default_rng(seed)
    return np.clip(x.astype(np.float64) + rng.normal(0.0, sigma, x.shape), 0.0, 255.0).astype(np.float32)


def load(
    source: str | Path | None = None,
    shift: str = "clean",
    sigma: float | None = None,
    seed: int | None = None,
    config: CifarShiftConfig | None = None,
) -> CifarImages:
    """All images of ``source`` (default: the shared data file) under ``shift``, channels first.
    ``sigma`` and ``seed`` override the noise shift's manifest values."""
    if shift not in SHIFTS:
        raise CifarError(f"unknown shift {shift!r}: choose one of {', '.join(SHIFTS)}")
    cfg = config or CifarShiftConfig.from_manifest()
    x, y, classes = read(source)
    if shift == "grayscale":
        xs = grayscale(x, cfg.gray_weights, cfg.gray_round)
    elif shift == "noise":
        xs = gaussian_noise(
            x, cfg.noise_sigma if sigma is None else sigma, cfg.noise_seed if seed is None else seed
        )
    else:
        xs = x.astype(np.float32)
    return CifarImages(
        np.ascontiguousarray(xs.transpose(0, 3, 1, 2)), y, np.arange(len(y), dtype=np.int64), classes, shift
    )


def adapt_test_split(y: np.ndarray, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices: per class (ascending), a ``default_rng(seed)`` permutation of its
    indices; the first ``round(fraction * count)`` adapt, the rest test. Adapt indices are returned in one
    further seeded random order (a stream mixing the classes), test indices ascending."""
    if not 0.0 < fraction < 1.0:
        raise CifarError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    adapt, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = round(fraction * len(idx))
        adapt.append(idx[:k])
        test.append(idx[k:])
    a = np.concatenate(adapt)
    return rng.permutation(a).astype(np.int64), np.sort(np.concatenate(test)).astype(np.int64)
