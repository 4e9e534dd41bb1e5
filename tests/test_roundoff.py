"""The first-order round-off bound of a step's loss (mcutrain.train.roundoff): it holds for the float32
simulator against the float64 one, grows with the allowed parameter drift, and is not vacuous."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from graphs import residual, small_cnn

from mcutrain import api
from mcutrain.train.roundoff import gamma, loss_error_bound
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LossConfig, LossKind


@pytest.mark.parametrize("make", [small_cnn, residual])
def test_float32_loss_is_within_the_bound(make) -> None:  # type: ignore[no-untyped-def]
    g = make()
    plan = api.plan(g, None, "full").plan
    rng = np.random.default_rng(1)
    numel = g.shapes[g.outputs[0]][0]
    for seed in range(6):
        x = rng.standard_normal((1, *g.inputs[0][1])).astype(np.float32) * (1 + seed)
        t = np.eye(numel, dtype=np.float32)[[seed % numel]]
        s64, s32 = Simulator(g, plan, dtype=torch.float64), Simulator(g, plan, dtype=torch.float32)
        no_drift = {tr.key: 0.0 for tr in s64.trainables}
        bound = loss_error_bound(s64, x[0], t[0], None, no_drift)
        l64, _ = s64.loss_and_grads(torch.from_numpy(x).double(), torch.from_numpy(t).double())
        l32, _ = s32.loss_and_grads(torch.from_numpy(x), torch.from_numpy(t))
        assert abs(l32 - l64) <= bound, (seed, abs(l32 - l64), bound)
        assert bound < 1e-3 * max(abs(l64), 1.0)  # first order and not vacuous


def test_drift_widens_the_bound_by_the_gradient() -> None:
    g = small_cnn()
    plan = api.plan(g, None, "last-layer", loss=LossConfig(LossKind.XENT)).plan
    s = Simulator(g, plan, dtype=torch.float64)
    x = np.random.default_rng(0).standard_normal(g.inputs[0][1]).astype(np.float32)
    t = np.eye(8, dtype=np.float32)[3]
    zero = {tr.key: 0.0 for tr in s.trainables}
    base = loss_error_bound(s, x, t, None, zero)
    one = {k: 1e-4 for k in zero}
    _, grads = s.loss_and_grads(torch.from_numpy(x)[None].double(), torch.from_numpy(t)[None].double())
    expect = 1e-4 * sum(float(gr.abs().sum()) for gr in grads)
    assert loss_error_bound(s, x, t, None, one) - base == pytest.approx(expect, rel=1e-9)


def test_gamma() -> None:
    assert gamma(1) == pytest.approx(2.0**-24)
    assert gamma(1000) > 1000 * 2.0**-24
