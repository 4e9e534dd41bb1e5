"""The simulator: a plan's fine-tuning in PyTorch with exactly the semantics of the generated C.

Same training graph (the final softmax folded into cross-entropy), same loss, same optimizer over the
same trainable elements (the first ``channels`` output-channel rows of each updated weight, in device
order), same learning-rate schedule, one update per ``plan.batch`` samples with the gradient averaged
over them. It is the fast path for accuracy studies on the host and the reference for parity tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from mcutrain.core import ir, semantics
from mcutrain.core.layout import row_index
from mcutrain.train import losses, precision
from mcutrain.train.mixed import MixedForward
from mcutrain.train.optimizers import FlatOptimizer
from mcutrain.train.update_plan import LossKind, Update, UpdatePlan


class _Trainable:
    """The trainable elements of one parameter tensor and their optimizer state."""

    def __init__(self, key: str, index: np.ndarray, plan: UpdatePlan, dtype: torch.dtype) -> None:
        self.key = key
        self.index = torch.from_numpy(index.reshape(-1).astype(np.int64))
        self.opt = FlatOptimizer(plan.optimizer, int(self.index.numel()), dtype)
        self.lr_scale = plan.lr_scale(*key.rsplit(".", 1))  # the plan-time multiplier of the rate


class Simulator:
    def __init__(
        self,
        graph: ir.Graph,
        plan: UpdatePlan,
        check_plan: bool = True,
        dtype: torch.dtype = torch.float32,
        fp16_operands: bool = False,
    ) -> None:
        """``dtype=torch.float64`` runs the same semantics in double precision: a reference for how much
        float32 round-off a model amplifies. ``fp16_operands``: the semantics of the PULP cluster's FP16
        option (docs/gap9.md), float16-rounded operands in conv2d, conv_transpose2d and linear."""
        if check_plan:
            plan.validate(graph)
        self.graph = graph
        self.plan = plan
        self.dtype = dtype
        self.fp16_operands = fp16_operands
        self.params = {k: torch.from_numpy(v.copy()).to(dtype) for k, v in graph.params.items()}
        self.trainables: list[_Trainable] = []
        for node in graph.trainable_nodes():
            lu = plan.layer(node.name)
            if lu.update is Update.WEIGHT:
                w = graph.param(node.name, "weight")
                self.trainables.append(
                    _Trainable(f"{node.name}.weight", row_index(node.op, w.shape)[: lu.channels], plan, dtype)
                )
            if lu.bias:
                self.trainables.append(
                    _Trainable(f"{node.name}.bias", np.arange(graph.shapes[node.name][0]), plan, dtype)
                )
        self.mixed: MixedForward | None = None  # int8 frozen layers, as the C runs them
        if graph.quantized and plan.frozen_precision == precision.INT8:
            prec = precision.assign(graph, plan)
            if prec.any_int8:
                self.mixed = MixedForward(graph, prec)
        self.steps = 0  # updates applied so far
        last = graph.node(graph.outputs[0])
        self._train_out = graph.outputs[0]
        if plan.loss.kind is LossKind.XENT and isinstance(last.op, ir.Softmax):
            self._train_out = last.inputs[0]

    @property
    def train_output(self) -> str:
        """The tensor the loss reads (the logits when a final softmax is folded into cross-entropy)."""
        return self._train_out

    # -- forward ------------------------------------------------------------------------------------

    def _node_params(self) -> dict[str, dict[str, torch.Tensor]]:
        out: dict[str, dict[str, torch.Tensor]] = {}
        for key, t in self.params.items():
            node, pname = key.rsplit(".", 1)
            out.setdefault(node, {})[pname] = t
        return out

    def _forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if self.mixed is not None:
            env = self.mixed.run(x, self._node_params(), keep=True)
        else:
            env = semantics.run_graph(
                self.graph, x, self._node_params(), keep=True, fp16_operands=self.fp16_operands
            )
        return env[self._train_out] if train else env[self.graph.outputs[0]]

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """Model outputs (with the final softmax) for a batch of samples."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(self.dtype)
        return torch.cat([self._forward(x[i : i + batch_size], False) for i in range(0, len(x), batch_size)])

    # -- training -----------------------------------------------------------------------------------

    def loss_and_grads(
        self, x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[float, list[torch.Tensor]]:
        """Mean loss over the batch and the gradient of every trainable vector (no update)."""
        for tr in self.trainables:
            self.params[tr.key].requires_grad_(True)
        try:
            pred = self._forward(x, True)
            loss = losses.loss(self.plan.loss, pred, target, mask)
            grads = torch.autograd.grad(loss, [self.params[tr.key] for tr in self.trainables])
        finally:
            for tr in self.trainables:
                self.params[tr.key].requires_grad_(False)
        return float(loss.detach()), [
            g.reshape(-1)[tr.index] for g, tr in zip(grads, self.trainables, strict=True)
        ]

    def train_step(
        self,
        x: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        mask: torch.Tensor | np.ndarray | None = None,
    ) -> float:
        """One update from a batch of samples (``plan.batch`` of them on the device). Returns the loss."""
        x, target = _t(x, self.dtype), _t(target, self.dtype)
        m = None if mask is None else _t(mask, self.dtype)
        loss, grads = self.loss_and_grads(x, target, m)
        self.steps += 1
        lr = self.plan.optimizer.lr_at(self.steps - 1)
        with torch.no_grad():
            for tr, g in zip(self.trainables, grads, strict=True):
                flat = self.params[tr.key].view(-1)
                w = flat[tr.index].clone()
                tr.opt.step(w, g, lr * tr.lr_scale, self.steps)
                flat[tr.index] = w
        return loss

    def fit(
        self,
        xs: np.ndarray,
        targets: np.ndarray,
        masks: np.ndarray | None = None,
        progress: Iterable | None = None,
    ) -> list[float]:
        """Stream the samples in order, ``plan.batch`` per update; returns the losses."""
        b = self.plan.batch
        out = []
        for i in range(0, len(xs) - b + 1, b):
            out.append(
                self.train_step(
                    xs[i : i + b], targets[i : i + b], None if masks is None else masks[i : i + b]
                )
            )
            if progress is not None:
                progress.update(b)  # type: ignore[attr-defined]
        return out

    @torch.no_grad()
    def eval_loss(self, xs: np.ndarray, targets: np.ndarray, masks: np.ndarray | None = None) -> float:
        pred = self._forward(_t(xs, self.dtype), True)
        m = None if masks is None else _t(masks, self.dtype)
        return float(losses.loss(self.plan.loss, pred, _t(targets, self.dtype), m))

    # -- results ------------------------------------------------------------------------------------

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().to(torch.float32).numpy().copy() for k, v in self.params.items()}

    def trained_graph(self) -> ir.Graph:
        """The model with the fine-tuned parameters (a new graph; its fingerprint changes)."""
        return self.graph.replace(params=self.numpy_params())


def _t(a: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return t.to(dtype)
