"""Planning time and peak memory: full update vs the auto plan at several budgets.

Run:  .venv/bin/python benchmarks/planning.py [--score measured|proxy]

Models: the MLPerf Tiny ResNet-8 (../shared/data/models) and the built-in depth network. Calibration
data: 64 real CIFAR-10 images for ResNet-8 (random data, said so, when ../shared/data is absent); 64
synthetic domain-B scenes with their 8x8 ToF zones (masked berHu zone loss) for the depth network.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mcutrain import api
from mcutrain.core.units import format_bytes
from mcutrain.data.shared import shared_path
from mcutrain.train.planner import BudgetError
from mcutrain.train.scoring import Calibration
from mcutrain.train.update_plan import LossConfig, LossKind, ZoneSpec


def resnet8() -> tuple[object, Calibration | None, str, LossConfig]:
    g = api.load(shared_path("models", "mlperf_tiny_resnet8_cifar10_float.tflite"))
    npz = shared_path("datasets", "cifar10_test_1000.npz")
    if not npz.exists():
        return g, None, "random", api.default_loss(g)
    d = np.load(npz)
    x = d["x"][:64].astype(np.float32).transpose(0, 3, 1, 2)  # raw 0..255 pixels, as the model expects
    y = np.eye(10, dtype=np.float32)[d["y"][:64].astype(np.int64)]
    return g, Calibration(x, y), "CIFAR-10 (64 real test images)", api.default_loss(g)


def depth() -> tuple[object, Calibration | None, str, LossConfig]:
    from mcutrain.data.scenes import generate
    from mcutrain.zoo.depth import zone_tensors

    g = api.load("depth")
    b = generate("B", 64, seed=1)
    f = b.footprint
    loss = LossConfig(LossKind.BERHU, masked=True, zone=ZoneSpec(f.top, f.left, f.zone_h, f.zone_w, 8, 8))
    x, t, m = zone_tensors(b)
    return g, Calibration(x, t, m), "synthetic domain B, 64 frames, ToF zones (berHu)", loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--score", choices=["measured", "proxy"], default="measured")
    args = ap.parse_args()
    cases = [("ResNet-8", resnet8, (208, 224, 256, 320)), ("depth", depth, (256, 384, 512, 768))]
    print(
        f"{'model':<10} {'budget':>9} {'strategy':<9} {'peak RAM':>10} {'vs full':>8} {'score':>8} "
        f"{'plan s':>7}  calib"
    )
    for name, make, budgets_kb in cases:
        try:
            g, calib, calib_name, loss = make()
        except Exception as e:
            print(f"{name:<10} skipped: {e}", file=sys.stderr)
            continue
        full = api.plan(g, None, "full", loss=loss).memory.peak_ram_bytes
        print(f"{name:<10} {'-':>9} {'full':<9} {format_bytes(full):>10} {'1.00x':>8} {'':>8} {'':>7}")
        for kb in budgets_kb:
            t0 = time.perf_counter()
            try:
                r = api.plan(g, kb * 1024, "auto", calib=calib, loss=loss, score=args.score)
            except BudgetError as e:
                print(f"{name:<10} {kb:>7}KB {'auto':<9} infeasible (min {format_bytes(e.min_budget)})")
                continue
            dt = time.perf_counter() - t0
            peak = r.memory.peak_ram_bytes
            print(
                f"{name:<10} {kb:>7}KB {'auto':<9} {format_bytes(peak):>10} {full / peak:>7.2f}x "
                f"{r.score:>8.3g} {dt:>7.1f}  {calib_name}"
            )


if __name__ == "__main__":
    main()
