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

Domains are :class:`~mcutrain.data.scene_domains.DomainParams`; ``DOMAINS["A"]`` is the pre-training
distribution and ``DOMAINS["B"]`` "the field" (:mod:`mcutrain.data.scene_domains`).
``datasets/synthetic_depth.toml`` is the manifest of both; :func:`load_manifest` reads it. Scenes are
sampled in :mod:`mcutrain.data.scene_sampling` and rendered here.
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain.data import raycast as rc
from mcutrain.data.scene_domains import DOMAINS, MAX_BOXES, DomainParams
from mcutrain.data.scene_sampling import ALB, AX, CON, FREQ, IR, KIND, PH, Scene, sample_scene
from mcutrain.data.tof import VALID_STATUS, Footprint, SensorParams, footprint, measure, sensor_rays

F32 = np.float32

#: Default network resolution (H, W), as :data:`mcutrain.zoo.depth.INPUT_HW`.
DEFAULT_SIZE = (48, 64)


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
    """Multiplicative texture in [1 - c/2, 1 + c/2] at hit points; ``m[n, P, NMAT]``: their materials."""
    freq, con, kind = m[..., FREQ], m[..., CON], m[..., KIND]
    q = point * freq[..., None] + m[..., PH]
    stripes = np.tanh(3 * np.sin(2 * np.pi * np.sum(q * m[..., AX], -1)))
    checker = 1 - 2 * (np.floor(q).astype(np.int64).sum(-1) & 1)
    seed = (m[..., PH][..., 0] * 1e6).astype(np.uint32)
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
    scenes: list[Scene],
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
    mat = np.stack([s.mat[used] for s in scenes]).astype(F32)  # [n, S, NMAT] as the surface ids
    msurf = np.take_along_axis(mat, hits.surface[..., None], 1)  # [n, P, NMAT]

    # Camera: texture x (ambient + point lights + directional), Lambertian, no shadows.
    pt, nrm, mc = hits.point[:, :pc], hits.normal[:, :pc], msurf[:, :pc]
    albedo = np.clip(mc[..., ALB] * _texture(pt, nrm, mc), 0.0, 1.0)
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
    ir = msurf[:, pc:, IR].reshape(n, z, s2)
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
        scenes = [sample_scene(r, dp) for r in rngs]
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
