"""The budgeted sparse-update planner.

Candidates per trainable layer: frozen, bias only, or the weight rows of the first 1/8, 1/4, 1/2 or all
output channels, with or without the bias. Each candidate gets a score, its estimated accuracy
contribution on calibration data (see :mod:`mcutrain.scoring`), and the planner maximizes the total score
(contributions are taken as additive, as in contribution analysis) under the RAM budget:

* for each possible backprop depth ``d`` (the earliest updated layer), an exact 0/1 knapsack (dynamic
  programming over bytes) picks one option per layer ``>= d`` with layer ``d`` updated. Its cost is the
  static RAM of the options (trainable weights + optimizer state) plus the saved input activation of each
  weight update, on top of the exact step memory of the cheapest plan of that depth;
* every knapsack solution is confirmed with the exact memory model (:mod:`mcutrain.memory`); when the
  exact peak exceeds the budget, the knapsack capacity shrinks by the excess until a solution fits, then
  bisects between the largest capacity that fits and the smallest that overshoots;
* the same knapsack under the optimistic cost (static RAM only) bounds the best possible score: the
  reported gap is that bound minus the score found.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.train.memory import MemoryReport, analyze
from mcutrain.train.trainable import trainable_bytes
from mcutrain.train.update_plan import LayerUpdate, PlanError, Update, UpdatePlan

FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)
STRATEGIES = ("auto", "full", "last-layer", "bias-only", "last-k")


class BudgetError(PlanError):
    """No plan of the requested strategy fits the budget."""

    def __init__(self, message: str, min_budget: int) -> None:
        super().__init__(message)
        self.min_budget = min_budget


def candidates(graph: ir.Graph, node: ir.Node) -> list[LayerUpdate]:
    cout = graph.shapes[node.name][0]
    out = [LayerUpdate.frozen(node.name), LayerUpdate.bias_only(node.name)]
    for ch in sorted({max(1, math.ceil(f * cout)) for f in FRACTIONS}):
        out.append(LayerUpdate.weights(node.name, ch, bias=False))
        out.append(LayerUpdate.weights(node.name, ch, bias=True))
    return out


@dataclass(frozen=True)
class PlanResult:
    plan: UpdatePlan
    memory: MemoryReport
    score: float  # predicted total contribution (sum over layers), 0 for baselines without scores
    layer_scores: dict[str, float]
    upper_bound: float  # best score any plan could reach under the optimistic cost (auto only)
    evaluated: int  # exact memory analyses run
    seconds: float

    @property
    def gap(self) -> float:
        return max(0.0, self.upper_bound - self.score)


# ---------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------


def baseline_layers(graph: ir.Graph, strategy: str, k: int = 1) -> tuple[LayerUpdate, ...]:
    nodes = graph.trainable_nodes()
    if not nodes:
        raise PlanError(f"model {graph.name} has no trainable layer (conv, linear, transposed conv)")
    if strategy == "full":
        return tuple(LayerUpdate.weights(n.name, graph.shapes[n.name][0]) for n in nodes)
    if strategy == "bias-only":
        return tuple(LayerUpdate.bias_only(n.name) for n in nodes)
    if strategy in ("last-layer", "last-k"):
        k = 1 if strategy == "last-layer" else k
        return tuple(LayerUpdate.weights(n.name, graph.shapes[n.name][0]) for n in nodes[-k:])
    raise PlanError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")


def _check_budget(rep: MemoryReport, budget: int | None, what: str) -> None:
    if budget is not None and rep.peak_ram_bytes > budget:
        raise BudgetError(
            f"{what} needs {format_bytes(rep.peak_ram_bytes)} ({rep.peak_ram_bytes} bytes) of RAM, more "
            f"than the budget of {format_bytes(budget)} ({budget} bytes). Smallest budget that would work: "
            f"{rep.peak_ram_bytes} bytes",
            rep.peak_ram_bytes,
        )


def plan_baseline(graph: ir.Graph, template: UpdatePlan, strategy: str, k: int | None = None) -> PlanResult:
    """A built-in strategy. ``last-k`` without ``k`` takes the largest k that fits the budget."""
    t0 = time.perf_counter()
    budget = template.budget_bytes
    if strategy == "last-k" and k is None:
        n = len(graph.trainable_nodes())
        best = None
        for kk in range(1, n + 1):
            p = template.with_layers(baseline_layers(graph, "last-k", kk), f"last-{kk}")
            rep = analyze(graph, p)
            if budget is not None and rep.peak_ram_bytes > budget:
                break
            best = (p, rep)
        if best is None:
            p = template.with_layers(baseline_layers(graph, "last-k", 1), "last-1")
            _check_budget(analyze(graph, p), budget, "strategy last-k (k=1)")
            raise AssertionError("unreachable")
        p, rep = best
    else:
        name = f"last-{k}" if strategy == "last-k" else strategy
        p = template.with_layers(baseline_layers(graph, strategy, k or 1), name)
        rep = analyze(graph, p)
        _check_budget(rep, budget, f"strategy {name}")
    return PlanResult(p, rep, 0.0, {}, 0.0, 1, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------
# auto
# ---------------------------------------------------------------------------------------------------


ScoreFn = Callable[[LayerUpdate], float]


def _static_cost(graph: ir.Graph, template: UpdatePlan, lu: LayerUpdate, node: ir.Node) -> int:
    if not lu.trains:
        return 0
    t, _ = trainable_bytes(graph, replace(template, layers=(lu,)))[lu.name]
    return t * (1 + template.optimizer.kind.state_per_param)


def _saved_input_cost(graph: ir.Graph, lu: LayerUpdate, node: ir.Node) -> int:
    if lu.update is not Update.WEIGHT or node.inputs[0] in {n for n, _ in graph.inputs}:
        return 0
    return math.prod(graph.shapes[node.inputs[0]]) * 4


def _knapsack(
    options: list[list[tuple[int, float]]], capacity: int, quantum: int
) -> tuple[float, list[int]] | None:
    """Exact multiple-choice knapsack: one option per group, total cost <= capacity, max total score.
    Costs are rounded up to ``quantum`` bytes. Returns (score, chosen index per group) or None."""
    if capacity < 0:
        return None
    cap = capacity // quantum
    neg = -1e30
    dp = np.full(cap + 1, neg)
    dp[0] = 0.0
    choice = np.zeros((len(options), cap + 1), dtype=np.int16)
    for gi, opts in enumerate(options):
        new = np.full(cap + 1, neg)
        for oi, (cost, score) in enumerate(opts):
            c = -(-cost // quantum)
            if c > cap:
                continue
            cand = np.full(cap + 1, neg)
            cand[c:] = dp[: cap + 1 - c] + score
            better = cand > new + 1e-12
            new[better] = cand[better]
            choice[gi, better] = oi
        dp = new
    best = int(np.argmax(dp))
    if dp[best] <= neg / 2:
        return None
    picks = [0] * len(options)
    c = best
    for gi in range(len(options) - 1, -1, -1):
        oi = int(choice[gi, c])
        picks[gi] = oi
        c -= -(-options[gi][oi][0] // quantum)
    return float(dp[best]), picks


def plan_auto(
    graph: ir.Graph,
    template: UpdatePlan,
    score: ScoreFn,
    max_rounds: int = 12,
) -> PlanResult:
    """Maximize the summed score of the chosen candidates under ``template.budget_bytes``."""
    t0 = time.perf_counter()
    budget = template.budget_bytes
    if budget is None:
        raise PlanError("the auto strategy needs a RAM budget (e.g. --budget 256KB)")
    nodes = graph.trainable_nodes()
    if not nodes:
        raise PlanError(f"model {graph.name} has no trainable layer")
    cands = {n.name: candidates(graph, n) for n in nodes}
    scores = {
        (lu.name, lu): max(0.0, float(score(lu))) if lu.trains else 0.0 for c in cands.values() for lu in c
    }
    evaluated = 0
    best: tuple[float, UpdatePlan, MemoryReport] | None = None
    upper = 0.0
    min_peak = None
    quantum = max(8, budget // 4096)
    for d, node_d in enumerate(nodes):
        base_plan = template.with_layers((LayerUpdate.bias_only(node_d.name),), "auto")
        base = analyze(graph, base_plan)
        evaluated += 1
        min_peak = base.peak_ram_bytes if min_peak is None else min(min_peak, base.peak_ram_bytes)
        if base.peak_ram_bytes > budget:
            continue
        val0 = scores[(node_d.name, base_plan.layers[0])]
        if best is None or val0 > best[0] + 1e-12:  # the cheapest plan of this depth is a solution too
            best = (val0, base_plan, base)
        groups: list[list[LayerUpdate]] = []
        for i, n in enumerate(nodes[d:]):
            opts = [lu for lu in cands[n.name] if lu.trains] if i == 0 else cands[n.name]
            groups.append(opts)
        fixed = base.peak_ram_bytes - _static_cost(graph, template, base_plan.layers[0], node_d)

        def costs(
            with_saved: bool, groups: list[list[LayerUpdate]] = groups, d: int = d
        ) -> list[list[tuple[int, float]]]:
            out = []
            for n, opts in zip(nodes[d:], groups, strict=True):
                out.append(
                    [
                        (
                            _static_cost(graph, template, lu, n)
                            + (_saved_input_cost(graph, lu, n) if with_saved else 0),
                            scores[(lu.name, lu)],
                        )
                        for lu in opts
                    ]
                )
            return out

        bound = _knapsack(costs(False), budget - fixed, quantum)
        if bound is not None:
            upper = max(upper, bound[0])
        opt_costs = costs(True)
        hi, lo = budget - fixed, None  # knapsack capacities: hi may overshoot, lo is known to fit
        cap = hi
        for _ in range(max_rounds):
            sol = _knapsack(opt_costs, cap, quantum)
            if sol is None:
                break
            val, picks = sol
            layers = tuple(g[p] for g, p in zip(groups, picks, strict=True) if g[p].trains)
            plan = template.with_layers(layers, "auto")
            rep = analyze(graph, plan)
            evaluated += 1
            if rep.peak_ram_bytes <= budget:
                if (
                    best is None
                    or val > best[0] + 1e-12
                    or (abs(val - best[0]) <= 1e-12 and rep.peak_ram_bytes < best[2].peak_ram_bytes)
                ):
                    best = (val, plan, rep)
                lo = cap
            else:
                hi = cap - quantum
            if lo is None:
                cap = cap - max(quantum, rep.peak_ram_bytes - budget)
            elif hi - lo < 2 * quantum:
                break
            else:
                cap = (lo + hi) // 2  # bisect between a capacity that fits and one that overshoots
    if best is None:
        assert min_peak is not None
        raise BudgetError(
            f"no plan fits the budget of {format_bytes(budget)} ({budget} bytes): even updating a single "
            f"bias needs {format_bytes(min_peak)}. Smallest budget that would work: {min_peak} bytes",
            min_peak,
        )
    val, plan, rep = best
    layer_scores = {lu.name: scores[(lu.name, lu)] for lu in plan.layers}
    return PlanResult(plan, rep, val, layer_scores, max(upper, val), evaluated, time.perf_counter() - t0)
