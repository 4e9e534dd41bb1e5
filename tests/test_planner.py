"""Planner: budgets respected, monotone in the budget, baselines as defined, infeasible budgets."""

from __future__ import annotations

import numpy as np
import pytest
from graphs import residual, small_cnn

from mcutrain import api
from mcutrain.train.memory import analyze
from mcutrain.train.planner import BudgetError, _knapsack, candidates
from mcutrain.train.scoring import Calibration
from mcutrain.train.update_plan import Update


def _calib(g, n: int = 32, seed: int = 3) -> Calibration:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *g.inputs[0][1])).astype(np.float32)
    k = g.shapes[g.outputs[0]][0]
    return Calibration(x, np.eye(k, dtype=np.float32)[rng.integers(0, k, n)])


@pytest.mark.parametrize("make", [small_cnn, residual])
@pytest.mark.parametrize("score", ["proxy", "measured"])
def test_budget_respected_and_monotone(make, score: str) -> None:
    g = make()
    calib = _calib(g)
    full = api.plan(g, None, "full").memory.peak_ram_bytes
    prev = -1.0
    for frac in (0.35, 0.45, 0.6, 0.8, 1.0, 1.2):
        budget = int(full * frac)
        try:
            res = api.plan(g, budget, "auto", calib=calib, score=score)
        except BudgetError as e:
            assert e.min_budget > budget
            continue
        # the report is the exact model of the plan that is returned
        assert analyze(g, res.plan).peak_ram_bytes == res.memory.peak_ram_bytes <= budget
        assert res.score >= prev - 1e-12, "more budget must never score worse"
        assert res.upper_bound >= res.score
        prev = res.score
    assert prev > 0


def test_full_budget_reaches_the_upper_bound() -> None:
    g = small_cnn()
    full = api.plan(g, None, "full").memory.peak_ram_bytes
    res = api.plan(g, full, "auto", calib=_calib(g), score="proxy")
    assert res.gap == pytest.approx(0.0, abs=1e-12)
    assert all(lu.update is Update.WEIGHT for lu in res.plan.layers)


def test_baselines_follow_their_definition() -> None:
    g = residual()
    names = [n.name for n in g.trainable_nodes()]
    full = api.plan(g, None, "full").plan
    assert [lu.name for lu in full.layers] == names
    assert all(
        lu.update is Update.WEIGHT and lu.channels == g.shapes[lu.name][0] and lu.bias for lu in full.layers
    )
    bias = api.plan(g, None, "bias-only").plan
    assert all(lu.update is Update.BIAS for lu in bias.layers) and len(bias.layers) == len(names)
    last = api.plan(g, None, "last-layer").plan
    assert [lu.name for lu in last.layers] == names[-1:]
    last3 = api.plan(g, None, "last-k", k=3).plan
    assert [lu.name for lu in last3.layers] == names[-3:]
    # last-k without k takes as many layers as fit
    budget = api.plan(g, None, "last-k", k=2).memory.peak_ram_bytes
    auto_k = api.plan(g, budget, "last-k").plan
    assert auto_k.strategy == "last-2"


def test_infeasible_budget_names_the_minimum() -> None:
    g = residual()
    with pytest.raises(BudgetError) as e:
        api.plan(g, 1000, "auto", calib=_calib(g), score="proxy")
    smallest = e.value.min_budget
    assert f"Smallest budget that would work: {smallest} bytes" in str(e.value)
    api.plan(g, smallest, "auto", calib=_calib(g), score="proxy")  # and that budget does work
    with pytest.raises(BudgetError, match="strategy full needs"):
        api.plan(g, 20_000, "full")


def test_candidates() -> None:
    g = small_cnn()
    c = candidates(g, g.node("conv"))
    assert [lu.update.value for lu in c[:2]] == ["frozen", "bias"]
    assert sorted({lu.channels for lu in c[2:]}) == [1, 2, 4, 8]


def test_knapsack_is_exact() -> None:
    rng = np.random.default_rng(0)
    import itertools

    for _ in range(20):
        groups = [
            [(0, 0.0)] + [(int(rng.integers(1, 40)) * 8, float(rng.random())) for _ in range(3)]
            for _ in range(4)
        ]
        cap = int(rng.integers(0, 120)) * 8
        best = max(
            sum(o[1] for o in combo)
            for combo in itertools.product(*groups)
            if sum(o[0] for o in combo) <= cap
        )
        val, picks = _knapsack(groups, cap, 8)
        assert val == pytest.approx(best)
        assert sum(groups[i][p][0] for i, p in enumerate(picks)) <= cap
