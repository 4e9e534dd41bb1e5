"""How far into ResNet-8 an update must reach to recover half of the CIFAR-noise gap, and what the float32
backward costs at that depth (docs/quantization.md, "Where the CIFAR target stands").

For each cut (the first layer an update may touch: the stem ``conv2d``, block 1 ``conv2d_1``, block 2
``conv2d_3``, block 3 ``conv2d_6``) it trains two float plans without any memory limit, in the simulator,
with the noise shift's recipe (`mcutrain.demos.cifar.RECIPES`: Adam, relative rates, cosine, 8 epochs
of the 500 adapt images, the demo's order): every bias from the cut on, and those biases plus the
weights of the cut's first conv and of the dense layer (the shape of the float auto plan at 256 KB,
which trains the stem's weights, the dense layer and the biases). It prints the accuracy on the 500 test
images, the share of the gap to the clean images, and the float32 gradient maps the backward needs at
the cut: a convolution's input gradient is written while its output gradient is read, so two maps of
the cut's resolution (C x H x W x 4 bytes each) are alive at once, whatever the frozen layers run in.

    .venv/bin/python benchmarks/cifar_cut_bound.py            # 8 trainings, 15-30 min on 2 busy cores
    .venv/bin/python benchmarks/cifar_cut_bound.py --cuts conv2d_3 --json out/cut.json
    .venv/bin/python benchmarks/cifar_cut_bound.py --rows out/cut.json --plot docs/img/cifar-cut-bound.png

``--plot`` draws accuracy against the cut with the 128 KB budget's reach marked; ``--rows`` plots the rows
a ``--json`` run wrote instead of training again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcutrain import api
from mcutrain.core.units import format_bytes
from mcutrain.data import cifar
from mcutrain.demos.adaptation import accuracy, run_adaptation
from mcutrain.demos.cifar import ENCODING, RECIPES, epoch_stream, model_path, optimizer
from mcutrain.train.memory import analyze
from mcutrain.train.update_plan import LayerUpdate

CUTS = {"conv2d": "stem", "conv2d_1": "block 1", "conv2d_3": "block 2", "conv2d_6": "block 3"}


def plot(rows: list[dict[str, Any]], path: Path, budget_kb: int = 128) -> None:
    """Accuracy of both plans per cut, the half-gap line, and the cuts whose two float32 gradient maps
    alone fill ``budget_kb``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = [c for c in CUTS if any(r["cut"] == c for r in rows)]
    x = range(len(cuts))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for mark, (label, pick) in zip(
        "os", (("every bias from the cut on", 0), ("+ the cut's and dense weights", 1)), strict=True
    ):
        ys = [100 * [r for r in rows if r["cut"] == c][pick]["accuracy_after"] for c in cuts]
        ax.plot(x, ys, mark + "-", label=label, ms=7)
    r0 = rows[0]
    half = 50 * (r0["accuracy_before"] + r0["accuracy_clean"])
    ax.axhline(100 * r0["accuracy_before"], color="gray", ls=":", label="before (noisy images)")
    ax.axhline(half, color="C3", ls="--", lw=1, label="half the gap")
    for i, c in enumerate(cuts):
        maps = next(r["gradient_maps_bytes"] for r in rows if r["cut"] == c)
        if maps >= budget_kb * 1024:
            ax.axvspan(i - 0.4, i + 0.4, color="C3", alpha=0.08)
        ax.annotate(f"{maps // 1024} KB", (i, 100 * r0["accuracy_before"] + 1), ha="center", fontsize=8)
    ax.set_xticks(list(x), [f"{CUTS[c]}\n({c})" for c in cuts])
    ax.set_xlabel(
        f"first layer updated (float32 gradient maps at it; shaded: they alone fill {budget_kb} KB)"
    )
    ax.set_ylabel("test accuracy after adaptation (%)")
    ax.set_title("ResNet-8, CIFAR noise: how deep the update must reach")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", default=",".join(CUTS), help="first trainable layer per row, comma-separated")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--rows", help="plot the rows of an earlier --json run instead of training")
    ap.add_argument("--plot", help="write the plot here (PNG)")
    args = ap.parse_args()
    if args.rows:
        rows = json.loads(Path(args.rows).read_text())
        if args.plot:
            plot(rows, Path(args.plot))
        return
    rows = train_rows(args.cuts)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        plot(rows, Path(args.plot))


def train_rows(cut_list: str) -> list[dict[str, Any]]:
    """Train both plans per cut; print the table; return its rows."""
    graph = api.load(model_path())
    adapt, test = cifar.load(shift="noise").split()
    _, clean_test = cifar.load(shift="clean").split()
    recipe = RECIPES["noise"]
    xs, ys = epoch_stream(adapt, recipe.epochs)
    opt = optimizer(recipe.lr, len(ys))
    base = api.plan(graph, None, "bias-only", None, opt, score="proxy", lr_scale=recipe.lr_scale)
    clean = accuracy(graph, ENCODING.decode(clean_test.x), clean_test.y)
    before = accuracy(graph, ENCODING.decode(test.x), test.y)
    names = [n.name for n in graph.nodes]
    trainable = [n.name for n in graph.nodes if n.op.param_names]
    rows = []
    half = (clean + before) / 2
    print(f"noise shift, clean images {clean:.1%}; before {before:.1%}; half the gap needs {half:.1%}")
    print("| cut | plan | float32 peak RAM | gradient maps at the cut | accuracy | gap recovered |")
    print("|---|---|---|---|---|---|")
    for cut in cut_list.split(","):
        if cut not in CUTS:
            raise SystemExit(f"unknown cut {cut!r}: one of {', '.join(CUTS)}")
        after = [t for t in trainable if names.index(t) >= names.index(cut)]
        biases = [LayerUpdate.bias_only(t) for t in after]
        shape = graph.shapes[cut]
        maps = 2 * math.prod(shape) * 4
        weights = {t: LayerUpdate.weights(t, graph.shapes[t][0]) for t in (cut, "dense")}
        with_w = [weights.get(b.name, b) for b in biases]
        for label, layers in (("biases", biases), (f"biases + {cut}, dense weights", with_w)):
            plan = replace(base.plan, layers=tuple(layers), strategy="auto")
            res = replace(base, plan=plan, memory=analyze(graph, plan))
            t0 = time.perf_counter()
            r = run_adaptation(graph, res, xs, ys, test.x, test.y, ENCODING)
            recovered = (r.accuracy_after - r.accuracy_before) / (clean - r.accuracy_before)
            rows.append(
                {
                    "cut": cut,
                    "plan": label,
                    "peak_ram_bytes": res.memory.peak_ram_bytes,
                    "gradient_maps_bytes": maps,
                    "accuracy_before": r.accuracy_before,
                    "accuracy_after": r.accuracy_after,
                    "accuracy_clean": clean,
                    "gap_recovered": recovered,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"| {CUTS[cut]} ({cut}) | {label} | {format_bytes(res.memory.peak_ram_bytes)} | "
                f"2 x {'x'.join(map(str, shape))} x 4 B = {format_bytes(maps)} | "
                f"{r.accuracy_before:.1%} -> {r.accuracy_after:.1%} | {recovered:.0%} |",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
