"""Optimizers over flat trainable vectors, with the semantics of the C kernels (PyTorch's SGD,
SGD with momentum and Adam; weight decay as L2 added to the gradient)."""

from __future__ import annotations

import math

import numpy as np
import torch

from mcutrain.core import ir
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError


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


LR_SCALES = ("none", "relative")
RELATIVE_FLOOR = 1e-3  # the scale of a tensor whose RMS is smaller (all-zero biases stay trainable)


def lr_scales(graph: ir.Graph, rule: str = "none") -> tuple[tuple[str, float, float], ...]:
    """The plan-time learning-rate multipliers of every trainable layer: ``(layer, weight, bias)``.

    ``none``: no table (every tensor steps with the plan's learning rate). ``relative``: each tensor's
    pretrained RMS, floored at ``RELATIVE_FLOOR``, rounded to float32 (the value the C constant holds).
    Adam moves every element by about ``lr`` per step whatever its scale; with these multipliers the
    learning rate becomes a step relative to each tensor's own size (docs/cifar.md, "Learning-rate
    scales")."""
    if rule == "none":
        return ()
    if rule != "relative":
        raise PlanError(f"unknown learning-rate scaling {rule!r}: choose one of {', '.join(LR_SCALES)}")
    out = []
    for node in graph.trainable_nodes():
        w, b = graph.param(node.name, "weight"), graph.param(node.name, "bias")
        out.append((node.name, _relative(w), _relative(b)))
    return tuple(out)


def _relative(t: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(t, dtype=np.float64)))) if t.size else 0.0
    return float(np.float32(max(rms, RELATIVE_FLOOR)))
