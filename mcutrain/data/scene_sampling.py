"""Sampling of the procedural indoor scenes of :mod:`mcutrain.data.scenes`, each from its own generator:
a room or a corridor with boxes, pillars, wall cabinets and people-sized cylinders, a camera pose, lights
and a procedural material per surface (:func:`sample_scene` returns a :class:`Scene`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcutrain.data import raycast as rc
from mcutrain.data.scene_domains import MAX_BOXES, MAX_LIGHTS, MAX_PEOPLE, TEXTURES, DomainParams, Range


@dataclass
class Scene:
    room: np.ndarray  # [2, 3]
    boxes: np.ndarray  # [MAX_BOXES, 2, 3]
    cyls: np.ndarray  # [MAX_PEOPLE, 5]
    cam: np.ndarray  # [3]
    ypr: np.ndarray  # [3] yaw, pitch, roll
    lights: np.ndarray  # [3, 4] x, y, z, power (power 0 = unused)
    sun: np.ndarray  # [4] direction towards the light (unit), power
    ambient: float
    mat: np.ndarray  # [S, NMAT] materials per surface
    cam_params: np.ndarray  # [4] exposure, gamma, vignetting, blur
    n_boxes: int  # used box slots (the first ones)
    n_cyls: int


# material columns
ALB, IR, KIND, FREQ, CON, AX, PH = 0, 1, 2, 3, 4, slice(5, 8), slice(8, 11)
NMAT = 11


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _materials(rng: np.random.Generator, dp: DomainParams) -> np.ndarray:
    """Materials ``[6 + MAX_BOXES + MAX_PEOPLE, NMAT]``: room faces, box slots, cylinder slots."""
    ns = rc.ROOM_FACES + MAX_BOXES + MAX_PEOPLE
    lo = np.full(ns, dp.object_albedo[0])
    hi = np.full(ns, dp.object_albedo[1])
    for f, r in [(0, dp.wall_albedo), (1, dp.wall_albedo), (4, dp.wall_albedo), (5, dp.wall_albedo),
                 (rc.FLOOR, dp.floor_albedo), (rc.CEILING, dp.ceiling_albedo)]:  # fmt: skip
        lo[f], hi[f] = r
    m = np.zeros((ns, NMAT))
    m[:, ALB] = rng.uniform(lo, hi)
    m[:, IR] = np.clip(m[:, ALB] * rng.uniform(*dp.ir_albedo_jitter, ns), 0.03, 1.0)
    m[:, KIND] = rng.choice(len(TEXTURES), size=ns, p=dp.texture_probs)
    m[:, FREQ] = rng.uniform(*dp.texture_freq, ns)
    m[:, CON] = rng.uniform(*dp.texture_contrast, ns)
    ax = np.where(rng.random((ns, 1)) < 0.3, rng.normal(size=(ns, 3)), np.eye(3)[rng.integers(0, 3, ns)])
    m[:, AX] = ax / np.linalg.norm(ax, axis=1, keepdims=True)
    m[:, PH] = rng.uniform(0, 1, (ns, 3))
    if rng.random() < 0.7:  # the walls of one room usually share a finish
        m[[1, 4, 5]] = m[0]
    return m


def sample_scene(rng: np.random.Generator, dp: DomainParams) -> Scene:
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
    return Scene(
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
