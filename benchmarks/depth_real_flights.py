"""On-device adaptation of the depth network to the real drone flights, in the simulator.

The network pre-trained on synthetic domain A (``mcutrain.api.load("depth")``) streams ``--frames``
camera frames of the training flights, one frame per update, for ``--passes`` passes: by default the
labelled frames of all training flights shuffled once with a fixed seed (``--order shuffle``; in time order,
flight after flight, the take-off frames with the floor a few cm away come first and drive the sigmoid
output to 0 m at lr 1e-3, from which it does not recover). The only labels are the valid ToF zones
(masked berHu on the prediction pooled over each zone's footprint, Adam). Frames without a valid zone
are not streamed (no label). Zone RMSE (metres) is measured on the held-out test
flights before and after, for the full update and the auto plan at 1/2.2 of its memory.

Run:  .venv/bin/python benchmarks/depth_real_flights.py [--train O0,...] [--test O10,...] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import time

import torch

from mcutrain import api
from mcutrain.core.units import format_bytes
from mcutrain.data.drone import CAM_HFOV_DEG, load_flights, stream_order
from mcutrain.demos.depth import rmse
from mcutrain.train.scoring import Calibration
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, OptimizerKind, ZoneSpec
from mcutrain.zoo.depth import zone_tensors

TRAIN = "A0,A2,A4,A6,O0,O2,O4,O6,O8,O10,O12,O14,O16,O18,R0"
TEST = "A1,A3,A5,O1,O3,O5,O7,O9,O11,O13,O15,O17,O19,R1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default=TRAIN, help="training flights, streamed in this order")
    ap.add_argument("--test", default=TEST, help="held-out flights")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--frames", type=int, default=600, help="labelled training frames streamed per pass")
    ap.add_argument("--order", choices=["shuffle", "time"], default="shuffle")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hfov", type=float, default=CAM_HFOV_DEG, help="camera horizontal FOV (footprint)")
    ap.add_argument("--plans", default="full,auto", help="comma-separated: full, auto, last-layer, bias-only")
    args = ap.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train = stream_order(load_flights(args.train, cam_hfov_deg=args.hfov).labelled(), args.order, args.seed)
    train = train.select(slice(0, args.frames))
    test = load_flights(args.test, cam_hfov_deg=args.hfov)
    print(
        f"train {args.train}: {len(train)} labelled frames; test {args.test}: {len(test)} frames, "
        f"{int(test.tof_valid.sum())} valid zones; "
        f"footprint {train.footprint} ({time.perf_counter() - t0:.0f} s)"
    )
    g = api.load("depth")
    f = train.footprint
    loss = LossConfig(LossKind.BERHU, masked=True, zone=ZoneSpec(f.top, f.left, f.zone_h, f.zone_w))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=args.lr)
    x, t, m = zone_tensors(train)
    full = api.plan(g, None, "full", loss=loss, optimizer=opt)
    budget = int(full.memory.peak_ram_bytes / 2.2)
    base = rmse(g, test)[1]
    print(f"pre-trained (synthetic A): test zone RMSE {base:.3f} m")
    print(f"{'plan':<18} {'peak RAM':>10} {'zone RMSE':>10} {'drop':>7} {'s':>6}")
    for name in args.plans.split(","):
        if name == "auto":
            calib = Calibration(x[:64], t[:64], m[:64])
            res = api.plan(g, budget, "auto", calib=calib, loss=loss, optimizer=opt)
            label = f"auto@{format_bytes(budget)}"
        elif name == "full":
            res, label = full, "full"
        else:
            res, label = api.plan(g, None, name, loss=loss, optimizer=opt), name
        t1 = time.perf_counter()
        sim = Simulator(g, res.plan)
        for _ in range(args.passes):
            sim.fit(x, t, m)
        z = rmse(sim.trained_graph(), test)[1]
        print(
            f"{label:<18} {format_bytes(res.memory.peak_ram_bytes):>10} {z:>10.3f} {1 - z / base:>6.0%} "
            f"{time.perf_counter() - t1:>6.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
