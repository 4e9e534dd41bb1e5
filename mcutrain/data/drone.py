"""Real nano-drone flights: grayscale camera frames + VL53L5CX 8x8 ToF (``tof_drone_flights``).

``load_flights("O0,O1")`` reads ``<shared data>/datasets/tof_drone_flights/<flight>/`` (see
:mod:`mcutrain.data.shared`: ``$MCUTRAIN_SHARED_DATA`` or ``<repo>/../shared/data``; or pass ``root``)
and returns a :class:`DroneBatch`, a :class:`~mcutrain.data.scenes.SceneBatch` with ``depth=None`` (no
dense ground truth: only the ToF zones measure depth).

* **Matching.** Every ``images/<t>.jpeg`` gets the ToF frame of ``state_ToF.csv`` whose timestamp is
  nearest to ``t`` (the first one on ties, e.g. repeated timestamps); frames without one within
  ``max_dt_ms`` (67 ms, one ToF period at 15 Hz) are dropped.
* **Zone validity** (the dataset's rule, ST's convention): ``n_targets == 1`` and status 5 or 9.
* **Image.** The 324x244 frame is centre-cropped to 320x240 (2 px off each side: exactly 4:3) and
  area-resized by 5x5 block means to 64x48, the network's input; uint8.
* **Footprint** (calibration parameter): camera and ToF on one optical axis, the ToF's 45 deg square
  field inside the camera's horizontal field of view ``cam_hfov_deg``. Default 87 deg: our assumption
  for the AI-deck's Himax HM01B0 module (a wide lens; not calibrated on these recordings). Through
  :func:`mcutrain.data.tof.footprint` this gives 3x3-pixel zones, a 24x24 rectangle at rows 12..35,
  columns 20..43 of the 48x64 image. Zones are taken row-major as stored, row 0 at the top of the image
  (the floor reads in the bottom rows), no left-right mirroring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcutrain.data.scenes import SceneBatch
from mcutrain.data.shared import shared_path
from mcutrain.data.tof import VALID_STATUS, Footprint, footprint

DATASET = "tof_drone_flights"
SIZE = (48, 64)
CROP = (240, 320)  # centre crop of the 244x324 frame, exactly 4:3 and 5x the network input
MAX_DT_MS = 67
#: Assumed horizontal field of view of the AI-deck camera (Himax HM01B0 + its stock lens).
CAM_HFOV_DEG = 87.0
TOF_FOV_DEG = 45.0


@dataclass(frozen=True)
class DroneBatch(SceneBatch):
    """A :class:`SceneBatch` of real frames (``depth`` is ``None``) plus where each frame comes from:
    ``flight`` (name per frame), ``t_ms`` (image timestamp) and ``tof_t_ms`` (matched ToF timestamp)."""

    flight: np.ndarray | None = None
    t_ms: np.ndarray | None = None
    tof_t_ms: np.ndarray | None = None

    def select(self, idx: np.ndarray | slice) -> DroneBatch:
        """The frames ``idx`` (indices, a boolean mask or a slice), in that order."""
        keys = ("image", "tof_mm", "tof_status", "tof_valid", "flight", "t_ms", "tof_t_ms")
        return DroneBatch(
            depth=None,  # type: ignore[arg-type]
            footprint=self.footprint,
            domain=self.domain,
            **{k: getattr(self, k)[idx] for k in keys},
        )

    def labelled(self) -> DroneBatch:
        """The frames with at least one valid zone (the others carry no label)."""
        return self.select(self.tof_valid.reshape(len(self), -1).any(axis=1))


def flights_dir(root: str | Path | None = None) -> Path:
    """The folder of the flights: ``root``, else the shared data folder's ``datasets/tof_drone_flights``."""
    return Path(root) if root is not None else shared_path("datasets", DATASET)


def list_flights(root: str | Path | None = None) -> list[str]:
    d = flights_dir(root)
    return sorted(p.name for p in d.iterdir() if (p / "state_ToF.csv").is_file())


def drone_footprint(
    cam_hfov_deg: float = CAM_HFOV_DEG, offset_px: tuple[float, float] = (0.0, 0.0)
) -> Footprint:
    """The ToF zones' rectangle in the 48x64 network input (see the module docstring)."""
    return footprint(SIZE, cam_hfov_deg, TOF_FOV_DEG, 8, offset_px)


def read_tof(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``state_ToF.csv``: blocks of 65 lines (``t,0,0`` then 64 zones ``distance_mm,n_targets,status``).
    Returns ``t_ms`` [F] int64, ``distance_mm`` [F,8,8] int16, ``n_targets`` and ``status`` [F,8,8]."""
    a = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if a.shape[1] != 3 or a.shape[0] % 65:
        raise ValueError(f"{path}: expected blocks of 65 lines of 3 integers, got {a.shape}")
    b = a.reshape(-1, 65, 3)
    z = b[:, 1:]
    return (
        b[:, 0, 0].copy(),
        z[..., 0].reshape(-1, 8, 8).clip(-32768, 32767).astype(np.int16),
        z[..., 1].reshape(-1, 8, 8).astype(np.uint8),
        z[..., 2].reshape(-1, 8, 8).clip(0, 255).astype(np.uint8),
    )


def zone_valid(n_targets: np.ndarray, status: np.ndarray) -> np.ndarray:
    """The dataset's validity rule: exactly one target and status 5 or 9."""
    return (n_targets == 1) & np.isin(status, VALID_STATUS)


def match(img_t: np.ndarray, tof_t: np.ndarray, max_dt_ms: int = MAX_DT_MS) -> np.ndarray:
    """Index of the nearest ToF frame for each image timestamp (first on ties), -1 if none within
    ``max_dt_ms``."""
    if len(tof_t) == 0:
        return np.full(len(img_t), -1, np.int64)
    idx = np.abs(img_t[:, None] - tof_t[None, :]).argmin(axis=1)  # first in file order on ties
    return np.where(np.abs(tof_t[idx] - img_t) <= max_dt_ms, idx, -1)


def preprocess(img: np.ndarray) -> np.ndarray:
    """A 244x324 uint8 frame -> 48x64 uint8: centre crop to 240x320, 5x5 block means, rounded."""
    h, w = img.shape
    ch, cw = CROP
    if h < ch or w < cw:
        raise ValueError(f"frame {h}x{w} smaller than the {ch}x{cw} crop")
    t, left = (h - ch) // 2, (w - cw) // 2
    c = img[t : t + ch, left : left + cw].astype(np.float32)
    k = ch // SIZE[0]
    m = c.reshape(SIZE[0], k, SIZE[1], k).mean(axis=(1, 3))
    return np.rint(m).clip(0, 255).astype(np.uint8)


def _read_jpeg(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def load_flight(
    name: str,
    root: str | Path | None = None,
    cam_hfov_deg: float = CAM_HFOV_DEG,
    max_dt_ms: int = MAX_DT_MS,
) -> DroneBatch:
    """One flight's frames in time order, each with its matched ToF frame."""
    d = flights_dir(root) / name
    if not (d / "state_ToF.csv").is_file():
        raise FileNotFoundError(
            f"flight {name!r} not found in {d.parent} (have: {', '.join(list_flights(root))})"
        )
    tof_t, mm, nt, st = read_tof(d / "state_ToF.csv")
    files = sorted((d / "images").glob("*.jpeg"), key=lambda p: int(p.stem))
    img_t = np.array([int(p.stem) for p in files], dtype=np.int64)
    idx = match(img_t, tof_t, max_dt_ms) if len(files) else np.zeros(0, np.int64)
    keep = np.flatnonzero(idx >= 0)
    images = [preprocess(_read_jpeg(files[i])) for i in keep]
    j = idx[keep]
    n = len(keep)
    return DroneBatch(
        image=np.stack(images) if n else np.zeros((0, *SIZE), np.uint8),
        depth=None,  # type: ignore[arg-type]
        tof_mm=mm[j],
        tof_status=st[j],
        tof_valid=zone_valid(nt[j], st[j]),
        footprint=drone_footprint(cam_hfov_deg),
        domain=f"{DATASET}:{name}",
        flight=np.array([name] * n),
        t_ms=img_t[keep],
        tof_t_ms=tof_t[j],
    )


def load_flights(
    names: str | list[str],
    root: str | Path | None = None,
    cam_hfov_deg: float = CAM_HFOV_DEG,
    max_dt_ms: int = MAX_DT_MS,
) -> DroneBatch:
    """Several flights (``"O0,O1"`` or a list), concatenated in the given order, each in time order."""
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    if not names:
        raise ValueError("no flights given")
    parts = [load_flight(n, root, cam_hfov_deg, max_dt_ms) for n in names]
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    return DroneBatch(
        image=cat("image"),
        depth=None,  # type: ignore[arg-type]
        tof_mm=cat("tof_mm"),
        tof_status=cat("tof_status"),
        tof_valid=cat("tof_valid"),
        footprint=parts[0].footprint,
        domain=f"{DATASET}:{','.join(names)}",
        flight=cat("flight"),
        t_ms=cat("t_ms"),
        tof_t_ms=cat("tof_t_ms"),
    )


def stream_order(b: DroneBatch, order: str = "shuffle", seed: int = 0) -> DroneBatch:
    """The order in which the host streams frames for training: ``"time"`` (flight after flight, each in
    time order) or ``"shuffle"`` (one fixed permutation, ``seed``). Streaming flight after flight at
    lr 1e-3 collapses the network: the take-off frames (floor a few cm away) come first."""
    if order == "time":
        return b
    if order != "shuffle":
        raise ValueError(f"order must be 'time' or 'shuffle', not {order!r}")
    return b.select(np.random.default_rng(seed).permutation(len(b)))
