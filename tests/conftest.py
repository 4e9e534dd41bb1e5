"""What every test shares: where the shared data is, and the checks that the tools a test needs exist.

The shared data (``../shared/data``: real models and recordings, never copied into the repository) is
found the way the package finds it (:func:`mcutrain.data.shared.shared_data_dir`: ``$MCUTRAIN_SHARED_DATA``,
else beside the checkout). A test that needs a file of it, or a tool, skips with a message that says what
is missing; CI has both, so a skip there is a set-up error, not a pass.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mcutrain.boards.targets import Target, load_target
from mcutrain.data.shared import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
#: ../shared/data (a path even when it is absent: tests check with require_shared)
SHARED = shared_data_dir() or REPO.parent / "shared" / "data"
MODELS = SHARED / "models"
DATASETS = SHARED / "datasets"


def require_shared(*parts: str) -> Path:
    """The path of a file or folder of the shared data; skips the test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (../shared/data beside the repository, or $MCUTRAIN_SHARED_DATA)")
    return p


def require_tools(*names: str) -> None:
    """Skip unless every program in ``names`` is on the PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (see scripts/setup.sh)")


def require_board(board: str | Target, qemu: bool = True) -> Target:
    """The target, after checking its cross compiler and objdump (and QEMU when ``qemu``) are installed."""
    t = load_target(board) if isinstance(board, str) else board
    tools = [t.tool("gcc"), t.tool("objdump")]
    if qemu and t.qemu is not None:
        tools.append(t.qemu.binary)
    require_tools(*tools)
    return t
