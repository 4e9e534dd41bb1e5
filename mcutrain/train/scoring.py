"""Scores of update candidates on calibration data: what each one would contribute to fine-tuning.

Two scorers, both additive over layers:

* ``proxy`` (cheap): one backward pass of the full model over the calibration batch. Updating a set of
  parameters with gradient ``g`` by one step of size ``lr`` lowers the loss by about ``lr * |g|^2``, so a
  candidate scores ``lr * sum(g^2)`` over the elements it updates.
* ``measured``: for each layer, short fine-tunings in the simulator of its bias alone, its whole weight,
  and its whole weight with the bias, each from the pretrained model on the first half of the calibration
  data, scored by the drop of the loss on the second half. Channel fractions are interpolated with the
  proxy's share of squared gradient in the updated rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from mcutrain.core import ir
from mcutrain.train.planner import ScoreFn, baseline_layers
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LayerUpdate, Update, UpdatePlan


@dataclass(frozen=True)
class Calibration:
    x: np.ndarray  # [N, *input shape]
    target: np.ndarray  # [N, *target shape]
    mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: slice | np.ndarray) -> Calibration:
        return Calibration(self.x[idx], self.target[idx], None if self.mask is None else self.mask[idx])


def random_calibration(graph: ir.Graph, template: UpdatePlan, n: int = 32, seed: int = 0) -> Calibration:
    """Data-free fallback: Gaussian inputs and random targets (one-hot labels for cross-entropy). The
    scores then reflect only the model's structure; real calibration data gives data-driven plans."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *graph.inputs[0][1])).astype(np.float32)
    sim = Simulator(graph, template.with_layers(baseline_layers(graph, "bias-only")), check_plan=False)
    numel = template.loss.target_numel(graph.shapes[sim.train_output])
    if template.loss.kind.value == "xent":
        t = np.eye(numel, dtype=np.float32)[rng.integers(0, numel, n)]
    else:
        t = rng.standard_normal((n, numel)).astype(np.float32)
    return Calibration(x, t, None if not template.loss.masked else np.ones_like(t))


class _Gradients:
    """Squared gradients of the full model over the calibration batch, per layer: rows and bias."""

    def __init__(self, graph: ir.Graph, template: UpdatePlan, calib: Calibration) -> None:
        full = template.with_layers(baseline_layers(graph, "full"), "full")
        sim = Simulator(graph, full, check_plan=False)
        _, grads = sim.loss_and_grads(*_tensors(calib))
        self.rows: dict[str, np.ndarray] = {}
        self.bias: dict[str, float] = {}
        for tr, g in zip(sim.trainables, grads, strict=True):
            node, pname = tr.key.rsplit(".", 1)
            sq = g.detach().numpy().astype(np.float64) ** 2
            if pname == "weight":
                self.rows[node] = sq.reshape(graph.shapes[node][0], -1).sum(axis=1)
            else:
                self.bias[node] = float(sq.sum())
        self.lr = template.optimizer.lr

    def weight(self, lu: LayerUpdate) -> float:
        return self.lr * float(self.rows[lu.name][: lu.channels].sum()) if lu.update is Update.WEIGHT else 0.0

    def share(self, lu: LayerUpdate) -> float:
        """Fraction of the layer's squared weight gradient in the updated rows."""
        total = float(self.rows[lu.name].sum())
        return (
            float(self.rows[lu.name][: lu.channels].sum()) / total
            if total > 0
            else lu.channels / len(self.rows[lu.name])
        )

    def score(self, lu: LayerUpdate) -> float:
        return self.weight(lu) + (self.lr * self.bias[lu.name] if lu.bias else 0.0)


def _tensors(c: Calibration):
    x = torch.from_numpy(np.ascontiguousarray(c.x, dtype=np.float32))
    t = torch.from_numpy(np.ascontiguousarray(c.target, dtype=np.float32))
    m = None if c.mask is None else torch.from_numpy(np.ascontiguousarray(c.mask, dtype=np.float32))
    return x, t, m


def proxy_scorer(graph: ir.Graph, template: UpdatePlan, calib: Calibration) -> ScoreFn:
    return _Gradients(graph, template, calib).score


def measured_scorer(
    graph: ir.Graph,
    template: UpdatePlan,
    calib: Calibration,
    epochs: int = 2,
    batch: int = 8,
    progress: bool = False,
) -> ScoreFn:
    grads = _Gradients(graph, template, calib)
    half = max(1, len(calib) // 2)
    train, val = calib.take(slice(0, half)), calib.take(slice(half, None))
    if len(val) == 0:
        val = train
    probe = replace(template, batch=min(batch, len(train)))
    base_loss = Simulator(
        graph, probe.with_layers(baseline_layers(graph, "bias-only")), check_plan=False
    ).eval_loss(val.x, val.target, val.mask)
    nodes = graph.trainable_nodes()
    measured: dict[tuple[str, str], float] = {}
    runs = [(n, kind) for n in nodes for kind in ("bias", "weight", "weight+bias")]
    bar = tqdm(runs, desc="scoring", unit="run", disable=not progress, leave=False)
    for node, kind in bar:
        cout = graph.shapes[node.name][0]
        lu = {
            "bias": LayerUpdate.bias_only(node.name),
            "weight": LayerUpdate.weights(node.name, cout, bias=False),
            "weight+bias": LayerUpdate.weights(node.name, cout, bias=True),
        }[kind]
        sim = Simulator(graph, probe.with_layers((lu,)), check_plan=False)
        for _ in range(epochs):
            sim.fit(train.x, train.target, train.mask)
        measured[(node.name, kind)] = base_loss - sim.eval_loss(val.x, val.target, val.mask)

    def score(lu: LayerUpdate) -> float:
        m_b = max(0.0, measured[(lu.name, "bias")])
        if lu.update is Update.BIAS:
            return m_b
        r = grads.share(lu)
        if not lu.bias:
            return max(0.0, measured[(lu.name, "weight")]) * r
        m_wb = max(0.0, measured[(lu.name, "weight+bias")])
        return max(0.0, m_b + (m_wb - m_b) * r)

    return score


Scorer = Callable[[ir.Graph, UpdatePlan, Calibration], ScoreFn]
