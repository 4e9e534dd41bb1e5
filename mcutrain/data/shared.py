"""Where the real models and recordings live, and the dataset manifests that describe them.

The third-party files (models, recordings) are never copied into the repository: they sit in a
``shared/data`` folder beside it (``<repo>/../shared/data``) or wherever ``MCUTRAIN_SHARED_DATA`` points.
The manifests (``datasets/*.toml``: source files, preprocessing constants, class order, splits) are
ours: the repository's ``datasets/`` folder, or ``mcutrain/_datasets`` in an installed wheel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from mcutrain.core.resources import package_dir, resource_dir

ENV_VAR = "MCUTRAIN_SHARED_DATA"


class SharedDataMissing(FileNotFoundError):
    """A file of the shared data folder is not there; the message says where it was looked for."""


def shared_data_dir() -> Path | None:
    """``$MCUTRAIN_SHARED_DATA`` if set, else ``<repo>/../shared/data`` if it exists, else ``None``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    candidate = package_dir().parent.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def shared_path(*parts: str) -> Path:
    """A file or folder inside the shared data folder, e.g. ``shared_path("models", "x.tflite")``.

    Raises :class:`SharedDataMissing` (with the places searched) when it is absent."""
    root = shared_data_dir()
    rel = Path(*parts)
    if root is None:
        raise SharedDataMissing(
            f"shared data folder not found (looked for {package_dir().parent.parent / 'shared' / 'data'}): "
            f"set {ENV_VAR} to the folder that holds models/ and datasets/, or pass the path of {rel}"
        )
    path = root / rel
    if not path.exists():
        raise SharedDataMissing(
            f"{rel} is not in the shared data folder {root} ({ENV_VAR} or ../shared/data)"
        )
    return path


def manifests_dir() -> Path:
    """The dataset manifests: ``mcutrain/_datasets`` in a wheel, the repository's ``datasets/`` otherwise."""
    return resource_dir("datasets")


def read_manifest(name: str) -> dict[str, Any]:
    """The TOML manifest ``datasets/<name>.toml`` as a dict."""
    path = manifests_dir() / f"{name}.toml"
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"dataset manifest {path} not found (is mcutrain installed completely?)"
        ) from None
