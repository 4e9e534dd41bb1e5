"""Losses, zone pooling and optimizers vs PyTorch (autograd, torch.optim)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .ckernels import ptr
from .golden import FW, GRAD, OPTIM, assert_close, rand

# --------------------------------------------------------------------------------------------------
# softmax cross-entropy
# --------------------------------------------------------------------------------------------------

# (name, n, target kind, logit scale, seed)
XENT_CASES = [
    ("onehot", 10, "onehot", 1.0, 1),
    ("soft", 7, "soft", 2.0, 2),
    ("large_logits", 5, "onehot", 60.0, 3),
    ("n1", 1, "onehot", 1.0, 4),
    ("soft_unnormalized", 6, "unnormalized", 1.0, 5),
]


@pytest.mark.parametrize("name,n,kind,scale,seed", XENT_CASES, ids=[c[0] for c in XENT_CASES])
def test_softmax_xent(kernels, name, n, kind, scale, seed):
    rng = np.random.default_rng(seed)
    z = rand(rng, n, scale=scale)
    if kind == "onehot":
        t = np.zeros(n, np.float32)
        t[rng.integers(n)] = 1.0
    else:
        t = rng.random(n).astype(np.float32)
        t = t if kind == "unnormalized" else (t / t.sum()).astype(np.float32)
    zt = torch.tensor(z[None], dtype=torch.float64, requires_grad=True)
    loss_ref = F.cross_entropy(zt, torch.tensor(t[None], dtype=torch.float64))
    (g_ref,) = torch.autograd.grad(loss_ref, zt)
    g = np.full(n, np.nan, np.float32)
    loss = kernels.mt_loss_softmax_xent_f32(n, ptr(z), ptr(t), ptr(g))
    assert_close(np.float32(loss), loss_ref.item(), FW, f"xent {name} loss")
    assert_close(g, g_ref[0].numpy(), GRAD, f"xent {name} grad")
    z2 = z.copy()  # gradient written over the logits
    assert kernels.mt_loss_softmax_xent_f32(n, ptr(z2), ptr(t), ptr(z2)) == loss
    assert_close(z2, g_ref[0].numpy(), GRAD, f"xent {name} grad in place")
    assert kernels.mt_loss_softmax_xent_f32(n, ptr(z), ptr(t), None) == loss


# --------------------------------------------------------------------------------------------------
# regression losses with validity masks
# --------------------------------------------------------------------------------------------------


def _berhu(d: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    a = d.abs()
    c = 0.2 * a[valid].max().detach()
    return torch.where(a <= c, a, (d * d + c * c) / (2 * c))


_ELEMENTWISE = {"mse": lambda d, v: d * d, "l1": lambda d, v: d.abs(), "berhu": _berhu}

# (name, n, mask kind, seed). Masked-out elements carry large errors, which must not leak into the loss
# (nor into berHu's threshold c). Some errors are exactly 0 (sign(0) = 0).
REG_CASES = [
    ("all_valid", 37, "none", 1),
    ("some_invalid", 64, "some", 2),
    ("one_valid", 9, "one", 3),
]


def _reg_inputs(n, mask_kind, seed):
    rng = np.random.default_rng(seed)
    pred, target = rand(rng, n), rand(rng, n)
    target[:3] = pred[:3]  # zero errors
    mask = None
    if mask_kind == "some":
        mask = (rng.random(n) > 0.3).astype(np.float32)
        mask[:2] = 1.0
        pred[mask == 0] += 50.0
    elif mask_kind == "one":
        mask = np.zeros(n, np.float32)
        mask[5] = 1.0
    return pred, target, mask


@pytest.mark.parametrize("loss", ["mse", "l1", "berhu"])
@pytest.mark.parametrize("name,n,mask_kind,seed", REG_CASES, ids=[c[0] for c in REG_CASES])
def test_regression_loss(kernels, loss, name, n, mask_kind, seed):
    pred, target, mask = _reg_inputs(n, mask_kind, seed)
    p = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    d = p - torch.tensor(target, dtype=torch.float64)
    valid = torch.ones(n, dtype=torch.bool) if mask is None else torch.tensor(mask != 0)
    loss_ref = _ELEMENTWISE[loss](d, valid)[valid].mean()
    if mask is None and loss in ("mse", "l1"):  # without a mask, the reference is torch's own loss
        loss_ref = getattr(F, f"{loss}_loss")(p, torch.tensor(target, dtype=torch.float64))
    (g_ref,) = torch.autograd.grad(loss_ref, p)
    g = np.full(n, np.nan, np.float32)
    out = getattr(kernels, f"mt_loss_{loss}_f32")(n, ptr(pred), ptr(target), ptr(mask), ptr(g))
    assert_close(np.float32(out), loss_ref.item(), FW, f"{loss} {name} loss")
    assert_close(g, g_ref.numpy(), GRAD, f"{loss} {name} grad")


def test_berhu_branches(kernels):
    """Both berHu branches are exercised, including |d| == c exactly (the |d| branch)."""
    pred = np.array([0.0, 1.0, 2.0, 10.0, -3.0], np.float32)
    target = np.zeros(5, np.float32)  # c = 0.2 * 10 = 2: |2| <= c, |10| and |-3| quadratic
    g = np.empty(5, np.float32)
    loss = kernels.mt_loss_berhu_f32(5, ptr(pred), ptr(target), None, ptr(g))
    c = np.float32(0.2) * np.float32(10.0)
    expected = (0 + 1 + 2 + (100 + c * c) / (2 * c) + (9 + c * c) / (2 * c)) / 5
    assert_close(np.float32(loss), expected, FW, "berhu value")
    assert_close(g, np.array([0, 1, 1, 10 / c, -3 / c]) / 5, GRAD, "berhu grad")


@pytest.mark.parametrize("loss", ["mse", "l1", "berhu"])
def test_regression_loss_no_valid(kernels, loss):
    pred, target = rand(np.random.default_rng(1), 12), rand(np.random.default_rng(2), 12)
    mask = np.zeros(12, np.float32)
    g = np.full(12, np.nan, np.float32)
    out = getattr(kernels, f"mt_loss_{loss}_f32")(12, ptr(pred), ptr(target), ptr(mask), ptr(g))
    assert out == 0.0 and np.array_equal(g, np.zeros(12, np.float32)), f"{loss}: no valid element"


def test_regression_loss_zero_error(kernels):
    """All errors 0: berHu's c is 0 and nothing divides by it."""
    x = rand(np.random.default_rng(3), 10)
    for loss in ("mse", "l1", "berhu"):
        g = np.full(10, np.nan, np.float32)
        out = getattr(kernels, f"mt_loss_{loss}_f32")(10, ptr(x), ptr(x), None, ptr(g))
        assert out == 0.0 and np.array_equal(g, np.zeros(10, np.float32)), loss


# --------------------------------------------------------------------------------------------------
# zone pooling (8x8 ToF zones over a dense depth map)
# --------------------------------------------------------------------------------------------------

# (h, w, top, left, zone_h, zone_w, rows, cols, seed)
ZONE_CASES = [(24, 32, 2, 4, 2, 3, 8, 8, 1), (16, 16, 0, 0, 2, 2, 8, 8, 2), (7, 9, 1, 2, 3, 2, 2, 3, 3)]


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("h,w,top,left,zh,zw,rows,cols,seed", ZONE_CASES, ids=["offset", "exact", "small"])
def test_zone_pool(kernels, h, w, top, left, zh, zw, rows, cols, seed, accumulate):
    rng = np.random.default_rng(seed)
    pred, gz = rand(rng, 1, h, w), rand(rng, rows, cols)
    p = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    z_ref = F.avg_pool2d(p[None, :, top : top + rows * zh, left : left + cols * zw], (zh, zw))[0, 0]
    (g_ref,) = torch.autograd.grad(z_ref, p, torch.tensor(gz, dtype=torch.float64))
    d = kernels.dims(
        "mt_zone_dims_t", h=h, w=w, top=top, left=left, zone_h=zh, zone_w=zw, rows=rows, cols=cols
    )
    zones = np.full((rows, cols), np.nan, np.float32)
    kernels.mt_zone_pool_fw_f32(d, ptr(pred), ptr(zones))
    assert_close(zones, z_ref.detach().numpy(), FW, "zone_pool fw")
    g0 = rand(rng, 1, h, w)
    g = g0.copy() if accumulate else np.full((1, h, w), np.nan, np.float32)
    kernels.mt_zone_pool_bw_f32(d, ptr(gz), ptr(g), accumulate)
    assert_close(g, (g0 if accumulate else 0) + g_ref.numpy(), GRAD, f"zone_pool bw acc={accumulate}")


# --------------------------------------------------------------------------------------------------
# optimizers: several steps against torch.optim (float32, the state compared after every step)
# --------------------------------------------------------------------------------------------------

# (name, torch.optim hyper-parameters); Adam for names starting with adam, else SGD
OPTIM_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd_wd", dict(lr=0.05, weight_decay=1e-2)),
    ("momentum", dict(lr=0.05, momentum=0.9)),
    ("momentum_wd", dict(lr=0.05, momentum=0.9, weight_decay=5e-4)),
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)),
    ("adam_wd", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
]


@pytest.mark.parametrize("name,hp", OPTIM_CASES, ids=[c[0] for c in OPTIM_CASES])
def test_optimizer(kernels, name, hp):
    n, steps = 50, 6
    rng = np.random.default_rng(len(name))
    w = rand(rng, n)
    param = torch.nn.Parameter(torch.tensor(w))
    adam = name.startswith("adam")
    opt = torch.optim.Adam([param], **hp) if adam else torch.optim.SGD([param], **hp)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    wd = float(hp.get("weight_decay", 0.0))
    for step in range(1, steps + 1):
        g = rand(rng, n, scale=0.5 if step % 2 else 2.0)
        param.grad = torch.tensor(g)
        opt.step()
        if adam:
            b1, b2 = hp["betas"]
            kernels.mt_adam_f32(n, ptr(w), ptr(g), ptr(m), ptr(v), hp["lr"], b1, b2, hp["eps"], wd, step)
            st = opt.state[param]
            assert_close(m, st["exp_avg"].numpy(), OPTIM, f"{name} m step {step}")
            assert_close(v, st["exp_avg_sq"].numpy(), OPTIM, f"{name} v step {step}")
        elif "momentum" in hp:
            kernels.mt_sgd_momentum_f32(n, ptr(w), ptr(g), ptr(m), hp["lr"], hp["momentum"], wd)
            assert_close(m, opt.state[param]["momentum_buffer"].numpy(), OPTIM, f"{name} m step {step}")
        else:
            kernels.mt_sgd_f32(n, ptr(w), ptr(g), hp["lr"], wd)
        assert_close(w, param.detach().numpy(), OPTIM, f"{name} w step {step}")
