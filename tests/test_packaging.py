"""`pip install .` (not editable) gives a working mcutrain that carries the firmware and templates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "site"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-compile",
            "-q",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    pkg = target / "mcutrain"
    assert (pkg / "_firmware" / "runtime" / "include" / "mt_kernels.h").is_file()
    assert list((pkg / "_firmware" / "runtime" / "src").glob("*.c"))
    assert (pkg / "_codegen").is_dir()
    assert (target / "bin" / "mcutrain").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", "import mcutrain, sys; print(mcutrain.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.stdout.strip().startswith(str(target)), out
    cli = subprocess.run(
        [sys.executable, "-m", "mcutrain", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert cli.returncode == 0 and "plan" in cli.stdout
