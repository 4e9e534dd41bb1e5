"""The self-test firmware's samples and its expected results: the simulator's losses and final parameters
on the same samples, with the tolerances the firmware's verdict uses (docs/firmware.md, "The verdict").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mcutrain.core import ir
from mcutrain.train.roundoff import loss_error_bound
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors
from mcutrain.train.update_plan import LossKind, PlanError, UpdatePlan

#: Exit status of the firmware: pass, the self-test's mismatches, and the board's fault handler.
EXIT_CODES = {"pass": 0, "loss": 10, "param": 11, "nonfinite": 12, "fault": 250}
#: Relative tolerance of the self-test (losses and parameters). On the host the generated C matches the
#: simulator to 1e-5; on Cortex-M the build has -ffp-contract=off, so only libm (expf, logf) and the order of
#: float sums in PyTorch differ: measured max 2.1e-7 (loss) and 4.9e-7 (parameters) over the models and plans
#: of tests/emulator/test_firmware_selftest.py. Widened to 4x the float32 noise floor (the float32 simulator
#: against float64) where a model amplifies round-off more than this, as in tests/test_codegen.py.
DEFAULT_TOL = 1e-5
LOSS_FLOOR = 1e-3  # loss errors are relative to max(|loss|, LOSS_FLOOR)


# ---- self-test data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfTest:
    """Samples for the self-test firmware, one training step each, in the model's input layout."""

    x: np.ndarray  # [N, *input shape]
    target: np.ndarray  # [N, target numel]
    mask: np.ndarray | None = None  # [N, target numel] for masked losses
    tol: float = DEFAULT_TOL  # relative tolerance of losses and parameters (before the noise-floor widening)

    @property
    def steps(self) -> int:
        return len(self.x)

    @staticmethod
    def random(graph: ir.Graph, plan: UpdatePlan, steps: int, seed: int = 0) -> SelfTest:
        """Standard-normal inputs; one-hot labels (cross-entropy) or targets in [0, 1]; masks with ~70%
        valid elements when the loss is masked."""
        if steps < 1:
            raise PlanError(f"a self-test needs at least one step, got {steps}")
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((steps, *graph.inputs[0][1])).astype(np.float32)
        numel = plan.loss.target_numel(graph.shapes[graph.outputs[0]])
        if plan.loss.kind is LossKind.XENT:
            t = np.eye(numel, dtype=np.float32)[rng.integers(0, numel, steps)]
        else:
            t = rng.random((steps, numel)).astype(np.float32)
        m = (rng.random((steps, numel)) > 0.3).astype(np.float32) if plan.loss.masked else None
        return SelfTest(x, t, m)


@dataclass(frozen=True)
class Expected:
    losses: np.ndarray  # [N] the float64 simulator's loss of each step before its update
    params: tuple[tuple[str, np.ndarray], ...]  # C name of each trainable vector, its values after N steps
    tol_losses: np.ndarray  # [N] relative tolerance of each step's loss: its round-off bound
    tol_param: float
    noise_loss: float  # float32 simulator vs float64: the model's own round-off amplification
    noise_param: float

    @property
    def tol_loss(self) -> float:
        """The largest per-step loss tolerance."""
        return float(np.max(self.tol_losses))


#: Safety factor on the first-order round-off bound of a step's loss (second-order terms).
BOUND_SAFETY = 2.0


def _run(sim: Simulator, st: SelfTest, each: Callable[[int], None] | None = None) -> np.ndarray:
    losses = []
    for i in range(st.steps):
        if each is not None:
            each(i)
        m = None if st.mask is None else st.mask[i : i + 1]
        losses.append(sim.train_step(st.x[i : i + 1], st.target[i : i + 1], m))
    return np.array(losses, dtype=np.float64)


def expected(graph: ir.Graph, plan: UpdatePlan, st: SelfTest, fp16_operands: bool = False) -> Expected:
    """The simulator's losses and final parameters on the self-test's samples, and the tolerances
    (``fp16_operands``: the PULP cluster's FP16 option, docs/gap9.md).

    Parameters: the float32 simulator's, within ``max(st.tol, 4 x`` the float32-vs-float64 difference``)``
    of each vector's largest value. Losses: the float64 simulator's, each within its step's first-order
    round-off bound (:func:`mcutrain.train.roundoff.loss_error_bound`, times :data:`BOUND_SAFETY`), which
    allows the parameters their tolerance of drift: a correct build cannot fail on a chaotic loss."""
    sim32 = Simulator(graph, plan, dtype=torch.float32, fp16_operands=fp16_operands)
    l32 = _run(sim32, st)
    p32 = trainable_vectors(graph, plan, sim32.numpy_params())
    if not (np.all(np.isfinite(l32)) and all(np.all(np.isfinite(v)) for _, v in p32)):
        raise PlanError(
            f"the simulator's training diverges on the self-test samples within {st.steps} steps "
            "(a non-finite loss or parameter): lower the learning rate or the number of steps"
        )
    sim64 = Simulator(graph, plan, dtype=torch.float64, fp16_operands=fp16_operands)
    l64 = _run(sim64, st)
    p64 = trainable_vectors(graph, plan, sim64.numpy_params())
    noise_loss = float(np.max(np.abs(l32 - l64) / np.maximum(np.abs(l64), LOSS_FLOOR)))
    noise_param = max(
        (float(np.max(np.abs(a - b))) / param_scale(a) for (_, a), (_, b) in zip(p32, p64, strict=True)),
        default=0.0,
    )
    tol_param = max(st.tol, 4 * noise_param)
    # allowed drift of each trainable tensor (its vector's tolerance), in the simulator's trainable order
    drift = {tr.key: tol_param * param_scale(v) for tr, (_, v) in zip(sim64.trainables, p32, strict=True)}
    sim = Simulator(graph, plan, dtype=torch.float64, fp16_operands=fp16_operands)
    bounds = np.zeros(st.steps)

    def bound(i: int) -> None:
        m = None if st.mask is None else st.mask[i]
        bounds[i] = loss_error_bound(sim, st.x[i], st.target[i], m, drift if i else dict.fromkeys(drift, 0.0))

    _run(sim, st, bound)
    tol_losses = np.maximum(st.tol, BOUND_SAFETY * bounds / np.maximum(np.abs(l64), LOSS_FLOOR))
    return Expected(l64.astype(np.float32), tuple(p32), tol_losses, tol_param, noise_loss, noise_param)


def param_scale(v: np.ndarray) -> float:
    return float(np.max(np.abs(v))) + 1e-12


def rel_diff(got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference of ``got`` from ``want`` relative to ``want``'s largest magnitude (0 for
    empty vectors): how far device parameters are from the simulator's."""
    return float(np.max(np.abs(got - want))) / param_scale(want) if want.size else 0.0
