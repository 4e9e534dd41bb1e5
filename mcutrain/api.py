"""The Python API: the verbs of the CLI as functions, for notebooks and scripts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np

from mcutrain.core import ir
from mcutrain.core.int8_scratch import AUTO_COL_BYTES, S8_COL_BYTES
from mcutrain.frontends import FrontendError, load_model
from mcutrain.train.derive import s8_scratches
from mcutrain.train.optimizers import lr_scales
from mcutrain.train.planner import STRATEGIES, BudgetError, PlanResult, ScoreFn, plan_auto, plan_baseline
from mcutrain.train.scoring import Calibration, measured_scorer, proxy_scorer, random_calibration
from mcutrain.train.update_plan import (
    STACK_RESERVE_BYTES,
    LinkApp,
    LossConfig,
    LossKind,
    OptimizerConfig,
    PlanError,
    UpdatePlan,
)


def load(model: str | Path, input_shape: Sequence[int] | None = None) -> ir.Graph:
    """A model file, ``package.module:factory`` or the name of a built-in model (``mcutrain.zoo``)."""
    spec = str(model)
    if not Path(spec).exists() and ":" not in spec and not spec.endswith((".tflite", ".pt2")):
        from mcutrain.zoo import BUILTIN

        if spec not in BUILTIN:
            raise FrontendError(
                f"{spec!r} is not a file, a 'package.module:factory' or a built-in model "
                f"({', '.join(sorted(BUILTIN))})"
            )
        spec = BUILTIN[spec]
    return load_model(spec, input_shape)


def default_loss(graph: ir.Graph) -> LossConfig:
    """Cross-entropy for classifiers (a vector of two or more outputs), MSE otherwise (a single output, as
    a regression's, would make cross-entropy identically zero)."""
    shape = graph.shapes[graph.outputs[0]]
    return LossConfig(LossKind.XENT if len(shape) == 1 and shape[0] > 1 else LossKind.MSE)


def quantize(graph: ir.Graph, x: np.ndarray) -> ir.Graph:
    """Post-training quantization of a float graph with calibration inputs ``x`` (int8 frozen layers;
    :mod:`mcutrain.train.ptq`)."""
    from mcutrain.train.ptq import quantize_graph

    return quantize_graph(graph, x)


def load_calibration(path: str | Path, graph: ir.Graph, loss: LossConfig) -> Calibration:
    """An ``.npz`` with ``x`` (samples in the model's input layout), ``y`` or ``target`` (class ids or
    targets) and optionally ``mask``; :class:`PlanError` naming the file and what is wrong otherwise."""
    try:
        with np.load(path) as d:
            if "x" not in d or ("y" not in d and "target" not in d):
                raise PlanError(
                    f"calibration data {path} has arrays {sorted(d.files)}: it needs x (the samples) and y "
                    "(class ids) or target (targets)"
                )
            x = d["x"].astype(np.float32)
            y = d["y"] if "y" in d else d["target"]
            mask = d["mask"].astype(np.float32) if "mask" in d else None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise PlanError(f"cannot read calibration data {path}: {e} (expected an .npz with x and y)") from None
    want = graph.inputs[0][1]
    if tuple(x.shape[1:]) != tuple(want):
        raise PlanError(
            f"calibration inputs in {path} have per-sample shape {tuple(x.shape[1:])}, the model wants {want}"
        )
    if len(y) != len(x) or (mask is not None and len(mask) != len(x)):
        counts = f"x {len(x)}, y {len(y)}" + ("" if mask is None else f", mask {len(mask)}")
        raise PlanError(f"calibration data {path} has different sample counts: {counts}")
    for name, a in (("x", x), ("y", y), ("mask", mask)):
        if a is not None and a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            bad = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0, 0])
            raise PlanError(f"calibration data {path}: {name} has NaN or Inf values (sample {bad})")
    if loss.kind is LossKind.XENT and y.ndim == 1:
        n = graph.shapes[graph.outputs[0]][0]
        if y.min() < 0 or y.max() >= n:
            raise PlanError(f"calibration labels in {path} must lie in [0, {n}), got [{y.min()}, {y.max()}]")
        y = np.eye(n, dtype=np.float32)[y.astype(np.int64)]
    return Calibration(x, y.reshape(len(y), -1).astype(np.float32), mask)


def plan(
    graph: ir.Graph,
    budget_bytes: int | None,
    strategy: str = "auto",
    calib: Calibration | None = None,
    optimizer: OptimizerConfig | None = None,
    loss: LossConfig | None = None,
    score: str = "measured",
    k: int | None = None,
    batch: int = 1,
    progress: bool = False,
    lr_scale: str = "none",
    stack_reserve_bytes: int = STACK_RESERVE_BYTES,
    app: LinkApp | None = None,
    frozen_precision: str | None = None,
    int8_col_bytes: int | str = S8_COL_BYTES,
) -> PlanResult:
    """Plan the fine-tuning of ``graph`` under ``budget_bytes`` of RAM. ``lr_scale="relative"`` scales
    each tensor's learning rate by its pretrained RMS (:func:`mcutrain.train.optimizers.lr_scales`); the
    auto plan's measured scores train with the same scales. ``app``: the serial-link firmware whose RAM
    the budget must cover too (:class:`~mcutrain.train.update_plan.LinkApp`). ``frozen_precision``: ``int8``
    (the default for a quantized graph) or ``fp32`` (:mod:`mcutrain.train.precision`). ``int8_col_bytes``:
    the int8 DSP conv2d's column budget, which sizes its scratch (docs/quantization.md, "The column
    budget")."""
    if strategy not in STRATEGIES:
        raise PlanError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    template = UpdatePlan(
        model_name=graph.name,
        model_hash=graph.fingerprint(),
        strategy=strategy,
        layers=(),
        optimizer=optimizer or OptimizerConfig(),
        loss=loss or default_loss(graph),
        batch=batch,
        budget_bytes=budget_bytes,
        lr_scales=lr_scales(graph, lr_scale),
        stack_reserve_bytes=stack_reserve_bytes,
        app=app,
        frozen_precision=frozen_precision or ("int8" if graph.quantized else "fp32"),
        int8_col_bytes=S8_COL_BYTES if int8_col_bytes == "auto" else int(int8_col_bytes),
    )
    scorer: ScoreFn | None = None  # baselines need no scores
    if strategy == "auto":
        data = calib if calib is not None else random_calibration(graph, template)
        if score == "proxy":
            scorer = proxy_scorer(graph, template, data)
        elif score == "measured":
            scorer = measured_scorer(graph, template, data, progress=progress)
        else:
            raise PlanError(f"unknown scoring {score!r}: use proxy or measured")
        scorer = cache(scorer)  # the scores do not depend on the int8 scratch: a second attempt reuses them

    def attempt(t: UpdatePlan) -> PlanResult:
        return plan_baseline(graph, t, strategy, k) if scorer is None else plan_auto(graph, t, scorer)

    try:
        res = attempt(template)
    except BudgetError:
        if template.frozen_precision != "int8":
            raise
        # without the int8 conv2d's scratch (the reference kernels): the smaller budget, or its own minimum
        return attempt(replace(template, int8_scratch=False))
    return _wider_columns(graph, res, template, attempt) if int8_col_bytes == "auto" else res


def _wider_columns(
    graph: ir.Graph, res: PlanResult, template: UpdatePlan, attempt: Callable[[UpdatePlan], PlanResult]
) -> PlanResult:
    """The plan of ``template`` with the largest column budget of AUTO_COL_BYTES that updates the same
    layers and channels as ``res`` (its plan at the default) inside the budget; ``res`` when none does. Of
    budgets that size every conv2d's scratch alike (the larger runs no tile more), the smallest."""
    if res.plan.frozen_precision != "int8" or not res.plan.int8_scratch:
        return res
    smallest: dict[tuple[int, ...], int] = {}
    for n in sorted((res.plan.int8_col_bytes, *AUTO_COL_BYTES)):
        smallest.setdefault(s8_scratches(graph, n), n)
    for n in sorted(set(smallest.values()) - {res.plan.int8_col_bytes}, reverse=True):
        try:
            wide = attempt(replace(template, int8_col_bytes=n))
        except BudgetError:
            continue
        if wide.plan.layers == res.plan.layers:
            return wide
    return res
