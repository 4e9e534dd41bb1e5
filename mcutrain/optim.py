"""Optimizers over flat trainable vectors, with the semantics of the C kernels (PyTorch's SGD,
SGD with momentum and Adam; weight decay as L2 added to the gradient)."""

from __future__ import annotations

import math

import torch

from .plan import OptimizerConfig, OptimizerKind


class FlatOptimizer:
    """Updates one flat parameter vector in place; keeps its state (momentum or Adam moments)."""

    def __init__(self, cfg: OptimizerConfig, n: int, dtype: torch.dtype = torch.float32) -> None:
        self.cfg = cfg
        k = cfg.kind.state_per_param
        self.m = torch.zeros(n, dtype=dtype) if k >= 1 else None
        self.v = torch.zeros(n, dtype=dtype) if k >= 2 else None

    @torch.no_grad()
    def step(self, w: torch.Tensor, g: torch.Tensor, lr: float, step: int) -> None:
        """``step`` is 1-based (Adam's bias correction)."""
        c = self.cfg
        if c.weight_decay:
            g = g + c.weight_decay * w
        if c.kind is OptimizerKind.SGD:
            w.sub_(lr * g)
        elif c.kind is OptimizerKind.MOMENTUM:
            assert self.m is not None
            self.m.mul_(c.momentum).add_(g)
            w.sub_(lr * self.m)
        elif c.kind is OptimizerKind.ADAM:
            assert self.m is not None and self.v is not None
            self.m.mul_(c.beta1).add_((1 - c.beta1) * g)
            self.v.mul_(c.beta2).add_((1 - c.beta2) * g * g)
            bc1 = 1 - c.beta1**step
            bc2 = 1 - c.beta2**step
            denom = (self.v.sqrt() / math.sqrt(bc2)).add_(c.eps)
            w.sub_((lr / bc1) * self.m / denom)
        else:
            raise NotImplementedError(c.kind)
