"""The simulator against a plain PyTorch training loop (torch.optim, autograd)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from graphs import residual, small_cnn

from mcutrain.core import semantics
from mcutrain.train.losses import per_sample_loss, zone_pool
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import (
    LayerUpdate,
    LossConfig,
    LossKind,
    OptimizerConfig,
    OptimizerKind,
    UpdatePlan,
    ZoneSpec,
)


def _data(g, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *g.inputs[0][1])).astype(np.float32)
    k = g.shapes[g.outputs[0]][0]
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return x, y


def _reference(g, layers_full: list[str], opt_cfg: OptimizerConfig, x, y, batch: int = 1):
    """torch.optim over whole parameters of the listed layers; the model is the IR run by semantics."""
    params = {k: torch.from_numpy(v.copy()) for k, v in g.params.items()}
    train = [params[f"{n}.{p}"] for n in layers_full for p in ("weight", "bias")]
    for t in train:
        t.requires_grad_(True)
    if opt_cfg.kind is OptimizerKind.SGD:
        opt = torch.optim.SGD(train, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
    elif opt_cfg.kind is OptimizerKind.MOMENTUM:
        opt = torch.optim.SGD(
            train, lr=opt_cfg.lr, momentum=opt_cfg.momentum, weight_decay=opt_cfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(
            train,
            lr=opt_cfg.lr,
            betas=(opt_cfg.beta1, opt_cfg.beta2),
            eps=opt_cfg.eps,
            weight_decay=opt_cfg.weight_decay,
        )
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in params.items():
        node, p = k.rsplit(".", 1)
        nested.setdefault(node, {})[p] = v
    logits_name = g.node(g.outputs[0]).inputs[0]
    for i in range(0, len(x), batch):
        opt.zero_grad()
        env = semantics.run_graph(g, torch.from_numpy(x[i : i + batch]), nested, keep=True)
        loss = -(torch.from_numpy(y[i : i + batch]) * torch.log_softmax(env[logits_name], 1)).sum(1).mean()
        loss.backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in params.items()}


@pytest.mark.parametrize("kind", list(OptimizerKind))
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_full_update_matches_torch_optim(kind: OptimizerKind, wd: float) -> None:
    g = small_cnn()
    cfg = OptimizerConfig(kind, lr=0.05 if kind is not OptimizerKind.ADAM else 0.005, weight_decay=wd)
    names = [n.name for n in g.trainable_nodes()]
    plan = UpdatePlan(
        g.name,
        g.fingerprint(),
        "full",
        tuple(LayerUpdate.weights(n, g.shapes[n][0]) for n in names),
        optimizer=cfg,
    )
    x, y = _data(g, 12)
    sim = Simulator(g, plan)
    sim.fit(x, y)
    ref = _reference(g, names, cfg, x, y)
    got = sim.numpy_params()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_minibatch_accumulation_matches_torch() -> None:
    g = small_cnn()
    cfg = OptimizerConfig(OptimizerKind.MOMENTUM, lr=0.05)
    plan = UpdatePlan(g.name, g.fingerprint(), "t", (LayerUpdate.weights("fc2", 8),), optimizer=cfg, batch=4)
    x, y = _data(g, 12)
    sim = Simulator(g, plan)
    assert len(sim.fit(x, y)) == 3
    ref = _reference(g, ["fc2"], cfg, x, y, batch=4)
    np.testing.assert_allclose(sim.numpy_params()["fc2.weight"], ref["fc2.weight"], rtol=1e-5, atol=1e-6)


def test_channel_subset_updates_only_its_rows() -> None:
    g = residual()
    plan = UpdatePlan(
        g.name, g.fingerprint(), "t", (LayerUpdate.weights("c2", 4, bias=False), LayerUpdate.bias_only("fc"))
    )
    x = np.random.default_rng(0).standard_normal((6, 3, 12, 12)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[[0, 1, 2, 3, 4, 0]]
    sim = Simulator(g, plan)
    sim.fit(x, y)
    after = sim.numpy_params()
    w0 = g.param("c2", "weight")
    assert not np.allclose(after["c2.weight"][:4], w0[:4])
    np.testing.assert_array_equal(after["c2.weight"][4:], w0[4:])
    np.testing.assert_array_equal(after["c2.bias"], g.param("c2", "bias"))
    np.testing.assert_array_equal(after["fc.weight"], g.param("fc", "weight"))
    assert not np.allclose(after["fc.bias"], g.param("fc", "bias"))
    # the subset's gradient equals autograd's gradient of the full weight, restricted to the rows
    sim2 = Simulator(g, plan)
    _, grads = sim2.loss_and_grads(torch.from_numpy(x[:1]), torch.from_numpy(y[:1]))
    w = torch.from_numpy(w0.copy()).requires_grad_(True)
    params = {n.name: semantics.node_params(g, n) for n in g.nodes}
    params["c2"]["weight"] = w
    out = semantics.run_graph(g, torch.from_numpy(x[:1]), params)[g.outputs[0]]
    loss = -(torch.from_numpy(y[:1]) * torch.log_softmax(out, 1)).sum()
    (gw,) = torch.autograd.grad(loss, [w])
    np.testing.assert_allclose(grads[0].numpy(), gw[:4].reshape(-1).numpy(), rtol=1e-5, atol=1e-7)


def test_cosine_schedule() -> None:
    cfg = OptimizerConfig(lr=0.1, schedule="cosine", total_steps=10)
    assert cfg.lr_at(0) == pytest.approx(0.1)
    assert cfg.lr_at(5) == pytest.approx(0.05)
    assert cfg.lr_at(10) == pytest.approx(0.0)


def test_zone_loss_and_masks() -> None:
    pred = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).reshape(2, 1, 6, 8)
    z = ZoneSpec(top=1, left=2, zone_h=2, zone_w=3, rows=2, cols=2)
    zones = zone_pool(pred, z)
    assert zones.shape == (2, 4)
    assert zones[0, 0].item() == pytest.approx(pred[0, 0, 1:3, 2:5].mean().item())
    assert zones[1, 3].item() == pytest.approx(pred[1, 0, 3:5, 5:8].mean().item())
    target = zones + 1.0
    mask = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    cfg = LossConfig(LossKind.L1, masked=True, zone=z)
    per = per_sample_loss(cfg, pred, target, mask)
    assert per[0].item() == pytest.approx(1.0)
    assert per[1].item() == 0.0  # no valid zone: zero loss
    berhu = per_sample_loss(
        LossConfig(LossKind.BERHU), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]])
    )
    # c = 0.2: |0| <= c -> 0 ; |1| > c -> (1 + 0.04) / 0.4
    assert berhu.item() == pytest.approx((0.0 + 1.04 / 0.4) / 2)
