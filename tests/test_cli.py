"""The `mcutrain` command line, run as users run it (a subprocess), and its errors."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from graphs import small_cnn

from mcutrain.core.int8_scratch import S8_COL_BYTES
from mcutrain.core.units import parse_bytes
from mcutrain.emit.host_build import build_host
from mcutrain.train.update_plan import UpdatePlan


def mcutrain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcutrain", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def cnn_json(tmp_path: Path) -> Path:
    p = tmp_path / "cnn.json"
    p.write_text(small_cnn().to_json())
    return p


def test_plan_writes_the_documented_json(tmp_path: Path, cnn_json: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "calib.npz",
        x=rng.standard_normal((16, 2, 8, 8)).astype(np.float32),
        y=rng.integers(0, 8, 16),
    )
    out, png = tmp_path / "plan.json", tmp_path / "mem.png"
    r = mcutrain(
        "plan",
        str(cnn_json),
        "--budget",
        "12KB",
        "--calib",
        str(tmp_path / "calib.npz"),
        "--optimizer",
        "momentum",
        "--out",
        str(out),
        "--plot",
        str(png),
    )
    assert r.returncode == 0, r.stderr
    assert "peak RAM" in r.stdout and "layer" in r.stdout
    d = json.loads(out.read_text())
    assert d["format"] == "mcutrain-plan/2"
    assert d["model"] == {"source": str(cnn_json), "input_shape": [2, 8, 8]}
    plan, mem = d["plan"], d["memory"]
    for key in ("budget_bytes", "layers", "model_hash", "stack_reserve_bytes", "optimizer", "loss"):
        assert key in plan
    for key in ("peak_ram_bytes", "arena_bytes", "flash_bytes", "categories"):
        assert key in mem
    assert plan["budget_bytes"] == 12 * 1024 and mem["peak_ram_bytes"] <= plan["budget_bytes"]
    assert sum(mem["categories"].values()) == mem["peak_ram_bytes"]
    assert mem["categories"]["stack_reserve"] == plan["stack_reserve_bytes"] == 2048
    assert {lu["update"] for lu in plan["layers"]} <= {"frozen", "bias", "weight"}
    assert all({"name", "update", "channels"} <= set(lu) for lu in plan["layers"])
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_infeasible_budget_exits_nonzero_with_minimum(tmp_path: Path, cnn_json: Path) -> None:
    r = mcutrain(
        "plan", str(cnn_json), "--budget", "1KB", "--score", "proxy", "--out", str(tmp_path / "p.json")
    )
    assert r.returncode == 2
    assert "Smallest budget that would work" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("strategy", ["full", "last-layer", "bias-only"])
def test_baseline_strategies(tmp_path: Path, cnn_json: Path, strategy: str) -> None:
    r = mcutrain("plan", str(cnn_json), "--strategy", strategy, "--out", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "p.json").read_text())["plan"]["strategy"] == strategy


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "no/such/model.tflite", "--budget", "8KB"], "does not exist"),
        (["plan", "nonsense_name", "--budget", "8KB"], "built-in model"),
        (["plan", "CNN", "--budget", "lots"], "cannot read a memory size"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, cnn_json: Path, args: list[str], message: str) -> None:
    args = [str(cnn_json) if a == "CNN" else a for a in args]
    r = mcutrain(*args, "--out", str(tmp_path / "p.json"))
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00garbage" * 100)
    r = mcutrain("plan", str(bad), "--budget", "8KB", "--out", str(tmp_path / "p.json"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "TFLite" in r.stderr
    badj = tmp_path / "g.json"
    badj.write_text('{"format": "mcutrain-graph/1", "nodes": [')
    r = mcutrain("inspect", str(badj))
    assert r.returncode == 2 and "not a valid mcutrain graph" in r.stderr


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
def test_plan_real_tflite_model(tmp_path: Path) -> None:
    model = SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite"
    r = mcutrain(
        "plan", str(model), "--budget", "16KB", "--score", "proxy", "--out", str(tmp_path / "p.json")
    )
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["memory"]["peak_ram_bytes"] <= 16 * 1024


def test_inspect_prints_the_graph(cnn_json: Path) -> None:
    r = mcutrain("inspect", str(cnn_json))
    assert r.returncode == 0 and "conv2d" in r.stdout and "softmax" in r.stdout


def test_emit_and_build(tmp_path: Path, cnn_json: Path) -> None:
    plan = tmp_path / "plan.json"
    assert mcutrain("plan", str(cnn_json), "--strategy", "last-layer", "--out", str(plan)).returncode == 0
    r = mcutrain("emit", str(plan), "--target", "host", "--out", str(tmp_path / "proj"))
    assert r.returncode == 0, r.stderr
    assert "arena" in r.stdout and (tmp_path / "proj" / "mt_model.c").exists()
    r = mcutrain("build", str(tmp_path / "proj"), "--fast")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "proj" / "libmt.so").exists() and (tmp_path / "proj" / "mt_train_host").exists()
    assert "libmt_fast.so" in r.stdout and (tmp_path / "proj" / "libmt_fast.so").exists()
    bad = mcutrain("build", str(tmp_path))
    assert bad.returncode == 2 and "not a generated project" in bad.stderr


def test_emit_rejects_a_plan_for_another_model(tmp_path: Path, cnn_json: Path) -> None:
    plan = tmp_path / "plan.json"
    assert mcutrain("plan", str(cnn_json), "--strategy", "full", "--out", str(plan)).returncode == 0
    other = tmp_path / "other.json"
    other.write_text(small_cnn(seed=5).to_json())
    r = mcutrain("emit", str(plan), "--model", str(other), "--out", str(tmp_path / "proj"))
    assert r.returncode == 2 and "re-run `mcutrain plan`" in r.stderr


def test_emit_options_that_do_not_apply_are_errors(tmp_path: Path, cnn_json: Path) -> None:
    plan = tmp_path / "plan.json"
    assert mcutrain("plan", str(cnn_json), "--strategy", "last-layer", "--out", str(plan)).returncode == 0
    r = mcutrain("emit", str(plan), "--target", "host", "--app", "link", "--out", str(tmp_path / "h"))
    assert r.returncode == 2 and "--app" in r.stderr and "board target" in r.stderr
    r = mcutrain(
        "emit", str(plan), "--target", "mps2-an386", "--val-slots", "2", "--out", str(tmp_path / "f")
    )
    assert r.returncode == 2 and "add --app link" in r.stderr
    link_opts = ["--app", "link", "--val-slots", "3", "--storage", "semihost"]
    r = mcutrain("emit", str(plan), "--target", "mps2-an386", *link_opts, "--out", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    link = json.loads((tmp_path / "f" / "firmware.json").read_text())["link_memory"]
    assert link["validation"] > 0 and link["snapshot"] > 0, link


def test_plan_with_a_masked_zone_loss(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "calib.npz",
        x=rng.random((8, 1, 24, 32)).astype(np.float32),
        target=rng.random((8, 64)).astype(np.float32),
        mask=(rng.random((8, 64)) > 0.2).astype(np.float32),
    )
    out = tmp_path / "plan.json"
    r = mcutrain(
        "plan",
        "tiny_unet",
        "--budget",
        "160KB",
        "--calib",
        str(tmp_path / "calib.npz"),
        "--loss",
        "berhu",
        "--masked",
        "--zones",
        "4,0,2,4",
        "--score",
        "proxy",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    loss = json.loads(out.read_text())["plan"]["loss"]
    assert loss == {
        "kind": "berhu",
        "masked": True,
        "zone": {"top": 4, "left": 0, "zone_h": 2, "zone_w": 4, "rows": 8, "cols": 8},
    }
    bad = mcutrain(
        "plan", "tiny_unet", "--strategy", "full", "--loss", "l1", "--zones", "20,0,2,4", "--out", str(out)
    )
    assert bad.returncode == 2 and "does not fit" in bad.stderr


#: A masked zone regression plan of the built-in U-Net (the link options' tests add to it).
ZONE_PLAN = ["plan", "tiny_unet", "--strategy", "last-layer", "--loss", "mse", "--masked"]
ZONE_PLAN += ["--zones", "0,0,3,4"]


def test_plan_with_a_replay_reservoir(tmp_path: Path) -> None:
    """--replay-slots/--replay-steps/--replay-seed go into the plan's link firmware (its C reservoir is
    configured from them); the two schedule options without a reservoir are an error."""
    out = tmp_path / "plan.json"
    args = ZONE_PLAN
    reservoir = ["--app", "link", "--replay-slots", "4", "--replay-steps", "3", "--replay-seed", "0x10"]
    r = mcutrain(*args, *reservoir, "--out", str(out))
    assert r.returncode == 0, r.stderr
    app = json.loads(out.read_text())["plan"]["app"]
    assert {k: v for k, v in app.items() if k.startswith("replay")} == {
        "replay_slots": 4,
        "replay_steps": 3,
        "replay_new": True,
        "replay_seed": 16,
    }
    r = mcutrain(*args, "--app", "link", "--replay-steps", "2", "--out", str(out))
    assert r.returncode != 0 and "add --replay-slots K" in r.stderr and "Traceback" not in r.stderr


def test_plan_blend_counts_the_running_mean(tmp_path: Path) -> None:
    """--blend A: the plan file keeps A, the link's RAM counts 12 B per target (sums, counts, the blended
    prediction); it needs --app link and a regression loss, each refused with the way out."""
    out = tmp_path / "plan.json"
    args = ZONE_PLAN
    r = mcutrain(*args, "--app", "link", "--out", str(out))
    assert r.returncode == 0, r.stderr
    plain = json.loads(out.read_text())
    assert "blend" not in plain["plan"]["app"]  # plan files without a running mean stay as they were
    r = mcutrain(*args, "--app", "link", "--blend", "0.6", "--out", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["plan"]["app"]["blend"] == 0.6
    assert UpdatePlan.from_dict(d["plan"]).app.blend == 0.6  # type: ignore[union-attr]
    link = d["memory"]["categories"]["serial_link"] - plain["memory"]["categories"]["serial_link"]
    assert link == 3 * 4 * 64
    for bad, why in (
        ([*args, "--blend", "0.6"], "add --app link"),
        ([*args, "--app", "link", "--blend", "1.5"], "must be in [0, 1]"),
        (
            ["plan", "mlp", "--strategy", "last-layer", "--app", "link", "--blend", "0.5"],
            "regression loss",
        ),
    ):
        r = mcutrain(*bad, "--out", str(tmp_path / "bad.json"))
        assert r.returncode != 0 and why in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_plan_int8_column_budget_auto(tmp_path: Path) -> None:
    """--int8-col-bytes auto: the largest budget whose plan updates the same inside --budget, the smallest
    of those that size the scratch alike (KWS's pointwise planes of 125 positions x 64 taps run in one pass
    from 16,384 B on); the default where the budget leaves no room."""
    model = SHARED / "models" / "mlperf_kws_dscnn_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} is absent")
    out = tmp_path / "plan.json"
    args = ["plan", str(model), "--strategy", "last-layer", "--out", str(out), "--int8-col-bytes", "auto"]
    chosen = {}
    for budget in ("64KB", "36KB", "28KB"):
        r = mcutrain(*args, "--budget", budget)
        assert r.returncode == 0, r.stderr
        d = json.loads(out.read_text())
        chosen[budget] = d["plan"].get("int8_col_bytes", S8_COL_BYTES), d["memory"]["peak_ram_bytes"]
        assert d["memory"]["peak_ram_bytes"] <= parse_bytes(budget)
        assert [lu["name"] for lu in d["plan"]["layers"] if lu["update"] != "frozen"] == ["dense"]
    assert [n for n, _ in chosen.values()] == [16384, 8192, S8_COL_BYTES], chosen
    assert chosen["64KB"][1] > chosen["36KB"][1] > chosen["28KB"][1] == 27400, chosen


def test_plan_int8_column_budget(tmp_path: Path) -> None:
    """--int8-col-bytes N: the plan file keeps N, the int8 conv2d scratch is sized by it (KWS's largest,
    the pointwise layers': 2 x (positions + 1) x 64 taps), the plan line names it; other values refused."""
    model = SHARED / "models" / "mlperf_kws_dscnn_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} is absent")
    out = tmp_path / "plan.json"
    args = ["plan", str(model), "--strategy", "last-layer", "--out", str(out)]
    plain = mcutrain(*args)
    assert plain.returncode == 0, plain.stderr
    base = json.loads(out.read_text())
    assert "int8_col_bytes" not in base["plan"]  # plan files of the default stay as they were
    r = mcutrain(*args, "--int8-col-bytes", "16384")
    assert r.returncode == 0 and "int8 conv2d column budget 16,384 B" in r.stdout, r.stderr
    d = json.loads(out.read_text())
    assert d["plan"]["int8_col_bytes"] == 16384
    assert UpdatePlan.from_dict(d["plan"]).int8_col_bytes == 16384
    grown = d["memory"]["peak_ram_bytes"] - base["memory"]["peak_ram_bytes"]
    assert 0 < grown <= 2 * (128 + 1) * 64 - 2 * (32 + 1) * 64, grown  # 16,512 B against 4,224 B at most
    bad = mcutrain(*args, "--int8-col-bytes", "1000")
    assert bad.returncode != 0 and "multiple of 16" in bad.stderr and "Traceback" not in bad.stderr
    bad = mcutrain(*args, "--int8-col-bytes", "lots")
    assert bad.returncode != 0 and "neither a number of bytes nor auto" in bad.stderr
    # the host project defines the budget: its C sizes the scratch as the plan did
    r = mcutrain("emit", str(out), "--target", "host", "--out", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(str(build_host(tmp_path / "h")))
    lib.mt_scratch_bytes_needed.restype = ctypes.c_size_t
    assert lib.mt_scratch_bytes_needed() == d["memory"]["categories"]["kernel_scratch"] == 16512
