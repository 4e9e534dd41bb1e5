"""`mcutrain demo cifar-shift`: MLPerf Tiny's ResNet-8 adapts on the device to shifted CIFAR-10 images.

The pre-trained ResNet-8 meets grayscale images or images with sensor noise (:mod:`mcutrain.data.cifar`).
Half of the 1,000 real test images (50 per class) adapt the model, the other half measure it. mcutrain
plans the update under a RAM budget (``auto``, or a baseline: ``last-layer``, ``bias-only``, ``full``),
calibrating the auto plan's scores on the shifted adapt images, and fine-tunes with the training recipe
of the shift (Adam with each tensor's rate relative to its pretrained RMS, cosine learning-rate decay, a
few epochs over the adapt images, each later epoch in a new seeded order). The images travel as 8-bit
pixels (one byte per value on the serial link; the noisy images are rounded to integers, as a sensor
delivers them). :func:`mcutrain.adapt.run_adaptation` runs the simulator and, unless ``simulator_only``,
the firmware on a Cortex-M4F (mps2-an386) in QEMU.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain import api
from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.data import cifar
from mcutrain.data.shared import SharedDataMissing, read_manifest, shared_path
from mcutrain.demos.adaptation import InputEncoding, accuracy, run_adaptation
from mcutrain.train.optimizers import LR_SCALES
from mcutrain.train.plan_file import write_plan
from mcutrain.train.planner import STRATEGIES, PlanResult
from mcutrain.train.scoring import Calibration
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError

ENCODING = InputEncoding.u8(1.0)  # raw pixels 0..255, one byte each
SHIFTS = ("grayscale", "noise")
STRATEGY_CHOICES = tuple(s for s in STRATEGIES if s != "last-k")


@dataclass(frozen=True)
class Recipe:
    """The training recipe of a shift (chosen on the simulator, docs/cifar.md)."""

    lr: float
    epochs: int
    lr_scale: str = "none"  # "relative": lr is a step relative to each tensor's RMS (mcutrain.optim)


RECIPES = {
    "grayscale": Recipe(lr=3e-3, epochs=4, lr_scale="relative"),
    "noise": Recipe(lr=1e-2, epochs=8, lr_scale="relative"),
}


@dataclass
class CifarDemoConfig:
    shift: str = "grayscale"
    budget: int | None = 256 * 1024  # bytes; None: no budget (only the full update and baselines)
    strategy: str = "auto"
    data: Path | None = None  # the .npz of CIFAR images; None: the shared data file
    device: bool = True  # also run the firmware in QEMU; False: simulator only
    lr: float | None = None  # None: the shift's recipe
    lr_scale: str | None = None  # none | relative; None: the shift's recipe
    epochs: int | None = None  # passes over the adapt images; None: the shift's recipe
    samples: int | None = None  # stream only the first N samples of the epochs (a short run)
    test: int | None = None  # measure on N of the test images only (evenly spread over the classes)
    calib: int = 200  # adapt images the auto plan's scores are measured on
    # measure on the last N adapt images instead of the test half, adapting on the others: the protocol
    # that chose the recipes without looking at the test images (docs/cifar.md)
    holdout: int | None = None
    score: str = "measured"
    seed: int = 0  # order of the epochs after the first
    # int8: the frozen layers run int8, quantized after training from clean images (as deployed before
    # the shift; post-training quantization, docs/quantization.md)
    frozen_precision: str = "fp32"
    out: Path = Path("out/demo-cifar")

    def recipe(self) -> Recipe:
        r = RECIPES[self.shift]
        return Recipe(
            self.lr if self.lr is not None else r.lr, self.epochs or r.epochs, self.lr_scale or r.lr_scale
        )


def check(cfg: CifarDemoConfig) -> None:
    """Reject a configuration that cannot run, saying what to change."""
    if cfg.shift not in SHIFTS:
        raise PlanError(f"unknown shift {cfg.shift!r}: choose one of {', '.join(SHIFTS)}")
    if cfg.strategy not in STRATEGY_CHOICES:
        raise PlanError(f"unknown strategy {cfg.strategy!r}: choose one of {', '.join(STRATEGY_CHOICES)}")
    if cfg.strategy == "auto" and cfg.budget is None:
        raise PlanError("the auto strategy needs a RAM budget (e.g. --budget 256KB)")
    if cfg.lr_scale not in (None, *LR_SCALES):
        raise PlanError(f"unknown --lr-scale {cfg.lr_scale!r}: choose one of {', '.join(LR_SCALES)}")
    for name in ("epochs", "samples", "test", "calib", "holdout"):
        v = getattr(cfg, name)
        if v is not None and v < 1:
            raise PlanError(f"--{name} must be at least 1, got {v}")


def model_path() -> Path:
    return shared_path(read_manifest(cifar.MANIFEST)["model"])


def epoch_stream(adapt: cifar.CifarImages, epochs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adapt images ``epochs`` times: the first pass in the split's (already mixed) order, each later
    pass in a new ``default_rng(seed)`` permutation. Returns (x, y) in the order they are streamed."""
    rng = np.random.default_rng(seed)
    order = [np.arange(len(adapt))] + [rng.permutation(len(adapt)) for _ in range(epochs - 1)]
    idx = np.concatenate(order)
    return adapt.x[idx], adapt.y[idx]


def spread(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` indices evenly spaced: about ``k / 10`` images of each class from the class-sorted test
    indices (the first ``k`` would hold one or two classes only)."""
    return np.unique(np.round(np.linspace(0, n - 1, min(k, n))).astype(np.int64))


def optimizer(lr: float, steps: int) -> OptimizerConfig:
    """Adam with the learning rate decaying to 0 over the stream (cosine)."""
    return OptimizerConfig(OptimizerKind.ADAM, lr=lr, schedule="cosine", total_steps=max(1, steps))


def make_plan(
    graph: ir.Graph,
    strategy: str,
    budget: int | None,
    opt: OptimizerConfig,
    calib: cifar.CifarImages,
    score: str = "measured",
    lr_scale: str = "none",
    frozen_precision: str = "fp32",
) -> PlanResult:
    """The plan of ``strategy`` under ``budget``; the auto plan's scores are measured on ``calib`` (the
    shifted adapt images as the device sees them), training with the plan's learning-rate scales."""
    data = Calibration(ENCODING.decode(calib.x), calib.one_hot())
    kw = {"lr_scale": lr_scale, "frozen_precision": frozen_precision}
    if strategy == "auto" and score == "measured":  # a budget below the minimum fails before scoring
        api.plan(graph, budget, strategy, data.take(slice(0, 8)), opt, score="proxy", **kw)
    auto = data if strategy == "auto" else None
    return api.plan(graph, budget, strategy, auto, opt, score=score, **kw)


def describe(graph: ir.Graph, res: PlanResult) -> str:
    """What a plan updates, e.g. ``conv2d: weight all + bias; conv2d_1..conv2d_8: bias``."""
    parts = [f"{lu.name}: {lu.describe(graph.shapes[lu.name][0])}" for lu in res.plan.layers]
    return "; ".join(parts) if parts else "nothing"


def run(cfg: CifarDemoConfig, say: Any = print) -> dict[str, Any]:
    """Plan, adapt (simulator, and the device unless ``cfg.device`` is false), measure; returns the
    results (also written to ``cfg.out/results.json``)."""
    check(cfg)
    t0 = time.perf_counter()
    recipe = cfg.recipe()
    graph = api.load(model_path())
    adapt, test = cifar.load(cfg.data, shift=cfg.shift).split()
    clean_adapt, clean_test = cifar.load(cfg.data, shift="clean").split()
    if cfg.frozen_precision == "int8":
        graph = api.quantize(graph, ENCODING.decode(clean_adapt.x[: cfg.calib]))
    if cfg.holdout is not None:
        if cfg.holdout >= len(adapt):
            raise PlanError(f"--holdout must be below the {len(adapt)} adapt images, got {cfg.holdout}")
        cut = slice(len(adapt) - cfg.holdout, None)
        test, clean_test, adapt = adapt.take(cut), clean_adapt.take(cut), adapt.take(slice(0, cut.start))
    if cfg.test is not None:
        test, clean_test = (
            test.take(spread(len(test), cfg.test)),
            clean_test.take(spread(len(test), cfg.test)),
        )
    xs, ys = epoch_stream(adapt, recipe.epochs, cfg.seed)
    if cfg.samples is not None:
        xs, ys = xs[: cfg.samples], ys[: cfg.samples]
    opt = optimizer(recipe.lr, len(ys))
    say(
        f"[1/3] plan: {cfg.strategy} under {format_bytes(cfg.budget) if cfg.budget else 'no budget'} "
        f"for {cfg.shift} images; Adam lr {recipe.lr:g} (cosine, lr scale {recipe.lr_scale}), "
        f"{len(ys)} samples"
    )
    calib = adapt.take(slice(0, cfg.calib))
    res = make_plan(
        graph, cfg.strategy, cfg.budget, opt, calib, cfg.score, recipe.lr_scale, cfg.frozen_precision
    )
    say(f"      peak RAM {format_bytes(res.memory.peak_ram_bytes)}: {describe(graph, res)}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_plan(cfg.out / "plan.json", res.plan, res.memory, str(model_path()), graph.inputs[0][1])
    where = "simulator and Cortex-M4F in QEMU" if cfg.device else "simulator"
    say(f"[2/3] adapt on {len(adapt)} {cfg.shift} images ({where}), test on {len(test)} others")
    r = run_adaptation(
        graph,
        res,
        xs,
        ys,
        test.x,
        test.y,
        ENCODING,
        device=cfg.device,
        workdir=cfg.out,
        progress=cfg.device,
        say=lambda s: say(f"      {s}"),
    )
    clean = accuracy(graph, ENCODING.decode(clean_test.x), clean_test.y, res.plan)
    gap = clean - r.accuracy_before
    recovered = (r.accuracy_after - r.accuracy_before) / gap if gap > 0 else float("nan")
    say(
        f"[3/3] accuracy {r.accuracy_before:.1%} -> {r.accuracy_after:.1%} (clean images {clean:.1%}): "
        f"{recovered:.0%} of the gap recovered"
    )
    result = {
        "demo": "cifar-shift",
        "shift": cfg.shift,
        "strategy": cfg.strategy,
        "budget_bytes": cfg.budget,
        "frozen_precision": cfg.frozen_precision,
        "peak_ram_bytes": r.peak_ram_bytes,
        "accuracy_before": r.accuracy_before,
        "accuracy_after": r.accuracy_after,
        "accuracy_clean": clean,
        "gap_recovered": recovered,
        "simulator_accuracy": r.simulator_accuracy,
        "device_accuracy": r.device_accuracy,
        "device_vs_simulator_max_abs": r.device_vs_simulator_max_abs,
        "device_vs_simulator_rel": r.device_vs_simulator_rel,
        "instructions_per_sample": r.instructions_per_sample,
        "plan": describe(graph, res),
        "trainable_params": r.trainable_params,
        "samples": r.samples,
        "test_samples": r.test_samples,
        "holdout": cfg.holdout,
        "recipe": {**asdict(recipe), "optimizer": "adam", "schedule": "cosine", "seed": cfg.seed},
        "seconds": time.perf_counter() - t0,
    }
    (cfg.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(args: Any) -> dict[str, Any]:
    """``mcutrain demo cifar-shift`` (flags in ``mcutrain.cli``). A budget below what training needs is
    an error naming the smallest budget that works."""
    cfg = CifarDemoConfig(
        shift=args.shift,
        budget=args.budget,  # bytes, or None: the full update's (parsed by the demo verb)
        strategy=args.strategy,
        data=Path(args.data) if args.data else None,
        device=not args.simulator_only,
        lr=args.lr,
        lr_scale=args.lr_scale,
        epochs=args.epochs,
        samples=args.samples,
        test=args.test,
        calib=args.calib,
        score=args.score,
        frozen_precision=args.frozen_precision,
        out=Path(args.out) if args.out else CifarDemoConfig.out,
    )
    try:
        return run(cfg)
    except (cifar.CifarError, SharedDataMissing) as e:
        raise PlanError(str(e)) from None
