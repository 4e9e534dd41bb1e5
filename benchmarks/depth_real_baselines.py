"""The drone case against honest baselines, per flight type, in the simulator (issue #14).

The split is the one fixed in ``datasets/tof_drone_flights.toml`` before any tuning: training flights
stream to the device, the held-out test flights measure it (``--tune``: the tuning split inside the
training flights instead, fit -> validation; every recipe choice was made that way). The ToF footprint
is fitted on the streamed flights' frames (:mod:`mcutrain.data.footprint_fit`). Zone RMSE (metres) on
the held-out frames, per flight type:

* ``pretrained``: the network before adaptation;
* ``zone mean``: each zone's mean training distance, no image;
* ``scale+shift``: the pre-trained zone predictions, calibrated by a least-squares ``a * z + b`` on the
  training zones;
* ``blanked``: the adaptation below, trained and evaluated on blank frames (the image removed);
* ``adapted, shuffled`` and ``adapted, time order``: the same recipe (plan, optimizer, reservoir, samples)
  streamed in a shuffled order and in recorded time order.

It prints the table, the adapted model's ratio to the best baseline and how much of the shuffled
improvement the time-ordered stream keeps; ``--json`` writes everything, ``--pictures`` a figure of
predicted depth on held-out frames before and after.

Run:  .venv/bin/python benchmarks/depth_real_baselines.py [--tune] [--json out/depth-real.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcutrain import api
from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.data.drone import DroneBatch, load_flights
from mcutrain.data.flight_split import FlightSplit
from mcutrain.data.footprint_fit import edge_score, fit_footprint, with_footprint
from mcutrain.demos import depth_stream as ds
from mcutrain.demos.depth_baselines import (
    baselines,
    blank_level,
    blanked,
    format_table,
    graph_depth,
    zone_predictions,
    zone_rmse,
)
from mcutrain.demos.replay import ReplayConfig, sample_bytes, schedule
from mcutrain.train.planner import PlanResult
from mcutrain.train.scoring import Calibration
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LinkApp, LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec

RATIO = 2.2  # the auto plan's budget: 1/2.2 of the full update's memory
DECODER_LAYERS = 8  # dec_conv.3, dec_up.2, dec_conv.2, dec_up.1, dec_conv.1, dec_up.0, dec_conv.0, head


def make_plan(
    g: ir.Graph, x: np.ndarray, t: np.ndarray, m: np.ndarray, args: argparse.Namespace, updates: int
) -> tuple[PlanResult, PlanResult]:
    """(the plan that adapts, the full update's plan). ``--plan decoder``: the decoder and the head (the
    last 8 trainable layers), the encoder frozen; ``auto``: the auto plan at 1/RATIO of the full
    update's memory."""
    fp = args.footprint
    loss = LossConfig(LossKind(args.loss), masked=True, zone=ZoneSpec(fp.top, fp.left, fp.zone_h, fp.zone_w))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=args.lr, schedule=args.schedule, total_steps=updates)
    # the reservoir (its bytes in the plans' peak RAM, its schedule the firmware's)
    app = LinkApp.make(replay_slots=args.slots, replay_steps=args.replay)
    full = api.plan(g, None, "full", loss=loss, optimizer=opt, batch=args.batch, app=app)
    if args.plan == "decoder":
        k = DECODER_LAYERS
        return api.plan(g, None, "last-k", k=k, loss=loss, optimizer=opt, batch=args.batch, app=app), full
    idx = np.random.default_rng(0).permutation(len(x))[:64]
    auto = api.plan(
        g,
        int(full.memory.peak_ram_bytes / RATIO),
        "auto",
        calib=Calibration(x[idx], t[idx], m[idx]),
        loss=loss,
        optimizer=opt,
        batch=args.batch,
        app=app,
    )
    return auto, full


def adapted(
    g: ir.Graph, res: PlanResult, train: DroneBatch, recipe: ds.StreamRecipe
) -> tuple[Simulator, list[float]]:
    frames = ds.stream_frames(train, recipe)
    x, t, m = ds.decode(ds.encode(frames, recipe), g.inputs[0][1])
    sim = Simulator(g, res.plan)
    return sim, ds.adapt(sim, x, t, m, recipe.replay)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    split = FlightSplit.load()
    train_names, test_names = (split.fit, split.val) if args.tune else (split.train, split.test)
    t0 = time.perf_counter()
    train, test = load_flights(list(train_names)), load_flights(list(test_names))
    scores = fit_footprint(train)
    fp = scores[0].footprint
    default = edge_score(train, train.footprint)
    print(
        f"train {','.join(train_names)}: {len(train)} frames; test {','.join(test_names)}: "
        f"{len(test)} frames, {int(test.tof_valid.sum()):,} valid zones ({time.perf_counter() - t0:.0f} s)"
    )
    print(
        f"footprint fitted on the training frames: {fp.zone_h}x{fp.zone_w}-px zones at rows "
        f"{fp.top}-{fp.top + fp.height - 1}, columns {fp.left}-{fp.left + fp.width - 1} (edge score "
        f"{scores[0].score:.2f}; the assumed 87 deg footprint scores {default.score:.2f})"
    )
    train, test = with_footprint(train, fp), with_footprint(test, fp)
    args.footprint = fp
    g = api.load(args.model)
    replay = ReplayConfig(slots=args.slots, replay=args.replay) if args.slots else None
    recipe = {
        order: ds.StreamRecipe(order, args.every, args.standardize, args.min_mm, replay, args.seed)
        for order in ("shuffle", "time")
    }
    plain = ds.StreamRecipe("time", args.every, args.standardize, args.min_mm, None, args.seed)
    frames = ds.stream_frames(train, recipe["time"])
    x, t, m = ds.decode(ds.encode(frames, recipe["time"]), g.inputs[0][1])
    updates = len(schedule(len(x), replay)) // args.batch
    auto, full = make_plan(g, x, t, m, args, updates)
    stored = sample_bytes(int(np.prod(g.inputs[0][1])), 64)
    print(
        f"stream: {len(frames)} labelled frames (every {args.every}), {updates} updates of {args.batch}; "
        f"plan {args.plan} {format_bytes(auto.memory.peak_ram_bytes)} "
        f"(full {format_bytes(full.memory.peak_ram_bytes)}): "
        f"{', '.join(lu.name for lu in auto.plan.trained)}; reservoir "
        f"{format_bytes(replay.bytes_for(stored)) if replay else 'none'}"
    )

    rows = baselines(graph_depth(g, args.standardize), train, test)
    level = blank_level(train)
    sim_b, _ = adapted(g, auto, blanked(train, level), recipe["shuffle"])
    rows["blanked"] = zone_rmse(
        zone_predictions(ds.sim_depth(sim_b, args.standardize), blanked(test, level)), test
    )
    sims = {}
    for order in ("shuffle", "time"):
        t1 = time.perf_counter()
        sims[order], _ = adapted(g, auto, train, recipe[order])
        rows[f"adapted, {'shuffled' if order == 'shuffle' else 'time order'}"] = zone_rmse(
            zone_predictions(ds.sim_depth(sims[order], args.standardize), test), test
        )
        print(f"adapted ({order}): {time.perf_counter() - t1:.0f} s")
    if replay is not None:  # the same stream in time order without the reservoir (its own cosine length)
        no_res, _ = make_plan(g, x, t, m, args, len(x) // args.batch)
        sim_p, _ = adapted(g, no_res, train, plain)
        rows["time order, no reservoir"] = zone_rmse(
            zone_predictions(ds.sim_depth(sim_p, args.standardize), test), test
        )
    print(format_table(rows))
    best = min(("zone_mean", "scale_shift", "pretrained", "blanked"), key=lambda k: rows[k]["all"])  # type: ignore[arg-type, return-value]
    shuf, tim, pre = (
        rows["adapted, shuffled"]["all"],
        rows["adapted, time order"]["all"],
        rows["pretrained"]["all"],
    )
    assert shuf is not None and tim is not None and pre is not None
    keep = (pre - tim) / (pre - shuf) if pre != shuf else float("nan")
    print(
        f"adapted (time order) / best baseline ({best}): {tim / rows[best]['all']:.3f} (target <= 0.85); "
        f"time order keeps {keep:.0%} of the shuffled improvement (target >= 90%)"
    )
    result = {
        "split": "tuning (fit -> validation)" if args.tune else "train -> test",
        "train_flights": list(train_names),
        "test_flights": list(test_names),
        "footprint": asdict(fp),
        "footprint_edge_score": scores[0].score,
        "assumed_footprint_edge_score": default.score,
        "model": args.model,
        "recipe": {k: v for k, v in vars(args).items() if k not in ("json", "pictures", "footprint")},
        "plan_layers": [lu.name for lu in auto.plan.trained],
        "peak_ram_bytes": auto.memory.peak_ram_bytes,
        "full_update_peak_ram_bytes": full.memory.peak_ram_bytes,
        "reservoir_bytes": replay.bytes_for(stored) if replay else 0,
        "stream_frames": len(frames),
        "updates": updates,
        "zone_rmse_m": rows,
        "best_baseline": best,
        "ratio_to_best_baseline": tim / rows[best]["all"],
        "time_order_keeps": keep,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.pictures:
        from mcutrain.demos.depth_pictures import before_after

        before_after(
            args.pictures,
            test,
            {
                "pre-trained": graph_depth(g, args.standardize),
                "adapted (time order)": ds.sim_depth(sims["time"], args.standardize),
            },
        )
        print(f"wrote {args.pictures}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tune", action="store_true", help="fit -> validation flights (the tuning split)")
    ap.add_argument("--model", default="depth", help="built-in model or file (depth, depth_drone, ...)")
    ap.add_argument("--plan", choices=("decoder", "auto"), default="decoder")
    ap.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--loss", choices=("mse", "berhu", "l1"), default="mse")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=("constant", "cosine"), default="cosine")
    ap.add_argument("--batch", type=int, default=8, help="samples per update (gradients accumulated)")
    ap.add_argument("--every", type=int, default=1, help="stream every k-th labelled frame")
    ap.add_argument("--min-mm", type=int, default=0)
    ap.add_argument("--slots", type=int, default=64, help="reservoir samples (0: no reservoir)")
    ap.add_argument("--replay", type=int, default=3, help="replayed samples per incoming one")
    ap.add_argument("--seed", type=int, default=0, help="of the shuffled order")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pictures", type=Path)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run(ap.parse_args())


if __name__ == "__main__":
    main()
