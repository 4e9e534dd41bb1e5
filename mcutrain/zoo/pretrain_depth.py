"""Pre-train the depth network on synthetic domain A (dense depth supervision), on the CPU.

    .venv/bin/python -m mcutrain.zoo.pretrain_depth [--frames 8000] [--epochs 12] [--out PATH]
    .venv/bin/python -m mcutrain.zoo.pretrain_depth --domain drone   # the drone-lab scenes (depth_drone)

``--domain drone`` renders the scenes matched to the real drone flights (:mod:`mcutrain.data.drone_lab`),
standardizes every frame (:mod:`mcutrain.data.frame_scale`, as the drone streams them), flips half of
each batch left-right and writes ``DRONE_WEIGHTS``.

Renders ``frames`` domain-A scenes, trains with L1 on normalized depth (Adam, cosine schedule, batch 32)
and writes the weights as a NumPy ``.npz`` (no pickle) next to this module, where
:func:`mcutrain.zoo.depth.updepthnet_pretrained` finds them. Prints dense and ToF-zone RMSE on held-out
frames of domain A and of domain B (the field), so the domain gap is visible. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mcutrain.data import drone_lab
from mcutrain.data.frame_scale import network_input
from mcutrain.data.scenes import generate
from mcutrain.zoo.depth import DRONE_WEIGHTS, MAX_DEPTH_M, WEIGHTS, depth_rmse, metres_to_target, updepthnet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--domain", choices=("A", "drone"), default="A")
    ap.add_argument("--out", type=Path, default=None, help="default: the built-in model's weights file")
    args = ap.parse_args()
    drone = args.domain == "drone"
    out = args.out or (DRONE_WEIGHTS if drone else WEIGHTS)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    if drone:
        train = drone_lab.generate(args.frames, seed=args.seed)
        tests = {"drone lab (held out)": drone_lab.generate(256, seed=10_000 + args.seed)}
    else:
        train = generate("A", args.frames, seed=args.seed)
        tests = {
            "A (held out)": generate("A", 256, seed=10_000 + args.seed),
            "B (the field)": generate("B", 256, seed=20_000 + args.seed),
        }
    print(f"rendered {args.frames + 256 * len(tests)} frames in {time.perf_counter() - t0:.0f} s")
    x = torch.from_numpy(network_input(train.image, standardize=drone))
    y = metres_to_target(torch.from_numpy(train.depth[:, None]))
    model = updepthnet(args.seed)
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    step = 0
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x) - args.batch + 1, args.batch):
            idx = perm[i : i + args.batch]
            xb, yb = x[idx], y[idx]
            if drone:  # left-right flips of half the batch
                flip = torch.arange(len(idx)) % 2 == 1
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                yb = torch.where(flip[:, None, None, None], yb.flip(-1), yb)
            loss = F.l1_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            step += 1
        n = len(x) // args.batch
        print(f"epoch {epoch + 1}/{args.epochs}: L1 {total / n:.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    for name, batch in tests.items():
        dense, zones = depth_rmse(model, batch, standardize=drone)
        print(f"domain {name}: dense RMSE {dense:.3f} m, ToF-zone RMSE {zones:.3f} m")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    print(f"wrote {out} ({out.stat().st_size:,} bytes); max depth {MAX_DEPTH_M} m")


if __name__ == "__main__":
    main()
