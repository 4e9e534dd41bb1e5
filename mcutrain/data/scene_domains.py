"""Domains of the procedural indoor scenes of :mod:`mcutrain.data.scenes`: :class:`DomainParams`, the
distribution of scenes, lighting and sensors; ``DOMAINS["A"]`` is the pre-training distribution and
``DOMAINS["B"]`` "the field" (corridors and cluttered small rooms, dim light, flat low-contrast textures,
a raw-ish camera with low gamma, strong vignetting and blur, a low flying drone close to obstacles).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Range = tuple[float, float]
IntRange = tuple[int, int]

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
