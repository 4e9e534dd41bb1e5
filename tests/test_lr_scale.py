"""Per-tensor learning-rate scales fixed at plan time (docs/cifar.md, "Learning-rate scales"): the rule,
the plan file, the simulator against torch.optim with one learning rate per tensor, the generated C
against the simulator, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from graphs import residual, small_cnn
from test_codegen import _parity

from mcutrain import api
from mcutrain.core import semantics
from mcutrain.emit.model_c import emit
from mcutrain.train.memory import analyze
from mcutrain.train.optimizers import RELATIVE_FLOOR, lr_scales
from mcutrain.train.plan_file import read_plan, write_plan
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError, UpdatePlan


def test_relative_rule_is_the_rms_with_a_floor() -> None:
    g = small_cnn()  # its biases are all zero
    table = {name: (w, b) for name, w, b in lr_scales(g, "relative")}
    assert list(table) == [n.name for n in g.trainable_nodes()]
    for name, (w, b) in table.items():
        rms = float(np.sqrt(np.mean(g.param(name, "weight").astype(np.float64) ** 2)))
        assert w == pytest.approx(rms, rel=1e-6) and w > RELATIVE_FLOOR
        assert b == np.float32(RELATIVE_FLOOR)  # a zero bias still trains, with a small step
    assert lr_scales(g, "none") == ()
    with pytest.raises(PlanError, match="choose one of none, relative"):
        lr_scales(g, "rms")


def test_plan_json_round_trip(tmp_path: Path) -> None:
    g = residual()
    plain = api.plan(g, None, "full", optimizer=OptimizerConfig(OptimizerKind.ADAM, lr=1e-3)).plan
    assert "lr_scales" not in plain.to_dict()  # plans without scales are written as before
    scaled = replace(plain, lr_scales=lr_scales(g, "relative"))
    write_plan(tmp_path / "p.json", scaled, analyze(g, scaled))
    d = json.loads((tmp_path / "p.json").read_text())["plan"]
    first = g.trainable_nodes()[0].name
    assert d["lr_scales"][first]["weight"] == scaled.lr_scale(first, "weight")
    back = read_plan(tmp_path / "p.json").plan
    assert back == scaled and back.lr_scales
    assert back.lr_scale("no_such_layer", "bias") == 1.0
    d.pop("lr_scales")  # a plan without scales: every scale is 1.0
    assert UpdatePlan.from_dict(d) == plain
    with pytest.raises(PlanError, match="malformed plan"):
        UpdatePlan.from_dict({**d, "lr_scales": [1.0, 2.0]})
    with pytest.raises(PlanError, match="must be positive"):
        replace(plain, lr_scales=((first, 0.0, 1.0),))


def _torch_adam_per_tensor(g, plan: UpdatePlan, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """torch.optim.Adam with one parameter group per tensor (lr times its scale), autograd through the
    IR run by torchops, cosine schedule applied to every group's base rate."""
    o = plan.optimizer
    params = {k: torch.from_numpy(v.copy()) for k, v in g.params.items()}
    for t in params.values():
        t.requires_grad_(True)
    scale = [plan.lr_scale(*key.rsplit(".", 1)) for key in params]
    groups = [{"params": [t], "lr": o.lr * s} for t, s in zip(params.values(), scale, strict=True)]
    opt = torch.optim.Adam(groups, betas=(o.beta1, o.beta2), eps=o.eps)
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in params.items():
        node, p = k.rsplit(".", 1)
        nested.setdefault(node, {})[p] = v
    logits = g.node(g.outputs[0]).inputs[0]
    for i in range(len(x)):
        for grp, s in zip(opt.param_groups, scale, strict=True):
            grp["lr"] = o.lr_at(i) * s
        opt.zero_grad()
        env = semantics.run_graph(g, torch.from_numpy(x[i : i + 1]), nested, keep=True)
        loss = -(torch.from_numpy(y[i : i + 1]) * torch.log_softmax(env[logits], 1)).sum()
        loss.backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in params.items()}


def test_simulator_matches_torch_adam_with_per_tensor_rates() -> None:
    g = small_cnn()
    cfg = OptimizerConfig(OptimizerKind.ADAM, lr=0.02, schedule="cosine", total_steps=12)
    plan = api.plan(g, None, "full", optimizer=cfg, lr_scale="relative").plan
    assert len({s for _, w, b in plan.lr_scales for s in (w, b)}) >= 4  # rates differ between tensors
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, *g.inputs[0][1])).astype(np.float32)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 12)]
    sim = Simulator(g, plan)
    sim.fit(x, y)
    want = _torch_adam_per_tensor(g, plan, x, y)
    unscaled = Simulator(g, replace(plan, lr_scales=()))
    unscaled.fit(x, y)
    for k, v in sim.numpy_params().items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-6, err_msg=k)
        assert not np.allclose(unscaled.numpy_params()[k], want[k], rtol=1e-3, atol=1e-6), k


@pytest.mark.parametrize(
    "kind", [OptimizerKind.SGD, OptimizerKind.MOMENTUM, OptimizerKind.ADAM], ids=lambda k: k.value
)
def test_generated_c_matches_simulator_with_scales(kind: OptimizerKind, tmp_path: Path) -> None:
    g = residual()
    cfg = OptimizerConfig(
        kind, lr=0.02 if kind is OptimizerKind.ADAM else 0.05, schedule="cosine", total_steps=15
    )
    names = [n.name for n in g.trainable_nodes()]
    scales = tuple((n, 0.25 + 0.5 * i, 2.0 - 0.3 * i) for i, n in enumerate(names))  # none equal to 1
    plan = replace(api.plan(g, None, "full", optimizer=cfg).plan, lr_scales=scales)
    _parity(g, plan, tmp_path)  # 20 steps: losses and parameters to 1e-5 relative
    src = (tmp_path / "gen" / "mt_model.c").read_text()
    assert src.count("lr * ") == 2 * len(names)  # one constant multiplier per weight and per bias


def test_unit_scales_emit_the_same_c(tmp_path: Path) -> None:
    g = small_cnn()
    plan = api.plan(g, None, "full").plan
    ones = replace(plan, lr_scales=tuple((n.name, 1.0, 1.0) for n in g.trainable_nodes()))
    emit(g, plan, tmp_path / "a")
    emit(g, ones, tmp_path / "b")
    assert (tmp_path / "a" / "mt_model.c").read_text() == (tmp_path / "b" / "mt_model.c").read_text()


def test_cli_plan_lr_scale(tmp_path: Path) -> None:
    (tmp_path / "cnn.json").write_text(small_cnn().to_json())
    out = tmp_path / "plan.json"
    run = [sys.executable, "-m", "mcutrain", "plan", str(tmp_path / "cnn.json"), "--strategy", "full"]
    r = subprocess.run(
        [*run, "--optimizer", "adam", "--lr-scale", "relative", "--out", str(out)],
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert set(json.loads(out.read_text())["plan"]["lr_scales"]) == {
        n.name for n in small_cnn().trainable_nodes()
    }
    r = subprocess.run([*run, "--lr-scale", "rms"], text=True, capture_output=True, timeout=120)
    assert r.returncode != 0 and "invalid choice" in r.stderr
