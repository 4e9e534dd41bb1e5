"""Snapshot of the C emitted for a 3-layer model (reviewed by a person; see tests/snapshots/).

A change to the generator that alters the output fails here; after reviewing the new output, refresh
the snapshot with `MCUTRAIN_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_snapshot.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from graphs import tiny_mlp

from mcutrain.emit.model_c import emit
from mcutrain.train.update_plan import LayerUpdate, OptimizerConfig, OptimizerKind, UpdatePlan

SNAP = Path(__file__).parent / "snapshots" / "tiny_mlp"


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
    if os.environ.get("MCUTRAIN_UPDATE_SNAPSHOTS"):
        (SNAP / name).write_text(got)
    assert got == (SNAP / name).read_text(), f"{name} changed: review the diff, then refresh the snapshot"
