"""`mcutrain demo depth --train-flights ... --test-flights ...` on a small slice of the real flights: the
printed table and the JSON hold every baseline and the adapted model per flight type, and the plan
counts the replay reservoir (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_shared

from mcutrain import api
from mcutrain.cli import main
from mcutrain.train.app_memory import link_memory, replay_sample_bytes
from mcutrain.train.update_plan import LinkApp, LossConfig, LossKind, UpdatePlan, ZoneSpec

ROWS = ("pretrained", "zone_mean", "scale_shift", "blanked", "adapted, time order")
GROUPS = ("approach", "object", "rotate", "all")


def test_demo_on_real_flights_prints_every_baseline_per_flight_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = require_shared("datasets", "tof_drone_flights")
    out = tmp_path / "res.json"
    argv = ["demo", "depth", "--data", str(data), "--train-flights", "A0,O0,R0", "--test-flights", "A1,O1,R1"]
    assert main([*argv, "--quick", "--out", str(tmp_path / "demo"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert set(ROWS) <= set(res["zone_rmse_m"])
    for row in ROWS:
        assert all(isinstance(res["zone_rmse_m"][row][g], float) for g in GROUPS), row
        assert f"| {row} |" in printed
    assert "| model | approach | object | rotate | all |" in printed
    assert res["recipe"]["orders"] == ["time"]  # time order by default
    assert res["reservoir_bytes"] == res["serial_link_bytes"]["replay"] > 0
    assert res["memory_categories"]["serial_link"] >= res["reservoir_bytes"]
    assert res["peak_ram_bytes"] <= res["budget_bytes"]
    assert res["ratio_to_best_baseline"] > 0


def test_the_plan_counts_the_reservoir() -> None:
    g = api.load("depth")
    loss = LossConfig(LossKind.MSE, masked=True, zone=ZoneSpec(12, 20, 3, 3))
    plans = {k: api.plan(g, None, "last-layer", loss=loss, app=LinkApp.make(replay_slots=k)) for k in (0, 5)}
    per = replay_sample_bytes(48 * 64, 64)
    assert per == 48 * 64 + 128 + 8 + 16
    assert plans[5].memory.peak_ram_bytes - plans[0].memory.peak_ram_bytes == 5 * per + 12
    assert link_memory(g, plans[5].plan, plans[5].plan.app)["replay"] == 5 * per + 12
    assert "replay" not in link_memory(g, plans[0].plan, plans[0].plan.app)
    d = plans[5].plan.to_dict()
    assert d["app"]["replay_slots"] == 5 and "replay_slots" not in plans[0].plan.to_dict()["app"]
    assert UpdatePlan.from_dict(d) == plans[5].plan
