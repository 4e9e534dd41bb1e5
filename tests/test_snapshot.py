"""Snapshots of the generated C.

* ``tiny_mlp``: the full text of a 3-layer model's C, reviewed by a person (tests/snapshots/tiny_mlp/);
* ``generated.json``: SHA-256 of every generated file (model, parameters, main.c, Makefiles, cluster plan)
  of 8 models x up to 8 projects each (tests/snapshot_cases.py: host, self-test on Arm, rv32 and the PULP
  cluster, GAP9 SDK, fp16, serial link), first recorded from the code before the stage layout of the
  package and its typed kernel calls, which produced the same bytes.

A change to the generator that alters the output fails here; after reviewing the new output, refresh
with `MCUTRAIN_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_snapshot.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import require_shared
from graphs import tiny_mlp
from snapshot_cases import cases, digests, emit_all

from mcutrain.emit.model_c import emit
from mcutrain.train.update_plan import LayerUpdate, OptimizerConfig, OptimizerKind, UpdatePlan

SNAP = Path(__file__).parent / "snapshots"
UPDATE = bool(os.environ.get("MCUTRAIN_UPDATE_SNAPSHOTS"))


@pytest.mark.parametrize("name", ["mt_model.c", "mt_model.h", "mt_params.c"])
def test_emitted_c_matches_snapshot(name: str, tmp_path: Path) -> None:
    g = tiny_mlp()
    plan = UpdatePlan(
        g.name,
        g.fingerprint(),
        "snapshot",
        (LayerUpdate.bias_only("fc1"), LayerUpdate.weights("fc2", 1)),
        optimizer=OptimizerConfig(OptimizerKind.MOMENTUM, lr=0.05),
    )
    emit(g, plan, tmp_path)
    got = (tmp_path / name).read_text()
    if UPDATE:
        (SNAP / "tiny_mlp" / name).write_text(got)
    assert got == (SNAP / "tiny_mlp" / name).read_text(), f"{name} changed: review the diff, then refresh"


@pytest.mark.parametrize("case", [name for name, _ in cases()])
def test_generated_files_match_their_digests(case: str, tmp_path: Path) -> None:
    require_shared("models")
    make = dict(cases())[case]
    g, plan = make()
    emit_all(case, g, plan, tmp_path / case)
    got = digests(tmp_path)
    path = SNAP / "generated.json"
    want = json.loads(path.read_text())
    if UPDATE:
        path.write_text(json.dumps({**{k: v for k, v in want.items() if not k.startswith(f"{case}/")}, **got},
                                   indent=1, sort_keys=True) + "\n")  # fmt: skip
        return
    mine = {k: v for k, v in want.items() if k.startswith(f"{case}/")}
    changed = sorted(k for k in set(mine) | set(got) if mine.get(k) != got.get(k))
    assert not changed, f"generated files changed: {changed[:8]}; review them, then refresh the snapshot"
