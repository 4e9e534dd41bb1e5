"""Pre-train the depth network on synthetic domain A (dense depth supervision), on the CPU.

    .venv/bin/python -m mcutrain.zoo.pretrain_depth [--frames 8000] [--epochs 12] [--out PATH]

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

from mcutrain.data.scenes import generate
from mcutrain.zoo.depth import MAX_DEPTH_M, WEIGHTS, depth_rmse, metres_to_target, updepthnet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    train = generate("A", args.frames, seed=args.seed)
    test_a = generate("A", 256, seed=10_000 + args.seed)
    test_b = generate("B", 256, seed=20_000 + args.seed)
    print(f"rendered {args.frames + 512} frames in {time.perf_counter() - t0:.0f} s")
    x = torch.from_numpy(train.image[:, None].astype(np.float32) / 255.0)
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
            loss = F.l1_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            step += 1
        n = len(x) // args.batch
        print(f"epoch {epoch + 1}/{args.epochs}: L1 {total / n:.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    for name, batch in (("A (held out)", test_a), ("B (the field)", test_b)):
        dense, zones = depth_rmse(model, batch)
        print(f"domain {name}: dense RMSE {dense:.3f} m, ToF-zone RMSE {zones:.3f} m")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes); max depth {MAX_DEPTH_M} m")


if __name__ == "__main__":
    main()
