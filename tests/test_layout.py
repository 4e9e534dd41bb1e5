"""The package's layout (docs/design.md, "Layout by stage"): imports run one way down the stages, and
every module stays small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mcutrain"
#: Stage of each subpackage: a module may import its own stage and earlier ones, never later ones.
STAGES = {
    "core": 0, "frontends": 1, "zoo": 2, "data": 2, "train": 3, "boards": 4, "emit": 5, "host": 6,
    "demos": 7, "cli": 8, "api": 8, "__main__": 9,
}  # fmt: skip
MAX_LINES = 420  # "about 400"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def _stage(path: Path) -> int:
    return STAGES[path.relative_to(PACKAGE).with_suffix("").parts[0]]


def test_imports_run_down_the_stages() -> None:
    upward = []
    for f in _modules():
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("mcutrain.")
            ):
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom) and node.level:
                names = ["relative"]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("mcutrain.")]
            for name in names:
                assert name != "relative", f"{f}:{node.lineno}: use absolute imports (mcutrain.<stage>...)"
                target = name.split(".")[1]
                if STAGES.get(target, 0) > _stage(f):
                    upward.append(f"{f.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert not upward, "imports against the stage order:\n" + "\n".join(upward)


def test_every_stage_is_known() -> None:
    assert {_stage(f) for f in _modules()}  # raises KeyError for a package missing from STAGES


def test_modules_are_small() -> None:
    big = {
        str(f.relative_to(PACKAGE)): n
        for f in _modules()
        if (n := len(f.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"
