"""ST's VL53L5CX hand-posture CNN adapting to VL53L8CX users: strategies x RAM budgets, in the simulator.

Every cell runs ``mcutrain.demos.handposture.adapt`` (the demo's own code) with the simulator only:
per-user protocol (each user's calibration session = the first half of every recording, streamed
``--epochs`` times, tested on the later halves) and cross-user protocol (the other users' frames, tested
on all of the user's). Baseline plans do not depend on the budget: each runs once and counts in every
budget column it fits. ``--orders shuffled,recorded`` adds the recorded-order stream for comparison.
``--device`` then runs the auto plan at ``--device-budget`` for every user on a Cortex-M4F in QEMU
through the serial link and compares it with the simulator. ``--validation`` picks hyperparameters
without the held-out frames: the calibration session is split again the same way (the first half of each
of its recordings streams, the second half is tested), and the test frames are never read.

Prints markdown tables, writes ``results.json`` and ``handposture-accuracy-vs-memory.png`` to ``--out``.

Run:  .venv/bin/python benchmarks/handposture_adaptation.py --jobs 2 [--seeds 0,1,2] [--device]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcutrain.cli.args import demo_budget
from mcutrain.core.units import format_bytes
from mcutrain.data import handposture as hp
from mcutrain.demos import handposture as demo
from mcutrain.train.planner import BudgetError

STRATEGIES = ("auto", "last-layer", "bias-only", "full")
BASELINES = STRATEGIES[1:]


@functools.lru_cache(maxsize=1)
def _frames(data: str | None) -> hp.HandPostureFrames:
    return hp.load(data)


@functools.lru_cache(maxsize=1)
def _graph(model: str | None) -> Any:
    return demo.load_graph(Path(model) if model else None)


def _split(
    cfg: demo.HandPostureDemoConfig, validation: bool = False
) -> tuple[hp.HandPostureFrames, hp.HandPostureFrames]:
    f = _frames(str(cfg.data) if cfg.data else None)
    stream, test = f.cross_user_split(cfg.user) if cfg.cross_user else f.adaptation_split(cfg.user)
    # validation: the session's recordings split again; the held-out frames stay unread
    return stream.adaptation_split(cfg.user) if validation else (stream, test)


def cell(cfg: demo.HandPostureDemoConfig, validation: bool = False) -> dict[str, Any]:
    """One (protocol, order, strategy, budget, user, seed) run; infeasible budgets are recorded."""
    torch.set_num_threads(1)
    g = _graph(str(cfg.model) if cfg.model else None)
    stream, test = _split(cfg, validation)
    key = {
        "protocol": "cross-user" if cfg.cross_user else "per-user",
        "order": cfg.order,
        "strategy": cfg.strategy,
        "budget": cfg.budget,
        "user": cfg.user,
        "seed": cfg.seed,
    }
    t0 = time.perf_counter()
    try:
        res, r = demo.adapt(g, cfg, stream, test)
    except BudgetError as e:
        return {**key, "infeasible": e.min_budget}
    plan = [f"{lu.name}: {lu.describe(g.shapes[lu.name][0])}" for lu in res.plan.trained]
    return {**key, **r.to_dict(), "plan": plan, "seconds": time.perf_counter() - t0}


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


class Table:
    """Cells indexed by (protocol, order, strategy, budget) -> per user -> list over seeds."""

    def __init__(self, cells: list[dict[str, Any]], full_peak: int) -> None:
        self.cells = cells
        self.full_peak = full_peak

    def find(self, **kw: Any) -> list[dict[str, Any]]:
        return [c for c in self.cells if all(c.get(k) == v for k, v in kw.items())]

    def entry(self, protocol: str, order: str, strategy: str, budget: int | None, users: list[str]) -> str:
        """'mean % (peak)' of a strategy at a budget, '-' when it does not fit, '×' when infeasible."""
        cap = budget if budget is not None else self.full_peak
        run_budget = budget if strategy == "auto" else None
        cs = self.find(protocol=protocol, order=order, strategy=strategy, budget=run_budget)
        if not cs:
            return ""
        if any("infeasible" in c for c in cs):
            return f"infeasible (min {min(c['infeasible'] for c in cs):,} B)"
        peak = max(c["peak_ram_bytes"] for c in cs)
        if peak > cap:
            return f"does not fit ({format_bytes(peak)})"
        per_user = [_mean([c["simulator_accuracy"] for c in cs if c["user"] == u]) for u in users]
        return (
            f"**{_mean(per_user):.1%}** ({format_bytes(peak)})"
            if strategy == "auto"
            else (f"{_mean(per_user):.1%} ({format_bytes(peak)})")
        )

    def per_user(self, protocol: str, order: str, strategy: str, budget: int | None, users: list[str]) -> str:
        cs = self.find(protocol=protocol, order=order, strategy=strategy, budget=budget)
        if not cs or any("infeasible" in c for c in cs):
            return ""
        return " / ".join(
            f"{_mean([c['simulator_accuracy'] for c in cs if c['user'] == u]):.1%}" for u in users
        )


def _budget_name(b: int | None) -> str:
    return "full" if b is None else format_bytes(b)


def print_tables(t: Table, args: argparse.Namespace, users: list[str], budgets: list[int | None]) -> None:
    for protocol in args.protocols:
        befores = [
            _mean([c["accuracy_before"] for c in t.find(protocol=protocol, user=u) if "accuracy_before" in c])
            for u in users
        ]
        print(
            f"\n### {protocol}, {args.orders[0]} stream, "
            f"{args.cross_epochs if protocol == 'cross-user' else args.epochs} epochs, "
            f"{args.optimizer} lr {args.lr:g} cosine ({args.lr_scale} per-tensor scales), "
            f"weight decay {args.weight_decay:g}, {args.frozen_precision} frozen layers; "
            f"{'VALIDATION split of the sessions; ' if args.validation else ''}"
            f"mean over {', '.join(users)} (seeds {args.seeds})\n"
        )
        print(
            f"Before adaptation: **{_mean(befores):.1%}** ({' / '.join(f'{b:.1%}' for b in befores)}). "
            "Cell: mean held-out accuracy (peak RAM of the plan).\n"
        )
        print("| budget | " + " | ".join(args.strategies) + " |")
        print("|---|" + "---|" * len(args.strategies))
        for b in budgets:
            row = [t.entry(protocol, args.orders[0], s, b, users) for s in args.strategies]
            print(f"| {_budget_name(b)} | " + " | ".join(row) + " |")
        print(f"\nPer user ({' / '.join(users)}):\n")
        print("| plan | " + " / ".join(users) + " | plan of the first user |")
        print("|---|---|---|")
        for s in args.strategies:
            for b in budgets if s == "auto" else [None]:
                pu = t.per_user(protocol, args.orders[0], s, b, users)
                if pu:
                    first = t.find(
                        protocol=protocol, order=args.orders[0], strategy=s, budget=b, user=users[0]
                    )
                    name = f"auto @ {_budget_name(b)}" if s == "auto" else s
                    print(f"| {name} | {pu} | {'; '.join(first[0]['plan'])} |")
    if len(args.orders) > 1:
        print("\n### Stream order (per-user; mean over users)\n")
        print("| plan | " + " | ".join(args.orders) + " |")
        print("|---|" + "---|" * len(args.orders))
        for s in args.strategies:
            for b in budgets if s == "auto" else [None]:
                row = [t.entry("per-user", o, s, b, users) for o in args.orders]
                if any(row) and not all(r.startswith(("infeasible", "does not")) for r in row):
                    print(
                        f"| {'auto @ ' + _budget_name(b) if s == 'auto' else s} | " + " | ".join(row) + " |"
                    )


def plot(t: Table, path: Path, users: list[str], budgets: list[int | None], order: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, protocol in zip(axes, ("per-user", "cross-user"), strict=True):
        for s, marker in zip(STRATEGIES, "o^sD", strict=True):
            pts = []
            for b in budgets if s == "auto" else [None]:
                cs = [
                    c
                    for c in t.find(protocol=protocol, order=order, strategy=s, budget=b)
                    if "peak_ram_bytes" in c
                ]
                if cs:
                    acc = _mean(
                        [_mean([c["simulator_accuracy"] for c in cs if c["user"] == u]) for u in users]
                    )
                    pts.append((max(c["peak_ram_bytes"] for c in cs), acc))
            if pts:
                pts.sort()
                ax.plot(
                    [p[0] / 1024 for p in pts],
                    [100 * p[1] for p in pts],
                    marker=marker,
                    label=s,
                    ls="-" if len(pts) > 1 else "none",
                )
        before = [c["accuracy_before"] for c in t.find(protocol=protocol) if "accuracy_before" in c]
        if before:
            ax.axhline(100 * _mean(before), color="gray", ls=":", label="before (VL53L5CX model)")
        ax.axhline(90, color="red", ls="--", lw=0.8, label="90% target")
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 8, 16, 32, 64], ["4", "8", "16", "32", "64"])
        lo = [c["infeasible"] for c in t.find(protocol=protocol) if "infeasible" in c]
        if lo:
            ax.axvspan(3, min(lo) / 1024, color="gray", alpha=0.15, label="no plan fits")
        ax.set_xlabel("peak RAM of the training step (KB)")
        ax.set_title(f"{protocol}: mean over {', '.join(users)}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def device_runs(args: argparse.Namespace, base: demo.HandPostureDemoConfig, users: list[str]) -> list[dict]:
    """The auto plan at ``--device-budget`` for every user, on the M4F in QEMU (sequential: one QEMU)."""
    out = []
    print(f"\n### Device (mps2-an386, Cortex-M4F in QEMU, serial link): auto @ {args.device_budget}\n")
    print(
        "| user | samples | simulator | device | float64 simulator | max abs param diff device vs simulator "
        "| float32 vs float64 simulator | device vs float64 | instructions / sample | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for u in users:
        cfg = replace(
            base,
            user=u,
            strategy="auto",
            budget=demo_budget(args.device_budget),
            simulator_only=False,
            out=args.out / f"device-{u}",
        )
        c = cell(cfg, args.validation)
        out.append(c)
        print(
            f"| {u} | {c['samples']:,} | {c['simulator_accuracy']:.2%} | {c['device_accuracy']:.2%} | "
            f"{c['float64_accuracy']:.2%} | {c['device_vs_simulator_max_abs']:.1e} | "
            f"{c['float32_vs_float64_max_abs']:.1e} | {c['device_vs_float64_max_abs']:.1e} | "
            f"{c['instructions_per_sample']:,} | {c['seconds']:.0f} |",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", default="User1,User2,User3")
    ap.add_argument("--budgets", default="2KB,4KB,8KB,16KB,32KB,full")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--protocols", default="per-user,cross-user")
    ap.add_argument("--orders", default="shuffled", help="first is the main table's; e.g. shuffled,recorded")
    ap.add_argument("--seeds", default="0", help="stream permutations, averaged, e.g. 0,1,2")
    ap.add_argument("--epochs", type=int, default=demo.HandPostureDemoConfig.epochs)
    ap.add_argument("--cross-epochs", type=int, default=1, help="epochs of the cross-user stream")
    ap.add_argument("--optimizer", choices=["adam", "sgd", "momentum"], default="adam")
    ap.add_argument("--lr", type=float, default=demo.HandPostureDemoConfig.lr)
    ap.add_argument("--lr-scale", choices=["none", "relative"], default=demo.HandPostureDemoConfig.lr_scale)
    ap.add_argument("--weight-decay", type=float, default=demo.HandPostureDemoConfig.weight_decay)
    ap.add_argument("--frozen-precision", choices=["fp32", "int8"], default="fp32")
    ap.add_argument(
        "--validation", action="store_true", help="split each session again; never read the test frames"
    )
    ap.add_argument("--data", help="ST's zip or an unpacked folder (default: the shared data zip)")
    ap.add_argument("--model", help=".tflite or mcutrain IR .json (default: the shared ST model)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--device", action="store_true", help="also run the auto plan on the device per user")
    ap.add_argument("--device-budget", default="16KB")
    ap.add_argument("--out", type=Path, default=Path("out/bench-handposture"))
    ap.add_argument("--from-json", help="tables and plot from an earlier run's results.json (no runs)")
    ap.add_argument("--no-plot", action="store_true", help="no PNG (where matplotlib is missing)")
    args = ap.parse_args()
    for k in ("users", "strategies", "protocols", "orders"):
        setattr(args, k, getattr(args, k).split(","))
    args.seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [demo_budget(b) for b in args.budgets.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    base = demo.HandPostureDemoConfig(
        data=Path(args.data) if args.data else None,
        model=Path(args.model) if args.model else None,
        optimizer=args.optimizer,
        frozen_precision=args.frozen_precision,
        lr=args.lr,
        lr_scale=args.lr_scale,
        weight_decay=args.weight_decay,
        epochs=args.epochs,
        simulator_only=True,
    )
    cfgs = [
        replace(base, user=u, strategy=s, budget=b, cross_user=cross, order=o, seed=seed, epochs=e)
        for protocol in args.protocols
        for cross, e in [
            (protocol == "cross-user", args.cross_epochs if protocol == "cross-user" else args.epochs)
        ]
        for o in (args.orders[:1] if cross else args.orders)
        for s in args.strategies
        for b in (budgets if s == "auto" else [None])
        for u in args.users
        for seed in args.seeds
    ]
    t0 = time.perf_counter()
    if args.from_json:
        cells = json.loads(Path(args.from_json).read_text())["cells"]
    else:
        print(f"{len(cfgs)} simulator runs on {args.jobs} processes ...", flush=True)
        with Pool(args.jobs) as pool:
            cells = pool.map(functools.partial(cell, validation=args.validation), cfgs, chunksize=1)
        print(f"done in {time.perf_counter() - t0:.0f} s")
    g = _graph(args.model)
    full = replace(base, strategy="full", budget=None, frozen_precision="fp32")  # nothing frozen
    full_peak = demo.make_plan(g, full, demo.optimizer(base, 1), None)
    t = Table(cells, full_peak.memory.peak_ram_bytes)
    print_tables(t, args, args.users, budgets)
    if not args.no_plot:
        plot(t, args.out / "handposture-accuracy-vs-memory.png", args.users, budgets, args.orders[0])
    dev = device_runs(args, base, args.users) if args.device else []
    (args.out / "results.json").write_text(
        json.dumps(
            {"args": vars(args) | {"out": str(args.out)}, "cells": cells, "device": dev},
            indent=1,
            default=str,
        )
    )
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'handposture-accuracy-vs-memory.png'}")


if __name__ == "__main__":
    main()
