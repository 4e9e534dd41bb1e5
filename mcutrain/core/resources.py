"""Where the non-Python parts of mcutrain live: the templates (``codegen/``), the C sources (``firmware/``)
and the dataset manifests (``datasets/``). A wheel carries them inside the package as ``_codegen``,
``_firmware`` and ``_datasets`` (pyproject.toml); a source checkout has them beside the package."""

from __future__ import annotations

from pathlib import Path

import mcutrain

#: The resource folders of the repository.
RESOURCES = ("codegen", "firmware", "datasets")


def package_dir() -> Path:
    return Path(mcutrain.__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``codegen``, ``firmware`` or ``datasets``: inside an installed wheel, else the source checkout."""
    if name not in RESOURCES:
        raise ValueError(f"unknown resource {name!r}: one of {', '.join(RESOURCES)}")
    inside = package_dir() / f"_{name}"
    return inside if inside.is_dir() else package_dir().parent / name
