"""How far a correct float32 implementation of a training step's loss may be from the exact value: a
first-order bound from the float64 simulator and the step's condition (docs/firmware.md, "The verdict").

For one sample and parameters ``theta``, the loss a device computes differs from the exact (float64) loss by
rounding in every op of the forward pass and by the drift of its trainable parameters from earlier steps.
To first order (standard running-error analysis):

* an op whose outputs each sum ``k`` products (conv, linear: ``k`` = fan-in; pools: the window) is exact
  for inputs perturbed by at most ``gamma(k) = k u / (1 - k u)`` relatively, so its output ``y`` is off by at
  most ``gamma(k) * m`` elementwise, where ``m`` is the same op on absolute values (``|W| |x| + |b|``), or
  ``|y|`` for ops without products; ``k`` grows by 2 for libm's transcendental functions (1-2 ulp);
* an output error ``dy`` moves the loss by ``sum |dL/dy| |dy|``;
* a trainable parameter off by ``dtheta`` moves it by ``sum |dL/dtheta| |dtheta|``: the drift of earlier
  steps, which the self-test allows each trainable vector up to ``tol_param * max |v|`` (its own verdict;
  none before the first update);
* the loss kernel itself sums ``n`` terms: ``gamma(2n) (|L| + max |pred|)``.

The bound is what the self-test firmware allows per step, so a correct build cannot fail on a chaotic loss
while its parameters agree. The first step's bound has no drift term and is tight (a wrong loss or forward
kernel shows there); later steps allow the worst-case alignment of every parameter's allowed drift, which is
loose by design: there the parameters themselves are the verdict.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mcutrain.core import ir
from mcutrain.core.op_table import forward_op
from mcutrain.core.semantics import forward_op_fp16, has_fp16_operands
from mcutrain.train import losses
from mcutrain.train.simulator import Simulator

#: Unit round-off of float32 (round to nearest).
U_F32 = 2.0**-24
#: Unit round-off of the binary16 operands of the PULP cluster's FP16 option.
U_F16 = 2.0**-11
#: Extra summands for the 1-2 ulp of libm's expf, logf, tanhf.
LIBM_TERMS = 2


def gamma(k: int, u: float = U_F32) -> float:
    return k * u / (1.0 - k * u)


def accumulation_length(op: ir.Op, ins: list[ir.Shape], out: ir.Shape) -> int:
    """Products or terms summed into each output element (1 for elementwise ops)."""
    return max(1, op.macs(ins, out) // max(1, math.prod(out)))


def loss_error_bound(
    sim: Simulator,
    x: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None,
    drift: dict[str, float],
) -> float:
    """First-order bound of ``|loss_device - loss_exact|`` for one sample at the simulator's current
    parameters (a float64 simulator). ``drift`` maps each trainable parameter tensor (``node.param``) to the
    absolute error its trainable elements may have. With the simulator's ``fp16_operands`` (the PULP
    cluster's FP16 option) an operand of a tiled op may also round to the other neighbouring binary16
    value: ``2 * U_F16`` more of the op's absolute sum."""
    g, plan = sim.graph, sim.plan
    dt = torch.float64
    params = {node: {k: v.detach().to(dt) for k, v in p.items()} for node, p in sim._node_params().items()}
    trainable = list(sim.trainables)
    keys = [tr.key.rsplit(".", 1) for tr in trainable]
    leaves = [params[node][pname].requires_grad_(True) for node, pname in keys]
    x64 = torch.as_tensor(np.asarray(x, np.float64)).reshape(1, *g.inputs[0][1]).requires_grad_(True)
    env: dict[str, torch.Tensor] = {g.inputs[0][0]: x64}
    outs = []
    if sim.mixed is not None:  # int8 nodes: exact integers, constants to autograd (no term below)
        env = sim.mixed.run(x64, params, keep=True)
        outs = [env[node.name] for node in g.nodes]
    for node in g.nodes if sim.mixed is None else ():
        fwd = forward_op_fp16 if sim.fp16_operands else forward_op
        y = fwd(node.op, [env[i] for i in node.inputs], params.get(node.name, {}))
        env[node.name] = y
        outs.append(y)
    pred = env[sim.train_output]
    t = torch.as_tensor(np.asarray(target, np.float64)).reshape(1, -1)
    m = None if mask is None else torch.as_tensor(np.asarray(mask, np.float64)).reshape(1, -1)
    loss = losses.loss(plan.loss, pred, t, m)
    wrt = [t for t in [*outs, *leaves] if t.requires_grad]
    found = iter(torch.autograd.grad(loss, wrt, allow_unused=True))
    grads = [next(found) if t.requires_grad else None for t in [*outs, *leaves]]
    bound = 0.0
    with torch.no_grad():
        for node, y, gy in zip(g.nodes, outs, grads[: len(outs)], strict=True):
            if gy is None:
                continue
            ins = [env[i] for i in node.inputs]
            k = accumulation_length(node.op, g.in_shapes(node), g.shapes[node.name]) + LIBM_TERMS
            mag = y.abs()
            p = params.get(node.name)
            if p:  # products: the op on absolute values bounds the sum of |terms|
                absp = {name: v.abs() for name, v in p.items()}
                mag = torch.maximum(mag, forward_op(node.op, [a.abs() for a in ins], absp).abs())
            rel = gamma(k) + (2 * U_F16 if sim.fp16_operands and has_fp16_operands(node.op) else 0.0)
            bound += rel * float((gy.abs() * mag).sum())
        for tr, gp in zip(trainable, grads[len(outs) :], strict=True):
            if gp is not None:
                bound += drift[tr.key] * float(gp.reshape(-1)[tr.index].abs().sum())
        n = pred.numel()
        bound += gamma(2 * n) * (abs(float(loss)) + float(pred.abs().max()))
    for leaf in leaves:
        leaf.requires_grad_(False)
    return bound
