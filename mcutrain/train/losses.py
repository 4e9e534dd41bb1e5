"""Losses in PyTorch, with exactly the semantics of the C loss kernels (per sample; a batch averages).

* ``xent``: softmax cross-entropy of logits against a probability vector (one-hot labels);
* ``mse``, ``l1``, ``berhu``: means over the valid elements of a 0/1 mask (all elements without one);
  berHu's threshold ``c = 0.2 * max |pred - target|`` over valid elements is a constant for the gradient;
* zone pooling: a dense ``(1, H, W)`` prediction averaged over a grid of rectangles (an 8x8 ToF sensor's
  zones) before the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mcutrain.train.update_plan import LossConfig, LossKind, ZoneSpec


def zone_pool(pred: torch.Tensor, z: ZoneSpec) -> torch.Tensor:
    """``[N, 1, H, W] -> [N, rows * cols]``."""
    crop = pred[:, :, z.top : z.top + z.rows * z.zone_h, z.left : z.left + z.cols * z.zone_w]
    return F.avg_pool2d(crop, (z.zone_h, z.zone_w)).flatten(1)


def _masked_mean(per_elem: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_elem.mean(dim=1)
    count = mask.sum(dim=1).clamp(min=1.0)
    return (per_elem * mask).sum(dim=1) / count


def per_sample_loss(
    cfg: LossConfig, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Loss of each sample of a batch: ``pred`` is the model's prediction (logits for xent)."""
    if cfg.zone is not None:
        pred = zone_pool(pred, cfg.zone)
    p = pred.flatten(1)
    t = target.reshape(p.shape).to(p.dtype)
    m = None if mask is None else mask.reshape(p.shape).to(p.dtype)
    if cfg.kind is LossKind.XENT:
        return -(t * F.log_softmax(p, dim=1)).sum(dim=1)
    d = p - t
    if cfg.kind is LossKind.MSE:
        return _masked_mean(d * d, m)
    if cfg.kind is LossKind.L1:
        return _masked_mean(d.abs(), m)
    if cfg.kind is LossKind.BERHU:
        a = d.abs()
        valid = a if m is None else a * m
        c = (0.2 * valid.amax(dim=1, keepdim=True)).detach()
        safe_c = torch.where(c > 0, c, torch.ones_like(c))
        quad = (d * d + c * c) / (2 * safe_c)
        return _masked_mean(torch.where(a <= c, a, quad), m)
    raise NotImplementedError(cfg.kind)


def loss(
    cfg: LossConfig, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of :func:`per_sample_loss` over the batch."""
    return per_sample_loss(cfg, pred, target, mask).mean()
