"""Synthetic scenes: ray caster geometry, ToF sensor model and footprint, determinism, domains, speed."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pytest

from mcutrain.data import raycast as rc
from mcutrain.data.scene_domains import DOMAINS, DomainParams
from mcutrain.data.scenes import DEFAULT_SIZE, SceneBatch, generate, load_manifest
from mcutrain.data.tof import (
    STATUS_CODES,
    STATUS_DROPOUT,
    STATUS_NO_TARGET,
    STATUS_VALID,
    SensorParams,
    footprint,
    measure,
    sensor_rays,
)

MANIFEST = Path(__file__).resolve().parents[1] / "datasets" / "synthetic_depth.toml"
N = 48


@pytest.fixture(scope="module")
def batches() -> dict[str, SceneBatch]:
    return {d: generate(d, N, seed=7) for d in "AB"}


# --- ray caster -------------------------------------------------------------------------------------


def _empty_geo(
    room: list[list[float]], boxes: list | None = None, cyls: list | None = None
) -> rc.SceneGeometry:
    return rc.SceneGeometry(
        room=np.array([room], np.float32),
        boxes=np.array([boxes or []], np.float32).reshape(1, -1, 2, 3),
        cylinders=np.array([cyls or []], np.float32).reshape(1, -1, 5),
    )


def test_fronto_parallel_wall_has_constant_z_depth() -> None:
    geo = _empty_geo([[0, 0, 0], [20, 10, 3]])
    rays = rc.pinhole_rays((12, 16), 70.0)
    rot = rc.camera_to_world(np.zeros(1), np.zeros(1), np.zeros(1))
    dirs = np.einsum("nij,pj->npi", rot, rays)
    hits = rc.cast(np.array([[10.0, 5.0, 1.0]]), dirs, geo)
    np.testing.assert_allclose(hits.t, 2.0, rtol=1e-5)  # z-depth, not ray length
    assert np.all(hits.surface == 5)  # the z+ wall
    np.testing.assert_allclose(hits.normal[0], np.tile([0, 0, -1], (rays.shape[0], 1)), atol=1e-6)


def test_box_and_cylinder_hits() -> None:
    geo = _empty_geo(
        [[-10, -1, -10], [10, 5, 10]],
        boxes=[[[-0.5, 0, 2.0], [0.5, 1, 3.0]]],
        cyls=[[3.0, 0.0, 0.5, 0.0, 2.0]],
    )
    origin = np.array([[[0.0, 0.5, 0.0]] * 3 + [[3.0, 4.0, 0.0]]])  # per-ray origins
    dirs = np.array([[[0, 0, 1], [3, 0, 0], [0, 0, -1], [0, -2, 0]]], np.float32)
    h = rc.cast(origin, dirs, geo)
    # box front face at z = 2; cylinder side at x = 2.5; the z- wall; the cylinder's top cap from above
    np.testing.assert_allclose(h.t[0], [2.0, 2.5 / 3, 10.0, 1.0], rtol=1e-5)
    assert list(h.surface[0]) == [6, 7, 4, 7]
    np.testing.assert_allclose(h.normal[0], [[0, 0, -1], [-1, 0, 0], [0, 0, 1], [0, 1, 0]], atol=1e-5)
    origin = np.array([[0.0, 0.5, 0.0]])
    seg = np.array([[[0, 0, 4.0], [0, 0, 1.5]]], np.float32)
    assert list(rc.occluded(origin, seg, geo)[0]) == [True, False]


# --- ToF sensor ---------------------------------------------------------------------------------------


def test_footprint_geometry() -> None:
    fp = footprint(DEFAULT_SIZE, DOMAINS["A"].cam_hfov_deg)
    assert (fp.top, fp.left, fp.zone_h, fp.zone_w, fp.height, fp.width) == (8, 16, 4, 4, 32, 32)
    wide = footprint((48, 64), 90.0)  # f = 32 px -> extent 26.5 px -> 3-px zones, centred
    assert (wide.zone_h, wide.top, wide.left) == (3, 12, 20)
    shifted = footprint((48, 64), 90.0, offset_px=(-2, 3))
    assert (shifted.top, shifted.left) == (10, 23)
    with pytest.raises(ValueError, match="does not fit"):
        footprint((48, 64), 30.0)


def test_sensor_subrays_project_into_their_footprint_zone() -> None:
    dp, sp = DOMAINS["A"], SensorParams()
    fp = footprint(DEFAULT_SIZE, dp.cam_hfov_deg, sp.fov_deg, sp.zones)
    f = (DEFAULT_SIZE[1] / 2) / math.tan(math.radians(dp.cam_hfov_deg) / 2)
    rays = sensor_rays(sp)  # [64, S, 3], z = 1
    col = rays[..., 0] * f + DEFAULT_SIZE[1] / 2
    row = rays[..., 1] * f + DEFAULT_SIZE[0] / 2
    for z in range(sp.zones * sp.zones):
        (r0, r1), (c0, c1) = ((s.start, s.stop) for s in fp.zone_slices(z // sp.zones, z % sp.zones))
        assert np.all((row[z] > r0) & (row[z] < r1) & (col[z] > c0) & (col[z] < c1)), z


def _measure(depth: float, albedo: float = 0.8, n: int = 200, **kw: float) -> tuple[np.ndarray, np.ndarray]:
    sp = SensorParams()
    s = sp.sub * sp.sub
    d = np.full((n, 64, s), depth)
    norm = np.linalg.norm(sensor_rays(sp), axis=-1)
    rngs = [np.random.default_rng(i) for i in range(n)]
    return measure(d, norm, np.full_like(d, albedo), np.ones_like(d), sp, rngs, **kw)


def test_sensor_model_statuses_and_noise() -> None:
    mm, st = _measure(2.0, dropout=0.0)
    assert np.all(st == STATUS_VALID)
    sp = SensorParams()
    sigma = sp.noise_abs_mm + sp.noise_rel * 2000
    assert abs(mm.mean() - 2000) < 2 and 0.8 * sigma < mm.std() < 1.2 * sigma
    _, st = _measure(4.5)
    assert np.all(st == STATUS_NO_TARGET)  # beyond the 4 m range limit
    _, st = _measure(3.5, albedo=0.01, dropout=0.0)
    assert np.all(st == STATUS_NO_TARGET)  # too dark to detect
    _, st = _measure(1.0, dropout=1.0)
    assert np.all(st == STATUS_DROPOUT)


# --- generator ----------------------------------------------------------------------------------------


def test_shapes_and_dtypes(batches: dict[str, SceneBatch]) -> None:
    h, w = DEFAULT_SIZE
    for b in batches.values():
        assert len(b) == N
        for name, dtype, shape in [
            ("image", np.uint8, (N, h, w)),
            ("depth", np.float32, (N, h, w)),
            ("tof_mm", np.int16, (N, 8, 8)),
            ("tof_status", np.uint8, (N, 8, 8)),
            ("tof_valid", np.bool_, (N, 8, 8)),
        ]:
            a = getattr(b, name)
            assert a.dtype == dtype and a.shape == shape, name


def test_deterministic_and_prefix_stable() -> None:
    a = generate("B", 6, seed=3)
    b = generate("B", 6, seed=3, chunk=4)
    c = generate("B", 3, seed=3)
    d = generate("B", 3, seed=4)
    for k in ("image", "depth", "tof_mm", "tof_status"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
        assert np.array_equal(getattr(a, k)[:3], getattr(c, k)), k
    assert not np.array_equal(c.depth, d.depth)


def test_depth_positive_finite(batches: dict[str, SceneBatch]) -> None:
    for b in batches.values():
        assert np.all(np.isfinite(b.depth)) and b.depth.min() > 0.05
        assert b.depth.max() < 30.0
        assert b.image.std() > 10  # not blank


def test_tof_invariants(batches: dict[str, SceneBatch]) -> None:
    for dom, b in batches.items():
        assert set(np.unique(b.tof_status)) <= set(STATUS_CODES)
        assert np.array_equal(b.tof_valid, np.isin(b.tof_status, (5, 9)))
        assert b.tof_valid.mean() > 0.3, dom
        valid_mm = b.tof_mm[b.tof_valid]
        assert valid_mm.min() > 0 and valid_mm.max() <= 4000
        # Zones that see nothing nearer than 4.3 m, even one pixel around them, are invalid.
        fp = b.footprint
        pad = np.pad(b.depth, ((0, 0), (1, 1), (1, 1)), mode="edge")
        near = np.min([fp.zone_blocks(pad[:, i : i + b.depth.shape[1], j : j + b.depth.shape[2]]).min(-1)
                       for i in range(3) for j in range(3)], axis=0)  # fmt: skip
        far = near > 4.3
        assert np.all(~b.tof_valid[far]), dom


def test_tof_agrees_with_dense_depth(batches: dict[str, SceneBatch]) -> None:
    sp = SensorParams()
    for dom, b in batches.items():
        blocks = b.footprint.zone_blocks(b.depth)
        med = np.median(blocks, -1)
        flat = (b.tof_status == STATUS_VALID) & (blocks.std(-1) < 0.03 * blocks.mean(-1))
        assert flat.sum() > 200, dom
        err = np.abs(b.tof_mm / 1000.0 - med)[flat]
        rel = err / med[flat]
        assert rel.mean() < 0.06, (dom, rel.mean())
        # The noise model: sigma = (abs + rel * d) * weak-signal factor (<= sigma_limit) * domain scale.
        scale = DOMAINS[dom].tof_noise_scale * sp.sigma_limit
        bound = 3 * scale * (sp.noise_abs_mm / 1000 + sp.noise_rel * med[flat]) + 0.05 * med[flat]
        assert np.mean(err <= bound) > 0.97, dom
        assert np.mean(err <= 0.10 * med[flat] + 0.05) > 0.9, dom


def test_domains_differ(batches: dict[str, SceneBatch]) -> None:
    a, b = batches["A"], batches["B"]
    assert a.image.mean() - b.image.mean() > 20  # B is dimmer

    def texture(img: np.ndarray) -> float:  # mean |horizontal gradient| at half resolution (less noise)
        x = img.astype(np.float32)
        x = x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2).mean((2, 4))
        return float(np.abs(np.diff(x, axis=-1)).mean())

    assert texture(a.image) > 1.15 * texture(b.image)  # A: high-contrast stripes and checks
    assert np.median(b.depth) < 0.8 * np.median(a.depth)  # B is cluttered and close


def test_domain_params_validation() -> None:
    with pytest.raises(ValueError, match="texture_probs"):
        DomainParams(name="x", texture_probs=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown domain parameters"):
        DomainParams.from_dict({"name": "x", "bogus": 1})
    c = dataclasses.replace(DOMAINS["A"], name="C", n_people=(0, 0), n_boxes=(0, 0), near_object_prob=0.0)
    assert len(generate(c, 2, seed=0)) == 2


def test_manifest_matches_code() -> None:
    m = load_manifest(MANIFEST)
    assert m["domains"] == DOMAINS
    assert m["sensor"] == SensorParams()
    assert tuple(m["resolution"]) == DEFAULT_SIZE
    fpm = m["footprint"]
    fp = footprint(DEFAULT_SIZE, fpm["cam_hfov_deg"], fpm["tof_fov_deg"], fpm["zones"])
    assert (fp.top, fp.left, fp.zone_h, fp.zone_w) == (fpm["top"], fpm["left"], fpm["zone_h"], fpm["zone_w"])


def test_throughput() -> None:
    generate("B", 4, seed=0)  # warm-up
    t0 = time.perf_counter()
    n = 64
    generate("B", n, seed=1)
    fps = n / (time.perf_counter() - t0)
    assert fps > 20, f"{fps:.1f} frames/s"
