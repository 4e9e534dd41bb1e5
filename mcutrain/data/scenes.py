"""Procedural indoor scenes rendered to a grayscale camera image, dense depth and an 8x8 ToF frame.

``generate(domain, n, seed)`` draws ``n`` scenes (a room or a corridor with boxes, pillars, wall
cabinets and people-sized cylinders, a camera pose, lights and a procedural material per surface),
ray-casts them in batches (:mod:`mcutrain.data.raycast`) and returns a :class:`SceneBatch`:

* ``image``: uint8 grayscale: solid procedural textures (stripes, checks, value noise, tiles) times a
  Lambertian shading from point and directional lights plus ambient (no shadows), then a camera model
  (auto-exposure, vignetting, optical blur, shot and read noise, gamma, 8-bit quantization);
* ``depth``: float32 z-depth in metres (distance along the optical axis, what a pinhole depth network
  predicts and what the ToF chip reports after its radial-to-perpendicular conversion);
* ``tof_mm`` / ``tof_status`` / ``tof_valid``: the 8x8 sensor frame (:mod:`mcutrain.data.tof`), whose
  zones cover ``footprint`` in the image.

Scenes depend only on ``(domain name, seed, index)``: frame ``i`` is the same whatever ``n`` or the
chunk size, and two calls with the same arguments return identical arrays.

Domains are :class:`DomainParams`; ``DOMAINS["A"]`` is the pre-training distribution and
``DOMAINS["B"]`` "the field" (corridors and cluttered small rooms, dim light, flat low-contrast
textures, a raw-ish camera with low gamma, strong vignetting and blur, a low flying drone close to
obstacles). ``datasets/synthetic_depth.toml`` is the manifest of both; :func:`load_manifest` reads it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain.data import raycast as rc
from mcutrain.data.tof import VALID_STATUS, Footprint, SensorParams, footprint, measure, sensor_rays

Range = tuple[float, float]
IntRange = tuple[int, int]
F32 = np.float32

#: Default network resolution (H, W), as :data:`mcutrain.zoo.depth.INPUT_HW`.
DEFAULT_SIZE = (48, 64)
#: Camera horizontal field of view: the 45 deg ToF footprint is then exactly 32x32 px (4x4-px zones)
#: at 48x64: tan(hfov / 2) = 2 tan(22.5 deg).
DEFAULT_CAM_HFOV_DEG = 2 * math.degrees(math.atan(2 * math.tan(math.radians(22.5))))
MAX_BOXES = 14  # box slots per scene (furniture, pillars, cabinets, the near obstacle)
MAX_PEOPLE = 5
MAX_LIGHTS = 3
TEXTURES = ("plain", "stripes", "checker", "noise", "tiles")


@dataclass(frozen=True)
class DomainParams:
    """Distribution of scenes, lighting and sensors. ``(lo, hi)`` pairs are uniform ranges."""

    name: str
    # layout
    corridor_prob: float = 0.2
    room_width_m: Range = (4.0, 8.0)
    room_length_m: Range = (5.0, 9.0)
    corridor_width_m: Range = (1.8, 3.0)
    corridor_length_m: Range = (8.0, 12.0)
    ceiling_m: Range = (2.6, 3.2)
    n_boxes: IntRange = (2, 6)
    n_people: IntRange = (0, 2)
    box_size_m: Range = (0.4, 1.4)
    box_height_m: Range = (0.4, 1.6)
    pillar_prob: float = 0.1
    cabinet_prob: float = 0.1
    wall_prob: float = 0.5  # fraction of furniture pushed against a wall
    near_object_prob: float = 0.3  # an obstacle right ahead of the camera
    near_object_m: Range = (0.6, 3.0)
    camera_height_m: Range = (0.8, 1.6)
    open_view_prob: float = 0.7  # chance that the camera looks towards the deepest of 4 random headings
    pitch_std_deg: float = 4.0
    roll_std_deg: float = 2.0
    # appearance
    wall_albedo: Range = (0.45, 0.9)
    floor_albedo: Range = (0.25, 0.7)
    ceiling_albedo: Range = (0.7, 0.95)
    object_albedo: Range = (0.15, 0.9)
    texture_probs: tuple[float, ...] = (0.15, 0.35, 0.35, 0.1, 0.05)  # over TEXTURES
    texture_freq: Range = (1.5, 5.0)  # cycles per metre
    texture_contrast: Range = (0.5, 1.0)
    ir_albedo_jitter: Range = (0.7, 1.3)  # near-infrared reflectance / visible albedo
    n_lights: IntRange = (2, 3)
    light_power: Range = (3.0, 6.0)
    directional_prob: float = 0.5
    directional_power: Range = (0.2, 0.5)
    ambient: Range = (0.25, 0.4)
    shadows: bool = True  # hard shadows of the strongest point light
    # camera
    cam_hfov_deg: float = DEFAULT_CAM_HFOV_DEG
    exposure: Range = (0.15, 0.3)  # auto-exposure target: mean linear intensity
    gamma: Range = (2.0, 2.4)  # output = linear ** (1 / gamma)
    vignetting: Range = (0.1, 0.3)  # fraction of the cos^4 fall-off applied
    blur: Range = (0.0, 0.2)  # weight of a 3x3 box blur
    shot_noise: float = 0.0005  # variance per unit of linear signal
    read_noise: float = 0.003  # std, linear units
    # time-of-flight
    tof_dropout: float = 0.01
    tof_noise_scale: float = 1.0
    tof_ambient: float = 1.0  # ambient infrared: scales the weakest detectable / nominal-noise signal

    def __post_init__(self) -> None:
        if len(self.texture_probs) != len(TEXTURES) or not math.isclose(sum(self.texture_probs), 1.0):
            raise ValueError(f"texture_probs must be {len(TEXTURES)} probabilities summing to 1 ({TEXTURES})")
        if self.n_boxes[1] > MAX_BOXES - 1 or self.n_people[1] > MAX_PEOPLE or self.n_lights[1] > MAX_LIGHTS:
            raise ValueError(
                f"at most {MAX_BOXES - 1} boxes, {MAX_PEOPLE} people and {MAX_LIGHTS} lights per scene"
            )

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> DomainParams:
        names = {f.name for f in dataclasses.fields(DomainParams)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown domain parameters {sorted(unknown)}; known: {sorted(names)}")
        return DomainParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


DOMAIN_A = DomainParams(name="A")
DOMAIN_B = DomainParams(
    name="B",
    corridor_prob=0.5,
    room_width_m=(3.0, 5.5),
    room_length_m=(3.5, 6.5),
    corridor_width_m=(1.4, 2.4),
    corridor_length_m=(6.0, 14.0),
    ceiling_m=(2.3, 3.0),
    n_boxes=(5, 12),
    n_people=(1, 4),
    box_size_m=(0.3, 1.0),
    box_height_m=(0.3, 2.0),
    pillar_prob=0.2,
    cabinet_prob=0.2,
    wall_prob=0.6,
    near_object_prob=0.6,
    near_object_m=(0.4, 2.0),
    camera_height_m=(0.3, 1.2),
    open_view_prob=0.5,
    pitch_std_deg=8.0,
    roll_std_deg=6.0,
    wall_albedo=(0.2, 0.6),
    floor_albedo=(0.08, 0.35),
    ceiling_albedo=(0.4, 0.8),
    object_albedo=(0.05, 0.6),
    texture_probs=(0.35, 0.05, 0.0, 0.45, 0.15),
    texture_freq=(0.5, 2.0),
    texture_contrast=(0.1, 0.4),
    ir_albedo_jitter=(0.4, 1.1),
    n_lights=(1, 1),
    light_power=(1.0, 3.0),
    directional_prob=0.2,
    directional_power=(0.1, 0.3),
    ambient=(0.05, 0.15),
    exposure=(0.15, 0.35),
    gamma=(1.0, 1.4),
    vignetting=(0.5, 0.9),
    blur=(0.3, 0.7),
    shot_noise=0.0015,
    read_noise=0.006,
    tof_dropout=0.04,
    tof_noise_scale=1.5,
    tof_ambient=3.0,
)
DOMAINS: dict[str, DomainParams] = {"A": DOMAIN_A, "B": DOMAIN_B}


@dataclass(frozen=True)
class SceneBatch:
    """``n`` frames: ``image`` uint8 [n,H,W], ``depth`` float32 [n,H,W] (z-depth, m), ``tof_mm`` int16
    [n,8,8], ``tof_status`` uint8 [n,8,8], ``tof_valid`` bool [n,8,8] (status 5 or 9); ``footprint`` maps
    the zones to image pixels."""

    image: np.ndarray
    depth: np.ndarray
    tof_mm: np.ndarray
    tof_status: np.ndarray
    tof_valid: np.ndarray
    footprint: Footprint
    domain: str = ""

    def __len__(self) -> int:
        return int(self.image.shape[0])


# ---------------------------------------------------------------------------------------------------
# Scene sampling (per scene, from its own generator)
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Scene:
    room: np.ndarray  # [2, 3]
    boxes: np.ndarray  # [MAX_BOXES, 2, 3]
    cyls: np.ndarray  # [MAX_PEOPLE, 5]
    cam: np.ndarray  # [3]
    ypr: np.ndarray  # [3] yaw, pitch, roll
    lights: np.ndarray  # [3, 4] x, y, z, power (power 0 = unused)
    sun: np.ndarray  # [4] direction towards the light (unit), power
    ambient: float
    mat: np.ndarray  # [S, _NMAT] materials per surface
    cam_params: np.ndarray  # [4] exposure, gamma, vignetting, blur
    n_boxes: int  # used box slots (the first ones)
    n_cyls: int


# material columns
_ALB, _IR, _KIND, _FREQ, _CON, _AX, _PH = 0, 1, 2, 3, 4, slice(5, 8), slice(8, 11)
_NMAT = 11


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _materials(rng: np.random.Generator, dp: DomainParams) -> np.ndarray:
    """Materials ``[6 + MAX_BOXES + MAX_PEOPLE, _NMAT]``: room faces, box slots, cylinder slots."""
    ns = rc.ROOM_FACES + MAX_BOXES + MAX_PEOPLE
    lo = np.full(ns, dp.object_albedo[0])
    hi = np.full(ns, dp.object_albedo[1])
    for f, r in [(0, dp.wall_albedo), (1, dp.wall_albedo), (4, dp.wall_albedo), (5, dp.wall_albedo),
                 (rc.FLOOR, dp.floor_albedo), (rc.CEILING, dp.ceiling_albedo)]:  # fmt: skip
        lo[f], hi[f] = r
    m = np.zeros((ns, _NMAT))
    m[:, _ALB] = rng.uniform(lo, hi)
    m[:, _IR] = np.clip(m[:, _ALB] * rng.uniform(*dp.ir_albedo_jitter, ns), 0.03, 1.0)
    m[:, _KIND] = rng.choice(len(TEXTURES), size=ns, p=dp.texture_probs)
    m[:, _FREQ] = rng.uniform(*dp.texture_freq, ns)
    m[:, _CON] = rng.uniform(*dp.texture_contrast, ns)
    ax = np.where(rng.random((ns, 1)) < 0.3, rng.normal(size=(ns, 3)), np.eye(3)[rng.integers(0, 3, ns)])
    m[:, _AX] = ax / np.linalg.norm(ax, axis=1, keepdims=True)
    m[:, _PH] = rng.uniform(0, 1, (ns, 3))
    if rng.random() < 0.7:  # the walls of one room usually share a finish
        m[[1, 4, 5]] = m[0]
    return m


def _sample_scene(rng: np.random.Generator, dp: DomainParams) -> _Scene:
    if rng.random() < dp.corridor_prob:
        w, l = _u(rng, dp.corridor_width_m), _u(rng, dp.corridor_length_m)
    else:
        w, l = _u(rng, dp.room_width_m), _u(rng, dp.room_length_m)
    if rng.random() < 0.5:
        w, l = l, w
    ceil = _u(rng, dp.ceiling_m)
    room = np.array([[0.0, 0.0, 0.0], [w, ceil, l]])

    boxes = np.full((MAX_BOXES, 2, 3), rc.FAR, dtype=np.float64)
    boxes[:, 1] += 1.0
    nb = int(rng.integers(dp.n_boxes[0], dp.n_boxes[1] + 1))
    for i in range(nb):
        u = rng.random()
        pillar, cabinet = u < dp.pillar_prob, dp.pillar_prob <= u < dp.pillar_prob + dp.cabinet_prob
        side = int(rng.integers(4))  # the wall it may stand against: x = 0, x = w, z = 0, z = l
        if pillar:
            sx = sz = _u(rng, (0.2, 0.5))
            y0, y1 = 0.0, ceil
        elif cabinet:  # shallow, hung on a wall
            sx, sz = _u(rng, dp.box_size_m), _u(rng, (0.3, 0.5))
            if side < 2:
                sx, sz = sz, sx
            y0 = _u(rng, (0.9, 1.5))
            y1 = min(y0 + _u(rng, (0.3, 0.8)), ceil)
        else:
            sx, sz = _u(rng, dp.box_size_m), _u(rng, dp.box_size_m)
            y0, y1 = 0.0, min(_u(rng, dp.box_height_m), ceil)
        sx, sz = min(sx, w * 0.6), min(sz, l * 0.6)
        x0 = rng.uniform(0, w - sx)
        z0 = rng.uniform(0, l - sz)
        if cabinet or (not pillar and rng.random() < dp.wall_prob):
            x0 = 0.0 if side == 0 else (w - sx if side == 1 else x0)
            z0 = 0.0 if side == 2 else (l - sz if side == 3 else z0)
        boxes[i] = [[x0, y0, z0], [x0 + sx, y1, z0 + sz]]

    cyls = np.zeros((MAX_PEOPLE, 5))
    cyls[:, :2] = rc.FAR
    npp = int(rng.integers(dp.n_people[0], dp.n_people[1] + 1))
    for i in range(npp):
        r = _u(rng, (0.15, 0.3))
        cyls[i] = [rng.uniform(r, w - r), rng.uniform(r, l - r), r, 0.0, _u(rng, (1.5, 1.9))]

    # Camera: a free spot (tries, then drop what is in the way).
    h = min(_u(rng, dp.camera_height_m), ceil - 0.15)
    clear = 0.25
    for _ in range(30):
        cam = np.array([rng.uniform(0.3, w - 0.3), h, rng.uniform(0.3, l - 0.3)])
        if not _blocked(cam, boxes, cyls, clear).any():
            break
    for i in np.flatnonzero(_blocked(cam, boxes, cyls, clear)):
        if i < MAX_BOXES:
            boxes[i] = [[rc.FAR] * 3, [rc.FAR + 1] * 3]
        else:
            cyls[i - MAX_BOXES, :2] = rc.FAR
    yaws = rng.uniform(0, 2 * math.pi, 4)
    yaw = yaws[0]
    if rng.random() < dp.open_view_prob:  # look where the room is deepest, as a flying drone would
        dx, dz = np.sin(yaws), np.cos(yaws)
        with np.errstate(divide="ignore"):
            free = np.minimum(np.where(dx > 0, w - cam[0], cam[0]) / np.abs(dx),
                              np.where(dz > 0, l - cam[2], cam[2]) / np.abs(dz))  # fmt: skip
        yaw = yaws[np.argmax(free)]
    pitch = math.radians(rng.normal(0, dp.pitch_std_deg))
    roll = math.radians(rng.normal(0, dp.roll_std_deg))

    if rng.random() < dp.near_object_prob:  # an obstacle ahead: a box or a person
        dist = _u(rng, dp.near_object_m)
        ang = yaw + rng.normal(0, 0.15)
        cx, cz = cam[0] + dist * math.sin(ang), cam[2] + dist * math.cos(ang)
        half = min(_u(rng, (0.15, 0.5)), dist - clear)
        if rng.random() < 0.5 and npp < MAX_PEOPLE:
            cyls[npp] = [cx, cz, half, 0.0, _u(rng, (1.5, 1.9))]
            npp += 1
        else:
            top = ceil if rng.random() < 0.3 else min(_u(rng, (0.5, 2.0)), ceil)
            boxes[nb] = [[cx - half, 0.0, cz - half], [cx + half, top, cz + half]]
            nb += 1

    nl = int(rng.integers(dp.n_lights[0], dp.n_lights[1] + 1))
    lights = np.zeros((MAX_LIGHTS, 4))
    for i in range(nl):
        lights[i] = [rng.uniform(0, w), ceil - 0.1, rng.uniform(0, l), _u(rng, dp.light_power)]
    lights = lights[np.argsort(-lights[:, 3])]  # the strongest first: it casts the shadows
    sun = np.zeros(4)
    if rng.random() < dp.directional_prob:
        v = np.array([rng.normal(), rng.uniform(0.3, 1.0), rng.normal()])
        sun = np.array([*(v / np.linalg.norm(v)), _u(rng, dp.directional_power)])

    cam_params = np.array([_u(rng, dp.exposure), _u(rng, dp.gamma), _u(rng, dp.vignetting), _u(rng, dp.blur)])
    return _Scene(
        room=room,
        boxes=boxes,
        cyls=cyls,
        cam=cam,
        ypr=np.array([yaw, pitch, roll]),
        lights=lights,
        sun=sun,
        ambient=_u(rng, dp.ambient),
        mat=_materials(rng, dp),
        cam_params=cam_params,
        n_boxes=nb,
        n_cyls=npp,
    )


def _blocked(p: np.ndarray, boxes: np.ndarray, cyls: np.ndarray, clear: float) -> np.ndarray:
    """Which boxes then cylinders come within ``clear`` of point ``p`` (``[MAX_BOXES + MAX_PEOPLE]``)."""
    inb = np.all((p >= boxes[:, 0] - clear) & (p <= boxes[:, 1] + clear), axis=1)
    dc = np.hypot(p[0] - cyls[:, 0], p[2] - cyls[:, 1])
    inc = (dc <= cyls[:, 2] + clear) & (p[1] <= cyls[:, 4] + clear)
    return np.concatenate([inb, inc])


# ---------------------------------------------------------------------------------------------------
# Rendering (vectorized over the frames of a chunk)
# ---------------------------------------------------------------------------------------------------


def _hash(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Pseudo-random values in [-1, 1] at integer lattice points (uint32 arithmetic)."""
    h = (
        ix.astype(np.uint32) * np.uint32(73856093)
        ^ iy.astype(np.uint32) * np.uint32(19349663)
        ^ iz.astype(np.uint32) * np.uint32(83492791)
        ^ seed
    )
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h & np.uint32(0xFFFF)).astype(F32) / F32(32767.5) - F32(1.0)


def _value_noise(q: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Trilinear value noise at points ``q[..., 3]`` (lattice units)."""
    fl = np.floor(q)
    f = q - fl
    f = f * f * (3 - 2 * f)
    i = fl.astype(np.int64)
    out = np.zeros(q.shape[:-1], F32)
    for dx in (0, 1):
        wx = f[..., 0] if dx else 1 - f[..., 0]
        for dy in (0, 1):
            wy = f[..., 1] if dy else 1 - f[..., 1]
            for dz in (0, 1):
                wz = f[..., 2] if dz else 1 - f[..., 2]
                out += wx * wy * wz * _hash(i[..., 0] + dx, i[..., 1] + dy, i[..., 2] + dz, seed)
    return out


def _texture(point: np.ndarray, normal: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Multiplicative texture in [1 - c/2, 1 + c/2] at hit points; ``m[n, P, _NMAT]``: their materials."""
    freq, con, kind = m[..., _FREQ], m[..., _CON], m[..., _KIND]
    q = point * freq[..., None] + m[..., _PH]
    stripes = np.tanh(3 * np.sin(2 * np.pi * np.sum(q * m[..., _AX], -1)))
    checker = 1 - 2 * (np.floor(q).astype(np.int64).sum(-1) & 1)
    seed = (m[..., _PH][..., 0] * 1e6).astype(np.uint32)
    noise = 0.7 * _value_noise(q, seed) + 0.3 * _value_noise(q * 2.7, seed + np.uint32(1))
    noise = np.clip(noise * 1.8, -1, 1)
    fr = q - np.floor(q)
    in_plane = np.abs(normal) < 0.5
    grout = np.any(in_plane & ((fr < 0.04) | (fr > 0.96)), axis=-1)
    tiles = np.where(grout, -1.0, 0.3)
    pattern = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [stripes, checker, noise, tiles], 0.0)
    return 1 + 0.5 * con * pattern


def _blur3(img: np.ndarray) -> np.ndarray:
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = img.shape[1:]
    return sum(p[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def _render_chunk(
    scenes: list[_Scene],
    rngs: list[np.random.Generator],
    dp: DomainParams,
    size: tuple[int, int],
    ss: int,
    cam_rays: np.ndarray,
    tof_rays: np.ndarray,
    sensor: SensorParams,
) -> tuple[np.ndarray, ...]:
    n = len(scenes)
    h, w = size
    kb = max(s.n_boxes for s in scenes)  # slots beyond the used ones are empty: skip them
    kc = max(s.n_cyls for s in scenes)
    geo = rc.SceneGeometry(
        room=np.stack([s.room for s in scenes]).astype(F32),
        boxes=np.stack([s.boxes[:kb] for s in scenes]).astype(F32),
        cylinders=np.stack([s.cyls[:kc] for s in scenes]).astype(F32),
    )
    ypr = np.stack([s.ypr for s in scenes])
    rot = rc.camera_to_world(ypr[:, 0], ypr[:, 1], ypr[:, 2])
    local = np.concatenate([cam_rays, tof_rays.reshape(-1, 3)])
    dirs = np.einsum("nij,pj->npi", rot, local).astype(F32)
    origin = np.stack([s.cam for s in scenes]).astype(F32)
    hits = rc.cast(origin, dirs, geo)
    pc = cam_rays.shape[0]
    used = np.r_[0 : rc.ROOM_FACES + kb, rc.ROOM_FACES + MAX_BOXES : rc.ROOM_FACES + MAX_BOXES + kc]
    mat = np.stack([s.mat[used] for s in scenes]).astype(F32)  # [n, S, _NMAT] as the surface ids
    msurf = np.take_along_axis(mat, hits.surface[..., None], 1)  # [n, P, _NMAT]

    # Camera: texture x (ambient + point lights + directional), Lambertian, no shadows.
    pt, nrm, mc = hits.point[:, :pc], hits.normal[:, :pc], msurf[:, :pc]
    albedo = np.clip(mc[..., _ALB] * _texture(pt, nrm, mc), 0.0, 1.0)
    lights = np.stack([s.lights for s in scenes]).astype(F32)  # [n, L, 4]
    to_l = lights[:, None, :, :3] - pt[:, :, None, :]  # [n, P, L, 3]
    d2 = np.sum(to_l * to_l, -1)
    cos_l = np.maximum(np.sum(to_l * nrm[:, :, None], -1), 0) / np.sqrt(d2)
    direct = lights[:, None, :, 3] * cos_l / (d2 + 1.0)  # [n, P, L]
    if dp.shadows:  # the strongest light only
        shadow = rc.occluded(pt + F32(1e-3) * nrm, to_l[:, :, 0], geo)
        direct[:, :, 0] *= np.where(shadow, F32(0.0), F32(1.0))
    irr = direct.sum(-1)
    sun = np.stack([s.sun for s in scenes]).astype(F32)
    irr += sun[:, None, 3] * np.maximum(np.sum(nrm * sun[:, None, :3], -1), 0)
    irr += np.array([s.ambient for s in scenes], F32)[:, None]
    rad = (albedo * irr).reshape(n, h * ss, w * ss)
    depth = hits.t[:, :pc].reshape(n, h * ss, w * ss)
    if ss > 1:
        rad = rad.reshape(n, h, ss, w, ss).mean((2, 4))
        depth = depth.reshape(n, h, ss, w, ss).mean((2, 4))

    cp = np.stack([s.cam_params for s in scenes]).astype(F32)  # exposure, gamma, vignetting, blur
    uv2 = np.sum(cam_rays[:, :2] ** 2, -1).reshape(h * ss, w * ss)
    if ss > 1:
        uv2 = uv2.reshape(h, ss, w, ss).mean((1, 3))
    cos4 = 1.0 / (1.0 + uv2) ** 2
    img = rad * (1 - cp[:, 2, None, None] * (1 - cos4))
    img = (1 - cp[:, 3, None, None]) * img + cp[:, 3, None, None] * _blur3(img)
    img = img * (cp[:, 0] / np.maximum(img.mean((1, 2)), 1e-6))[:, None, None]
    noise = np.stack([r.standard_normal((2, h, w), dtype=F32) for r in rngs])
    img = img + np.sqrt(dp.shot_noise * np.maximum(img, 0)) * noise[:, 0] + dp.read_noise * noise[:, 1]
    img = np.clip(img, 0, 1) ** (1 / cp[:, 1, None, None])
    image = np.rint(img * 255).astype(np.uint8)

    # ToF: sub-ray hits -> zone readings.
    z, s2 = tof_rays.shape[:2]
    tdepth = hits.t[:, pc:].reshape(n, z, s2)
    tn = hits.normal[:, pc:].reshape(n, z, s2, 3)
    tdir = dirs[:, pc:].reshape(n, z, s2, 3)
    norm = np.linalg.norm(tof_rays, axis=-1)  # [Z, S]
    cos_inc = np.abs(np.sum(tn * tdir, -1)) / norm
    ir = msurf[:, pc:, _IR].reshape(n, z, s2)
    mm, status = measure(
        tdepth,
        norm,
        ir,
        cos_inc,
        sensor,
        rngs,
        dropout=dp.tof_dropout,
        noise_scale=dp.tof_noise_scale,
        ambient=dp.tof_ambient,
    )
    return image, depth.astype(F32), mm, status


def generate(
    domain: str | DomainParams,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    supersample: int = 1,
    sensor: SensorParams | None = None,
    chunk: int = 16,
) -> SceneBatch:
    """Render ``n`` frames of ``domain`` ("A", "B" or a :class:`DomainParams`) at ``size = (H, W)``.

    ``supersample`` > 1 renders ``s x s`` rays per pixel and averages them (image and depth): anti-aliased
    but ``s^2`` times slower. Deterministic in ``(domain.name, seed)``; frame ``i`` does not depend on
    ``n`` or ``chunk``."""
    dp = DOMAINS[domain] if isinstance(domain, str) else domain
    sensor = sensor or SensorParams()
    h, w = size
    fp = footprint(size, dp.cam_hfov_deg, sensor.fov_deg, sensor.zones)
    cam_rays = rc.pinhole_rays(size, dp.cam_hfov_deg, supersample)
    tof_rays = sensor_rays(sensor)
    salt = zlib.crc32(dp.name.encode())
    z = sensor.zones
    image = np.empty((n, h, w), np.uint8)
    depth = np.empty((n, h, w), F32)
    tof_mm = np.empty((n, z, z), np.int16)
    status = np.empty((n, z, z), np.uint8)
    for c0 in range(0, n, chunk):
        idx = range(c0, min(n, c0 + chunk))
        rngs = [np.random.default_rng([seed, i, salt]) for i in idx]
        scenes = [_sample_scene(r, dp) for r in rngs]
        im, de, mm, st = _render_chunk(scenes, rngs, dp, size, supersample, cam_rays, tof_rays, sensor)
        sl = slice(c0, c0 + len(idx))
        image[sl], depth[sl] = im, de
        tof_mm[sl], status[sl] = mm.reshape(-1, z, z), st.reshape(-1, z, z)
    return SceneBatch(
        image=image,
        depth=depth,
        tof_mm=tof_mm,
        tof_status=status,
        tof_valid=np.isin(status, VALID_STATUS),
        footprint=fp,
        domain=dp.name,
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a dataset manifest (``datasets/synthetic_depth.toml``): returns its table with ``domains``
    turned into :class:`DomainParams` by name and ``sensor`` into :class:`SensorParams`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        d = tomllib.load(f)
    d["domains"] = {k: DomainParams.from_dict({"name": k, **v}) for k, v in d.get("domains", {}).items()}
    if "sensor" in d:
        d["sensor"] = SensorParams(**d["sensor"])
    return d
