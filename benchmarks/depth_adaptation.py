"""On-device adaptation of the depth network to domain B with ToF pseudo-labels, in the simulator.

The pre-trained network (domain A) streams domain-B frames one at a time; the only supervision is the
8x8 ToF zones (masked berHu on the prediction pooled over each zone). Compares the full update with the
auto plan at 1/2.2 of the full update's memory (the published case's ratio) and the baselines, all on
the same samples in the same order; reports dense and zone RMSE on held-out domain-B frames.

With ``--int8-budget 256``, also the auto plan under that budget (KB) with int8 frozen layers: the
network post-training quantized from the first 64 stream frames (docs/quantization.md).

Run:  .venv/bin/python benchmarks/depth_adaptation.py [--train 1000] [--test 256] [--lr 3e-4]
      [--int8-budget 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from mcutrain import api
from mcutrain.core.units import format_bytes
from mcutrain.data.scenes import SceneBatch, generate
from mcutrain.train.planner import PlanResult
from mcutrain.train.scoring import Calibration
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec
from mcutrain.zoo.depth import MAX_DEPTH_M, depth_errors, zone_tensors


def rmse(sim: Simulator, batch: SceneBatch) -> tuple[float | None, float]:
    return depth_errors(sim.predict(zone_tensors(batch)[0])[:, 0].numpy() * MAX_DEPTH_M, batch)


def _layers(res: PlanResult) -> str:
    return ", ".join(f"{lu.name}:{lu.update.value}" for lu in res.plan.trained)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument(
        "--int8-budget", type=int, help="also the auto plan with int8 frozen layers under this many KB"
    )
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    g = api.load("depth")
    stream = generate("B", args.train, seed=101)
    test = generate("B", args.test, seed=202)
    f = stream.footprint
    loss = LossConfig(LossKind.BERHU, masked=True, zone=ZoneSpec(f.top, f.left, f.zone_h, f.zone_w))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=args.lr)
    x, t, m = zone_tensors(stream)
    calib = Calibration(x[:64], t[:64], m[:64])
    full = api.plan(g, None, "full", loss=loss, optimizer=opt)
    budget = int(full.memory.peak_ram_bytes / 2.2)
    plans = {
        "full": (g, full),
        f"auto@{format_bytes(budget)}": (
            g,
            api.plan(g, budget, "auto", calib=calib, loss=loss, optimizer=opt),
        ),
        "last-layer": (g, api.plan(g, None, "last-layer", loss=loss, optimizer=opt)),
        "bias-only": (g, api.plan(g, None, "bias-only", loss=loss, optimizer=opt)),
    }
    if args.int8_budget:
        qg = api.quantize(g, x[:64])
        res = api.plan(qg, args.int8_budget * 1024, "auto", calib=calib, loss=loss, optimizer=opt)
        plans[f"int8 auto@{args.int8_budget} KB"] = (qg, res)
    base = rmse(Simulator(g, full.plan), test)
    print(f"pre-trained on A, tested on B: dense RMSE {base[0]:.3f} m, zone RMSE {base[1]:.3f} m")
    print(f"{'plan':<18} {'peak RAM':>10} {'dense RMSE':>11} {'zone RMSE':>10} {'recovered':>10} {'s':>6}")
    gains = {}
    for name, (graph, res) in plans.items():
        t0 = time.perf_counter()
        sim = Simulator(graph, res.plan)
        for _ in range(args.epochs):
            sim.fit(x, t, m)
        d, z = rmse(sim, test)
        gains[name] = base[0] - d
        rec = gains[name] / gains["full"] if "full" in gains and gains["full"] > 0 else 1.0
        print(
            f"{name:<18} {format_bytes(res.memory.peak_ram_bytes):>10} {d:>11.3f} {z:>10.3f} {rec:>9.0%} "
            f"{time.perf_counter() - t0:>6.0f}"
        )
        if res.plan.frozen_precision == "int8":
            prec = res.memory.train_graph.precision
            n8 = sum(1 for n in graph.nodes if prec is not None and prec.node_int8(n.name))
            print(f"{'':<18} {n8} of {len(graph.nodes)} nodes int8; trained: {_layers(res)}")


if __name__ == "__main__":
    main()
