"""Writing a project folder safely: all or nothing, and never over someone else's files.

A project is written into a fresh staging folder beside its destination and moved into place only when
everything succeeded, so an error (a plan that does not fit, a full disk) leaves nothing half-written. The
destination may be new, empty, or an earlier mcutrain project (its generated files are replaced; files the
user added, such as pulled parameters, stay); any other non-empty folder is refused.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mcutrain.train.update_plan import PlanError

#: Files that mark a folder as an mcutrain project (host or firmware).
PROJECT_MARKERS = ("mt_model.c", "firmware.json")


def is_project(folder: Path) -> bool:
    return any((folder / m).is_file() for m in PROJECT_MARKERS)


def check_destination(out: Path) -> None:
    """Raise :class:`PlanError` unless ``out`` may receive a project."""
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise PlanError(f"cannot create {out}: {parent} is a file, not a folder")
    if out.exists() and not out.is_dir():
        raise PlanError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_project(out):
        raise PlanError(
            f"{out} is not empty and holds no mcutrain project: emit into a new or empty folder (nothing "
            "there was changed)"
        )


@contextlib.contextmanager
def staged(out_dir: str | Path) -> Iterator[Path]:
    """A fresh folder to write the project of ``out_dir`` into; moved into place when the block ends
    normally, removed when it raises."""
    out = Path(out_dir).resolve()
    check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        for entry in stage.iterdir():
            dest = out / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            entry.rename(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
