"""A VL53L5CX-like 8x8 multizone time-of-flight sensor model, and its footprint in the camera image.

Geometry: the sensor is a pinhole with a square ``fov_deg`` field of view (45 deg for the VL53L5CX)
whose ``zones x zones`` SPAD zones are equal squares of its image plane, co-located with the camera and
looking along the same optical axis (zero baseline, no misalignment). Each zone is sampled by
``sub x sub`` sub-rays. Like the real chip, the sensor reports the *perpendicular* (z) distance, the
radial-to-perpendicular conversion being done on the chip (ST: "If you point the sensor at a wall exactly
perpendicular and at 1 meter, all the zones will report that 1 meter").

Per zone and frame (see :func:`measure`):

1. every sub-ray returns a signal ``ir_albedo * |cos(incidence)| / range^2``; returns beyond the range
   limit (4 m) are lost;
2. the returned signal is clustered along distance (window ``cluster_m``) and the strongest cluster is
   the target (the driver's default ``STRONGEST`` target order); its signal-weighted mean distance is
   the noise-free measurement;
3. the measurement gets Gaussian noise ``sigma = noise_abs_mm + noise_rel * d``, scaled up by
   ``sqrt(ref_signal / signal)`` for weak returns.

Status codes (VL53L5CX ULD ``target_status``; valid = 5 or 9, as in ST's own loaders):

==== ===============================================================================================
5    range valid
9    range valid with large pulse: the target cluster spans more than ``merged_m`` (slanted or merged
     surfaces, e.g. the floor at a grazing angle)
3    sigma estimator too high: the return is too weak for a reliable range (dark, far or oblique)
4    target consistency failed: random dropout with probability ``dropout``
255  no target detected: nothing within the range limit, or a return below ``detect_signal``;
     ``distance_mm`` then holds a small meaningless value, as on the real sensor
==== ===============================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STATUS_VALID = 5
STATUS_VALID_MERGED = 9
STATUS_SIGMA_HIGH = 3
STATUS_DROPOUT = 4
STATUS_NO_TARGET = 255
#: Every status code :func:`measure` emits.
STATUS_CODES = (STATUS_VALID, STATUS_VALID_MERGED, STATUS_SIGMA_HIGH, STATUS_DROPOUT, STATUS_NO_TARGET)
#: Status codes of a usable range (ST's convention).
VALID_STATUS = (STATUS_VALID, STATUS_VALID_MERGED)


@dataclass(frozen=True)
class SensorParams:
    """Sensor constants. Distances in metres, signal in units of ``albedo / m^2``."""

    fov_deg: float = 45.0
    zones: int = 8
    sub: int = 6  # sub-rays per zone side (36 per zone)
    max_range_m: float = 4.0
    cluster_m: float = 0.15  # half-width of the distance window that forms one target
    merged_m: float = 0.08  # signal-weighted std of a target above which it is "merged" (status 9)
    noise_abs_mm: float = 8.0
    noise_rel: float = 0.015
    ref_signal: float = 0.05  # signal at which the noise is nominal (white wall at ~4 m)
    sigma_limit: float = 3.0  # noise multiplier above which the range is rejected (status 3)
    detect_signal: float = 0.002  # weakest detectable return (status 255 below)
    dropout: float = 0.01


@dataclass(frozen=True)
class Footprint:
    """The ToF zones in image pixel coordinates: zone ``(i, j)`` covers rows
    ``top + i*zone_h .. top + (i+1)*zone_h`` and columns ``left + j*zone_w .. left + (j+1)*zone_w``."""

    top: int
    left: int
    zone_h: int
    zone_w: int
    zones: int = 8

    @property
    def height(self) -> int:
        return self.zones * self.zone_h

    @property
    def width(self) -> int:
        return self.zones * self.zone_w

    def zone_slices(self, i: int, j: int) -> tuple[slice, slice]:
        r0, c0 = self.top + i * self.zone_h, self.left + j * self.zone_w
        return slice(r0, r0 + self.zone_h), slice(c0, c0 + self.zone_w)

    def zone_means(self, dense: np.ndarray) -> np.ndarray:
        """Mean of ``dense[..., H, W]`` over each zone: ``[..., zones, zones]``."""
        z, zh, zw = self.zones, self.zone_h, self.zone_w
        crop = dense[..., self.top : self.top + z * zh, self.left : self.left + z * zw]
        return crop.reshape(*crop.shape[:-2], z, zh, z, zw).mean(axis=(-3, -1))

    def zone_blocks(self, dense: np.ndarray) -> np.ndarray:
        """The pixels of each zone: ``[..., zones, zones, zone_h * zone_w]``."""
        z, zh, zw = self.zones, self.zone_h, self.zone_w
        crop = dense[..., self.top : self.top + z * zh, self.left : self.left + z * zw]
        b = crop.reshape(*crop.shape[:-2], z, zh, z, zw)
        return np.moveaxis(b, -3, -2).reshape(*crop.shape[:-2], z, z, zh * zw)


def footprint(
    size: tuple[int, int],
    cam_hfov_deg: float,
    tof_fov_deg: float = 45.0,
    zones: int = 8,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> Footprint:
    """The 8x8 grid of equal pixel rectangles that the ToF zones cover in an ``H x W`` image.

    Both devices are pinholes on one optical axis; the camera has square pixels and horizontal field of
    view ``cam_hfov_deg``, the sensor a square ``tof_fov_deg`` field. The footprint's extent is
    ``2 f tan(tof_fov / 2)`` pixels (``f`` the camera focal length in pixels), rounded to a whole number
    of pixels per zone and centred on the principal point, shifted by ``offset_px = (dy, dx)`` (a
    calibration of a real rig's misalignment)."""
    h, w = size
    f = (w / 2) / math.tan(math.radians(cam_hfov_deg) / 2)
    extent = 2 * f * math.tan(math.radians(tof_fov_deg) / 2)
    zone = max(1, round(extent / zones))
    top = round(h / 2 - zones * zone / 2 + offset_px[0])
    left = round(w / 2 - zones * zone / 2 + offset_px[1])
    if top < 0 or left < 0 or top + zones * zone > h or left + zones * zone > w:
        raise ValueError(
            f"the {tof_fov_deg} deg ToF footprint ({zones * zone} px) does not fit a {h}x{w} image with a "
            f"{cam_hfov_deg} deg camera: widen the camera field of view or lower the offset {offset_px}"
        )
    return Footprint(top=top, left=left, zone_h=zone, zone_w=zone, zones=zones)


def sensor_rays(params: SensorParams) -> np.ndarray:
    """Sensor-frame sub-ray directions ``[zones*zones, sub*sub, 3]`` (x right, y down, z = 1), zones
    row-major from the top-left as seen by the camera."""
    z, s = params.zones, params.sub
    half = math.tan(math.radians(params.fov_deg) / 2)
    n = z * s
    c = ((np.arange(n) + 0.5) / n * 2 - 1) * half  # sub-ray centres on the image plane
    vv, uu = np.meshgrid(c, c, indexing="ij")
    grid = np.stack([uu, vv, np.ones_like(uu)], -1)  # [n, n, 3]
    grid = grid.reshape(z, s, z, s, 3).transpose(0, 2, 1, 3, 4).reshape(z * z, s * s, 3)
    return grid.astype(np.float32)


def measure(
    depth: np.ndarray,
    ray_norm: np.ndarray,
    ir_albedo: np.ndarray,
    cos_inc: np.ndarray,
    params: SensorParams,
    rngs: list[np.random.Generator],
    dropout: float | None = None,
    noise_scale: float = 1.0,
    ambient: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Zone readings from sub-ray hits.

    ``depth``: z-depth of each sub-ray ``[n, Z, S]`` (metres); ``ray_norm``: ``|d|`` of the sub-ray
    directions ``[Z, S]`` (range = depth * ray_norm); ``ir_albedo`` and ``cos_inc`` (|cos| of the
    incidence angle) ``[n, Z, S]``; one generator per frame. ``dropout`` overrides ``params.dropout``;
    ``noise_scale`` multiplies the noise; ``ambient`` (ambient infrared) multiplies ``detect_signal`` and
    ``ref_signal``, shortening the range and raising the noise. Returns ``distance_mm`` (int16) and
    ``status`` (uint8), each ``[n, Z]``.
    """
    n, nz, ns = depth.shape
    rng_range = depth * ray_norm
    signal = ir_albedo * np.maximum(cos_inc, 0.05) / np.maximum(rng_range, 0.01) ** 2
    signal = np.where(rng_range <= params.max_range_m, signal, 0.0)
    # Cluster mass of every sub-ray's distance: sum of signal within +-cluster_m.
    near = np.abs(depth[..., :, None] - depth[..., None, :]) <= params.cluster_m  # [n, Z, S, S]
    mass = (near.astype(np.float32) @ signal[..., None].astype(np.float32))[..., 0]
    best = np.argmax(mass, axis=-1)  # strongest target
    sel = np.take_along_axis(near, best[..., None, None], 2)[..., 0, :] & (signal > 0)  # [n, Z, S]
    w = signal * sel
    wsum = w.sum(-1)
    safe = np.maximum(wsum, 1e-12)
    dist = (w * depth).sum(-1) / safe
    spread = np.sqrt(np.maximum((w * depth**2).sum(-1) / safe - dist**2, 0.0))
    sig = wsum / ns  # mean signal per sub-ray of the target

    factor = np.sqrt(params.ref_signal * ambient / np.maximum(sig, 1e-12)).clip(1.0, None)
    sigma_mm = (params.noise_abs_mm + params.noise_rel * dist * 1000.0) * factor * noise_scale
    noise = np.stack([r.standard_normal(nz) for r in rngs]) if n else np.zeros((0, nz))
    drop_u = np.stack([r.random(nz) for r in rngs]) if n else np.zeros((0, nz))
    garbage = np.stack([r.integers(15, 36, nz) for r in rngs]) if n else np.zeros((0, nz))
    mm = dist * 1000.0 + noise * sigma_mm

    p_drop = params.dropout if dropout is None else dropout
    status = np.full((n, nz), STATUS_VALID, np.uint8)
    status[spread > params.merged_m] = STATUS_VALID_MERGED
    status[factor > params.sigma_limit] = STATUS_SIGMA_HIGH
    status[drop_u < p_drop] = STATUS_DROPOUT
    no_target = (sig < params.detect_signal * ambient) | (mm > params.max_range_m * 1000.0) | (mm <= 0)
    status[no_target] = STATUS_NO_TARGET
    mm = np.where(no_target, garbage, mm)
    return np.rint(mm).clip(0, 32767).astype(np.int16), status
