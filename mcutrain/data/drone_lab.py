"""Synthetic scenes matched to the real drone flights: :mod:`mcutrain.data.scenes` with the domains of
``datasets/drone_lab_depth.toml`` (a large lab hall; a fifth of the frames with the camera a few
centimetres above the floor, as before take-off and after landing). The camera keeps the scenes'
default 79.3 deg field of view, the one :mod:`mcutrain.data.footprint_fit` finds on the recordings."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mcutrain.data.scenes import DomainParams, SceneBatch
from mcutrain.data.scenes import generate as generate_domain
from mcutrain.data.shared import read_manifest

MANIFEST = "drone_lab_depth"


def domains(manifest: dict[str, Any] | None = None) -> dict[str, DomainParams]:
    """The manifest's domains by name (``like = "other"`` starts from another domain's values)."""
    m = manifest or read_manifest(MANIFEST)
    raw = m["domains"]
    out: dict[str, DomainParams] = {}
    for name, d in raw.items():
        fields = dict(raw[d["like"]]) if "like" in d else {}
        fields.update({k: v for k, v in d.items() if k != "like"})
        out[name] = DomainParams.from_dict({**fields, "name": f"drone_lab_{name}"})
    return out


def generate(n: int, seed: int = 0, size: tuple[int, int] = (48, 64)) -> SceneBatch:
    """``n`` frames: the first ``round(n * ground_fraction)`` from the ground domain, the rest in the air
    (frame i depends only on the seed and i within its part). Shuffle them for training."""
    m = read_manifest(MANIFEST)
    dom = domains(m)
    k = round(n * float(m["ground_fraction"]))
    parts = [generate_domain(dom["ground"], k, seed, size), generate_domain(dom["air"], n - k, seed, size)]
    keys = ("image", "depth", "tof_mm", "tof_status", "tof_valid")
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in keys}
    return dataclasses.replace(parts[1], domain="drone_lab", **cat)
