"""`mcutrain demo handposture`: ST's VL53L5CX hand-posture CNN adapts to the VL53L8CX and its user.

Per-user protocol (default): of every recording of the user (one take of one posture), the first half of
its frames is the user's calibration session and the later half is held out
(``HandPostureFrames.adaptation_split(user, 0.5)``). The host buffers the session and streams it to the
device ``epochs`` times, each epoch in a fresh seeded permutation (``order="shuffled"``), or as recorded
(``order="recorded"``: posture after posture, which batch-1 training forgets). Cross-user protocol
(``cross_user``): the other users' frames stream, all frames of the user are tested.

The plan (``strategy`` under ``budget``) is scored on the first ``calib`` samples of the stream. The
runner (:mod:`mcutrain.adapt`) trains the simulator and, unless ``simulator_only``, the serial-link
firmware on a Cortex-M4F in QEMU on the same samples; accuracy is measured on the held-out frames.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcutrain import api
from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.data import handposture as hp
from mcutrain.data.shared import SharedDataMissing, read_manifest, shared_path
from mcutrain.demos.adaptation import AdaptResult, InputEncoding, run_adaptation
from mcutrain.train.planner import PlanResult
from mcutrain.train.scoring import Calibration
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError

# Frames travel as int16 with 1/256 steps: normalized distance and signal of the whole dataset lie in
# [-1, 19] (no clipping) and the model's accuracy on the decoded frames equals that on the floats.
ENCODING = InputEncoding.i16(1.0 / 256.0)
ORDERS = ("shuffled", "recorded")
STRATEGIES = ("auto", "full", "last-layer", "bias-only")


@dataclass(frozen=True)
class HandPostureDemoConfig:
    user: str = "User1"
    budget: int | None = 16 * 1024  # bytes; None: the full update's peak RAM ("full")
    strategy: str = "auto"
    cross_user: bool = False
    data: Path | None = None  # zip or unpacked folder; None: the shared data zip
    model: Path | None = None  # .tflite or IR .json; None: the shared ST model
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_scale: str = "relative"  # per-tensor rates: a step relative to each tensor's RMS (mcutrain.optim)
    schedule: str = "cosine"
    weight_decay: float = 1e-4
    epochs: int = 5
    order: str = "shuffled"
    samples: int | None = None  # first samples of the calibration session (None: all)
    calib: int = 128  # stream samples that score the auto plan's candidates
    batch: int = 1  # samples per update (gradients accumulated on the device)
    seed: int = 0
    simulator_only: bool = False
    # int8: the frozen layers run int8, the float model quantized first from the calibration session's
    # first ``calib`` frames (post-training quantization, docs/quantization.md)
    frozen_precision: str = "fp32"
    out: Path = Path("out/demo-handposture")


def load_graph(model: Path | None = None) -> ir.Graph:
    return api.load(model if model is not None else shared_path(read_manifest(hp.MANIFEST)["model"]))


def split(cfg: HandPostureDemoConfig) -> tuple[hp.HandPostureFrames, hp.HandPostureFrames]:
    """(calibration session in recorded order, held-out frames) of the configured protocol."""
    frames = hp.load(cfg.data)
    stream, test = frames.cross_user_split(cfg.user) if cfg.cross_user else frames.adaptation_split(cfg.user)
    if cfg.samples is not None:
        if cfg.samples < 1:
            raise PlanError(f"--samples must be at least 1, got {cfg.samples}")
        stream = stream.take(slice(0, cfg.samples))
    return stream, test


def stream_order(
    frames: hp.HandPostureFrames, order: str, epochs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as sent: ``epochs`` passes over the session, recorded or each in a new permutation."""
    if order not in ORDERS:
        raise PlanError(f"unknown stream order {order!r}: use {' or '.join(ORDERS)}")
    if epochs < 1:
        raise PlanError(f"epochs must be at least 1, got {epochs}")
    rng = np.random.default_rng(seed)
    idx = [
        rng.permutation(len(frames)) if order == "shuffled" else np.arange(len(frames)) for _ in range(epochs)
    ]
    i = np.concatenate(idx)
    return frames.x[i], frames.y[i]


def optimizer(cfg: HandPostureDemoConfig, steps: int) -> OptimizerConfig:
    try:
        kind = OptimizerKind(cfg.optimizer)
    except ValueError:
        raise PlanError(f"unknown optimizer {cfg.optimizer!r}: use sgd, momentum or adam") from None
    return OptimizerConfig(
        kind, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule, total_steps=max(1, steps)
    )


def make_plan(
    graph: ir.Graph, cfg: HandPostureDemoConfig, opt: OptimizerConfig, calib: Calibration | None
) -> PlanResult:
    """The plan of ``cfg.strategy``; budget ``None`` means the full update's peak RAM."""
    if cfg.strategy not in STRATEGIES:
        raise PlanError(f"unknown strategy {cfg.strategy!r}: use one of {', '.join(STRATEGIES)}")
    budget = cfg.budget
    kw = {
        "optimizer": opt,
        "batch": cfg.batch,
        "lr_scale": cfg.lr_scale,
        "frozen_precision": cfg.frozen_precision,
    }
    if budget is None:
        budget = api.plan(graph, None, "full", **kw).memory.peak_ram_bytes  # type: ignore[arg-type]
    return api.plan(graph, budget, cfg.strategy, calib=calib, **kw)  # type: ignore[arg-type]


def calibration(x: np.ndarray, y: np.ndarray, classes: int, n: int) -> Calibration:
    """The first ``n`` stream samples as the planner's calibration data (decoded as the device sees them)."""
    return Calibration(ENCODING.decode(x[:n]), np.eye(classes, dtype=np.float32)[y[:n]])


def adapt(
    graph: ir.Graph,
    cfg: HandPostureDemoConfig,
    stream: hp.HandPostureFrames,
    test: hp.HandPostureFrames,
    say: Callable[[str], None] | None = None,
) -> tuple[PlanResult, AdaptResult]:
    """Plan and run one case on already loaded frames (the benchmark calls this for every cell)."""
    x, y = stream_order(stream, cfg.order, cfg.epochs, cfg.seed)
    if cfg.frozen_precision == "int8":
        graph = api.quantize(graph, ENCODING.decode(stream.x[: cfg.calib]))
    opt = optimizer(cfg, len(y) // cfg.batch)
    res = make_plan(graph, cfg, opt, calibration(x, y, len(test.class_names), cfg.calib))
    r = run_adaptation(
        graph,
        res,
        x,
        y,
        test.x,
        test.y,
        ENCODING,
        device=not cfg.simulator_only,
        workdir=cfg.out,
        progress=say is not None,
        say=say,
        yardstick=not cfg.simulator_only,  # with the device: how far float32 round-off alone goes
    )
    return res, r


def run(cfg: HandPostureDemoConfig) -> dict[str, Any]:
    say = print
    cfg.out.mkdir(parents=True, exist_ok=True)
    graph = load_graph(cfg.model)
    stream, test = split(cfg)
    where = f"other users than {cfg.user}" if cfg.cross_user else f"{cfg.user}'s calibration session"
    say(
        f"[1/3] {len(stream)} frames of {where} ({cfg.order}, {cfg.epochs} epoch{'s' * (cfg.epochs > 1)}); "
        f"{len(test)} held-out frames of {cfg.user}"
    )
    res, r = adapt(graph, cfg, stream, test, say=lambda s: say(f"      {s}"))
    say(f"[2/3] plan {res.plan.strategy}: {format_bytes(res.memory.peak_ram_bytes)} peak RAM")
    for lu in res.plan.trained:
        say(f"      {lu.name}: {lu.describe(graph.shapes[lu.name][0])}")
    say(f"[3/3] accuracy on held-out frames: {r.accuracy_before:.2%} -> {r.accuracy_after:.2%}")
    result = {
        "demo": "handposture",
        "user": cfg.user,
        "protocol": "cross-user" if cfg.cross_user else "per-user",
        "order": cfg.order,
        "epochs": cfg.epochs,
        "optimizer": {
            "kind": cfg.optimizer,
            "lr": cfg.lr,
            "schedule": cfg.schedule,
            "weight_decay": cfg.weight_decay,
        },
        "budget_bytes": res.plan.budget_bytes,
        "frozen_precision": cfg.frozen_precision,
        "plan": [lu.describe(graph.shapes[lu.name][0]) + f" {lu.name}" for lu in res.plan.trained],
        **r.to_dict(),
    }
    (cfg.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(args: Any) -> dict[str, Any]:
    """``mcutrain demo handposture`` (flags in ``mcutrain.cli``)."""
    cfg = HandPostureDemoConfig(
        user=args.user,
        budget=args.budget,  # bytes, or None: the full update's (parsed by the demo verb)
        strategy=args.strategy,
        cross_user=args.cross_user,
        data=Path(args.data) if args.data else None,
        optimizer=args.optimizer or HandPostureDemoConfig.optimizer,
        lr=args.lr if args.lr is not None else HandPostureDemoConfig.lr,
        lr_scale=args.lr_scale or HandPostureDemoConfig.lr_scale,
        epochs=args.epochs,
        order=args.order,
        samples=args.samples,
        simulator_only=args.simulator_only,
        frozen_precision=args.frozen_precision,
        out=Path(args.out) if args.out else HandPostureDemoConfig.out,
    )
    try:
        return run(cfg)
    except (hp.HandPostureError, SharedDataMissing) as e:
        raise PlanError(str(e)) from None
