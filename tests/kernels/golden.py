"""PyTorch references and closeness checks for the kernel golden tests.

References run in float64 through :func:`mcutrain.torchops.forward_op` (a batch of one sample) and
``torch.autograd.grad``; the C kernels run in float32. A check passes when, elementwise,
``|c - ref| <= atol + rtol * |ref|`` and every value is finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mcutrain.core import ir
from mcutrain.core.semantics import forward_op


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float


#: Forward outputs (float32 kernel vs float64 reference, values O(1)).
FW = Tol(rtol=1e-5, atol=1e-5)
#: Gradients (longer float32 sums: weight gradients reduce over a whole feature map).
GRAD = Tol(rtol=1e-5, atol=5e-5)
#: Optimizer states over several steps vs torch.optim in float32.
OPTIM = Tol(rtol=1e-5, atol=1e-6)


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: Tol, what: str) -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), (
        f"{what}: non-finite values at {np.argwhere(~np.isfinite(actual))[:5]}"
    )
    err = np.abs(actual - expected)
    bound = tol.atol + tol.rtol * np.abs(expected)
    if not np.all(err <= bound):
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{what}: {int(np.sum(err > bound))}/{err.size} elements off; worst at {tuple(map(int, i))}: "
            f"got {actual[i]:.9g}, expected {expected[i]:.9g} "
            f"(err {err[i]:.3g}, rtol {tol.rtol}, atol {tol.atol})"
        )


def rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def op_reference(
    op: ir.Op,
    inputs: Sequence[np.ndarray],
    params: Mapping[str, np.ndarray],
    gy: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray], dict[str, np.ndarray]]:
    """Forward of one sample and the vector-Jacobian product with ``gy``: (y, input grads, param grads)."""
    xs = [torch.tensor(a[None], dtype=torch.float64, requires_grad=True) for a in inputs]
    ps = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    y = forward_op(op, xs, ps)
    wrt = [*xs, *ps.values()]
    grads = torch.autograd.grad(y, wrt, torch.tensor(gy[None], dtype=torch.float64), allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]
    gx = [g[0].numpy() for g in grads[: len(xs)]]
    gp = {k: g.numpy() for k, g in zip(ps, grads[len(xs) :], strict=True)}
    return y.detach()[0].numpy(), gx, gp
