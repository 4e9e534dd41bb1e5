"""A small vectorized NumPy ray caster for batches of axis-aligned indoor scenes.

World frame: x and z horizontal, y up, floor at ``y = 0``. A scene is an axis-aligned room (floor,
ceiling and four walls: the camera is inside it), axis-aligned boxes and vertical capped cylinders.
Every function works on a batch of ``n`` scenes and ``P`` rays at once; there are no per-pixel loops.

Ray directions are *unnormalized* with unit component along the sensor's optical axis (``z = 1`` in
the camera frame), so the ray parameter ``t`` of a hit is its z-depth (the distance along the optical
axis), and ``t * |d|`` its Euclidean range.

Surface ids of a hit: ``0..5`` room faces (x-, x+, floor, ceiling, z-, z+), ``6..6+K-1`` boxes,
``6+K..6+K+M-1`` cylinders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F32 = np.float32
FAR = F32(1e6)  # coordinates of unused box / cylinder slots: never hit inside a room
_EPS = F32(1e-4)
ROOM_FACES = 6
FLOOR, CEILING = 2, 3


@dataclass(frozen=True)
class SceneGeometry:
    """Geometry of a batch of ``n`` scenes (float32). Unused slots sit at :data:`FAR`.

    ``room``: ``[n, 2, 3]`` (min corner, max corner); ``boxes``: ``[n, K, 2, 3]``; ``cylinders``:
    ``[n, M, 5]`` as ``(cx, cz, radius, y_bottom, y_top)``.
    """

    room: np.ndarray
    boxes: np.ndarray
    cylinders: np.ndarray

    @property
    def n_surfaces(self) -> int:
        return ROOM_FACES + self.boxes.shape[1] + self.cylinders.shape[1]


@dataclass(frozen=True)
class Hits:
    """Nearest hits of ``[n, P]`` rays: z-depth ``t``, world ``point`` and unit ``normal`` (facing the
    ray), and the ``surface`` id."""

    t: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    surface: np.ndarray


def pinhole_rays(size: tuple[int, int], hfov_deg: float, supersample: int = 1) -> np.ndarray:
    """Camera-frame ray directions ``[H*s * W*s, 3]`` (x right, y down, z = 1) through the centres of the
    (sub-)pixels of an ``H x W`` pinhole camera with square pixels and horizontal field of view
    ``hfov_deg``, row-major."""
    h, w = size
    s = supersample
    f = (w / 2) / math.tan(math.radians(hfov_deg) / 2)  # focal length in pixels
    v = (np.arange(h * s, dtype=np.float64) + 0.5) / s - h / 2
    u = (np.arange(w * s, dtype=np.float64) + 0.5) / s - w / 2
    vv, uu = np.meshgrid(v / f, u / f, indexing="ij")
    return np.stack([uu.ravel(), vv.ravel(), np.ones(vv.size)], axis=1).astype(F32)


def camera_to_world(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Rotations ``[n, 3, 3]`` from the camera frame (x right, y down, z forward) to the world (y up).

    Yaw turns about the world's y axis (0 looks along +z), pitch tilts the view up (positive) and roll
    turns about the optical axis; all in radians."""
    n = yaw.shape[0]
    flip = np.diag([1.0, -1.0, 1.0])  # camera y is down, world y is up
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros(n), np.ones(n)
    r_roll = np.stack([np.stack([cr, -sr, z], -1), np.stack([sr, cr, z], -1), np.stack([z, z, o], -1)], 1)
    r_pitch = np.stack([np.stack([o, z, z], -1), np.stack([z, cp, sp], -1), np.stack([z, -sp, cp], -1)], 1)
    r_yaw = np.stack([np.stack([cy, z, sy], -1), np.stack([z, o, z], -1), np.stack([-sy, z, cy], -1)], 1)
    return (r_yaw @ r_pitch @ r_roll @ flip).astype(F32)


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-9, F32(1e-9), d).astype(F32)


def _box_hits(o: np.ndarray, d: np.ndarray, inv: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Entry distance ``[n, K, P]`` (inf when missed) and the axis of the entry face, slab method one
    axis at a time."""
    tmin = tmax = face = np.empty(0)
    for a in range(3):
        oa, ia = o[:, None, :, a], inv[:, None, :, a]
        t1 = (boxes[:, :, 0, a, None] - oa) * ia
        t2 = (boxes[:, :, 1, a, None] - oa) * ia
        tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
        if a == 0:
            tmin, tmax, face = tn, tf, np.zeros(tn.shape, np.int8)
        else:
            face = np.where(tn > tmin, np.int8(a), face)
            tmin, tmax = np.maximum(tmin, tn), np.minimum(tmax, tf)
    return np.where((tmax >= tmin) & (tmin > _EPS), tmin, np.inf), face


def _cylinder_hits(o: np.ndarray, d: np.ndarray, cylinders: np.ndarray) -> tuple[np.ndarray, ...]:
    """Hit distance ``[n, M, P]`` (inf when missed) of the side or the top cap, and whether it is the cap."""
    cyl = cylinders[:, :, None, :]  # [n, M, 1, 5]
    ox, oy, oz = o[:, None, :, 0], o[:, None, :, 1], o[:, None, :, 2]
    dx, dy, dz = d[:, None, :, 0], d[:, None, :, 1], d[:, None, :, 2]
    ex, ez = ox - cyl[..., 0], oz - cyl[..., 1]
    r, y0, y1 = cyl[..., 2], cyl[..., 3], cyl[..., 4]
    a = dx * dx + dz * dz
    b = ex * dx + ez * dz
    disc = b * b - a * (ex * ex + ez * ez - r * r)
    ts = (-b - np.sqrt(np.maximum(disc, 0))) / np.maximum(a, F32(1e-12))
    ys = oy + ts * dy
    tside = np.where((disc > 0) & (ts > _EPS) & (ys >= y0) & (ys <= y1), ts, np.inf)
    tc = (y1 - oy) * (F32(1.0) / dy)
    cx, cz = ex + tc * dx, ez + tc * dz
    tcap = np.where((tc > _EPS) & (cx * cx + cz * cz <= r * r), tc, np.inf)
    return np.minimum(tside, tcap), tcap < tside


def _origin(origin: np.ndarray) -> np.ndarray:
    return (origin[:, None, :] if origin.ndim == 2 else origin).astype(F32)


def cast(origin: np.ndarray, dirs: np.ndarray, geo: SceneGeometry) -> Hits:
    """Nearest hit of rays ``origin + t * dirs[n, P]``; ``origin`` is ``[n, 3]`` (one per scene) or
    ``[n, P, 3]``. Origins must be inside the room and outside every object."""
    n, p, _ = dirs.shape
    o = _origin(origin)
    d = _safe(dirs.astype(F32))
    inv = F32(1.0) / d

    # Room (inside): exit distance, face = axis and side of the slab that ends first.
    pos = d > 0
    t_axes = (np.where(pos, geo.room[:, 1, None, :], geo.room[:, 0, None, :]) - o) * inv  # [n, P, 3]
    axis = np.argmin(t_axes, axis=-1)
    t = np.take_along_axis(t_axes, axis[..., None], -1)[..., 0]
    side = np.take_along_axis(pos, axis[..., None], -1)[..., 0]
    surface = (2 * axis + side).astype(np.int32)

    k = geo.boxes.shape[1]
    if k:
        tb, face = _box_hits(o, d, inv, geo.boxes)
        kb = np.argmin(tb, axis=1)[:, None]
        tbest = np.take_along_axis(tb, kb, 1)[:, 0]
        closer = tbest < t
        t = np.where(closer, tbest, t)
        surface = np.where(closer, ROOM_FACES + kb[:, 0], surface)
        axis = np.where(closer, np.take_along_axis(face, kb, 1)[:, 0], axis)

    m = geo.cylinders.shape[1]
    on_cap = np.zeros((n, p), bool)
    if m:
        tcyl, cap = _cylinder_hits(o, d, geo.cylinders)
        mc = np.argmin(tcyl, axis=1)[:, None]
        tbest = np.take_along_axis(tcyl, mc, 1)[:, 0]
        closer = tbest < t
        t = np.where(closer, tbest, t)
        surface = np.where(closer, ROOM_FACES + k + mc[:, 0], surface)
        on_cap = closer & np.take_along_axis(cap, mc, 1)[:, 0]

    t = t.astype(F32)
    point = (o + t[..., None] * d).astype(F32)
    # Planar faces: unit normal along the hit axis, facing the ray (cylinder caps: +y).
    onehot = (axis[..., None] == np.arange(3)).astype(F32)
    normal = -onehot * np.sign(np.sum(onehot * d, -1, keepdims=True))
    if m:
        ci = np.clip(surface - ROOM_FACES - k, 0, m - 1)
        cyl = np.take_along_axis(geo.cylinders, ci[:, :, None], 1)  # [n, P, 5]
        inv_r = F32(1.0) / np.maximum(cyl[..., 2], F32(1e-6))
        rx = (point[..., 0] - cyl[..., 0]) * inv_r
        rz = (point[..., 2] - cyl[..., 1]) * inv_r
        zero = np.zeros_like(rx)
        side_n = np.stack([rx, zero, rz], -1)
        cap_n = np.stack([zero, zero + 1, zero], -1)
        is_cyl = (surface >= ROOM_FACES + k)[..., None]
        normal = np.where(is_cyl, np.where(on_cap[..., None], cap_n, side_n), normal)
    return Hits(t=t, point=point, normal=normal.astype(F32), surface=surface.astype(np.int32))


def occluded(origin: np.ndarray, seg: np.ndarray, geo: SceneGeometry) -> np.ndarray:
    """Whether an object (box or cylinder) blocks the segments ``origin[n, P] .. origin + seg[n, P]``
    (shadow rays; the room itself never blocks: lights are inside it)."""
    o = _origin(origin)
    d = _safe(seg.astype(F32))
    blocked = np.zeros(d.shape[:2], bool)
    if geo.boxes.shape[1]:
        blocked |= (_box_hits(o, d, F32(1.0) / d, geo.boxes)[0] < 1.0).any(1)
    if geo.cylinders.shape[1]:
        blocked |= (_cylinder_hits(o, d, geo.cylinders)[0] < 1.0).any(1)
    return blocked
