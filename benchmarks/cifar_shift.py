"""ResNet-8 (MLPerf Tiny) adapting to shifted CIFAR-10 images: strategies x RAM budgets, in the simulator.

For each shift (grayscale, sensor noise) the model adapts on 500 real CIFAR-10 test images and is
measured on the other 500, with the shift's recipe (`mcutrain.demos.cifar.RECIPES`: Adam with relative
per-tensor rates, cosine decay, a few seeded epochs). ``--holdout N`` measures on the last N adapt images
instead (how the recipes' rates were chosen). The auto plan runs under each budget (scored on 200
shifted adapt images); the baselines (last-layer, bias-only, full) are planned without a budget and
listed with their own peak RAM, so "at equal memory" reads off the budget column. Prints a table and
writes a plot of accuracy vs peak RAM per strategy. ``--device`` also runs the auto plan at
``--device-budget`` on the Cortex-M4F in QEMU (streaming ``--device-samples`` samples) and prints
device vs simulator.

    .venv/bin/python benchmarks/cifar_shift.py            # the full sweep (2-17 min on the shared 2 cores)
    .venv/bin/python benchmarks/cifar_shift.py --lr 3e-3 --lr-scale relative --holdout 100 --budgets 256
    .venv/bin/python benchmarks/cifar_shift.py --shifts noise --budgets 256 --strategies auto,bias-only
    .venv/bin/python benchmarks/cifar_shift.py --device --device-samples 100 --shifts grayscale --budgets 256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mcutrain.core.units import format_bytes
from mcutrain.demos.cifar import RECIPES, CifarDemoConfig, run
from mcutrain.train.planner import BudgetError

KB = 1024


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for shift in args.shifts.split(","):
        base = CifarDemoConfig(
            shift=shift,
            device=False,
            epochs=args.epochs,
            lr=args.lr,
            lr_scale=args.lr_scale,
            holdout=args.holdout,
            seed=args.seed,
            out=Path(args.out) / shift,
        )
        for strategy in args.strategies.split(","):
            budgets = [int(b) * KB for b in args.budgets.split(",")] if strategy == "auto" else [None]
            for budget in budgets:
                cfg = replace(base, strategy=strategy, budget=budget, out=base.out / f"{strategy}-{budget}")
                t0 = time.perf_counter()
                try:
                    r = run(cfg, say=lambda _s: None)
                except BudgetError as e:
                    print(f"{shift} {strategy} {budget}: {e}", file=sys.stderr)
                    rows.append(
                        {"shift": shift, "strategy": strategy, "budget_bytes": budget, "error": str(e)}
                    )
                    continue
                rows.append(r)
                print(
                    f"{shift:<9} {strategy:<10} {format_bytes(budget) if budget else '-':>8} "
                    f"peak {format_bytes(r['peak_ram_bytes']):>9}  {r['accuracy_before']:.1%} -> "
                    f"{r['accuracy_after']:.1%}  ({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def device_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for shift in args.shifts.split(","):
        cfg = CifarDemoConfig(
            shift=shift,
            budget=args.device_budget * KB,
            epochs=args.epochs,
            lr=args.lr,
            lr_scale=args.lr_scale,
            samples=args.device_samples,
            out=Path(args.out) / shift / "device",
        )
        rows.append(run(cfg, say=lambda s: print(s, file=sys.stderr)))
    return rows


def compact(plan: str) -> str:
    """``conv2d: bias; conv2d_8: weight 16/64 + bias; ...`` -> ``conv2d_8 (16/64 rows) + 2 biases``."""
    parts = [p.split(": ") for p in plan.split("; ")]
    rows = [(n, d.split()[1]) for n, d in parts if "weight" in d]
    weights = ", ".join(n if f == "all" else f"{n} ({f} rows)" for n, f in rows)
    b = sum(1 for _, d in parts if "bias" in d)
    return " + ".join([weights] * bool(rows) + [f"{b} bias{'es' if b > 1 else ''}"] * bool(b))


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| shift | strategy | budget | peak RAM | before | after | clean | gap recovered | updated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = format_bytes(r["budget_bytes"]) if r["budget_bytes"] else "-"
        if "error" in r:
            out.append(f"| {r['shift']} | {r['strategy']} | {b} | does not fit | | | | | |")
            continue
        what = "all weights and biases" if r["strategy"] == "full" else compact(r["plan"])
        out.append(
            f"| {r['shift']} | {r['strategy']} | {b} | {format_bytes(r['peak_ram_bytes'])} | "
            f"{r['accuracy_before']:.1%} | **{r['accuracy_after']:.1%}** | {r['accuracy_clean']:.1%} | "
            f"{r['gap_recovered']:.0%} | {what} |"
        )
    return "\n".join(out)


def device_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| shift | budget | peak RAM | samples | before | device | simulator | param diff | instr/sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['shift']} | {format_bytes(r['budget_bytes'])} | {format_bytes(r['peak_ram_bytes'])} | "
            f"{r['samples']} | {r['accuracy_before']:.1%} | {r['device_accuracy']:.1%} | "
            f"{r['simulator_accuracy']:.1%} | {r['device_vs_simulator_max_abs']:.1e} | "
            f"{r['instructions_per_sample']:,} |"
        )
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = sorted({r["shift"] for r in rows if "error" not in r})
    fig, axes = plt.subplots(1, len(shifts), figsize=(5.5 * len(shifts), 4), squeeze=False)
    marks = {"auto": "o-", "last-layer": "s", "bias-only": "^", "full": "D"}
    for ax, shift in zip(axes[0], shifts, strict=True):
        ok = [r for r in rows if r["shift"] == shift and "error" not in r]
        for strategy, mark in marks.items():
            pts = sorted(
                (r["peak_ram_bytes"] / KB, 100 * r["accuracy_after"]) for r in ok if r["strategy"] == strategy
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), mark, label=strategy, ms=7)
        ax.axhline(100 * ok[0]["accuracy_before"], color="gray", ls=":", label="before (shifted)")
        ax.axhline(100 * ok[0]["accuracy_clean"], color="k", ls="--", lw=0.8, label="clean images")
        ax.set_xscale("log")
        ax.set_xlabel("peak RAM of the training step (KB, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"ResNet-8, {shift} images")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shifts", default="grayscale,noise")
    p.add_argument("--budgets", default="208,256,320", help="auto plan budgets in KB")
    p.add_argument("--strategies", default="auto,last-layer,bias-only,full")
    p.add_argument("--epochs", type=int, help=f"override the shifts' recipes ({RECIPES})")
    p.add_argument("--lr", type=float, help="override the shifts' learning rates")
    p.add_argument("--lr-scale", choices=["none", "relative"], help="override the shifts' lr scaling")
    p.add_argument("--holdout", type=int, help="measure on the last N adapt images (choosing a recipe)")
    p.add_argument("--seed", type=int, default=0, help="order of the epochs after the first")
    p.add_argument("--out", default="out/bench-cifar")
    p.add_argument("--plot", default="out/bench-cifar/cifar-shift.png")
    p.add_argument("--device", action="store_true", help="also run the auto plan on the M4F in QEMU")
    p.add_argument("--device-budget", type=int, default=256, help="KB")
    p.add_argument("--device-samples", type=int, default=100)
    p.add_argument("--no-sweep", action="store_true", help="only the device runs")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [] if args.no_sweep else sweep(args)
    if rows:
        print(table(rows))
        plot(rows, Path(args.plot))
        print(f"\nwrote {args.plot}")
    if args.device:
        dev = device_runs(args)
        print()
        print(device_table(dev))
        rows += dev
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
