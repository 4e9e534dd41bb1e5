"""Human-readable output: plan tables and memory plots."""

from __future__ import annotations

from pathlib import Path

from mcutrain.core import ir
from mcutrain.core.units import format_bytes
from mcutrain.train.memory import CATEGORIES, MemoryReport
from mcutrain.train.planner import PlanResult


def plan_table(graph: ir.Graph, res: PlanResult) -> str:
    rows = [("layer", "op", "out shape", "params", "update", "forward", "RAM", "score")]
    for lm in res.memory.layers:
        node = graph.node(lm.name)
        n_params = sum(int(graph.param(lm.name, p).size) for p in node.op.param_names)
        ram = lm.trainable_bytes + lm.optimizer_bytes
        sc = res.layer_scores.get(lm.name)
        rows.append(
            (
                lm.name,
                lm.kind,
                "x".join(map(str, graph.shapes[lm.name])),
                f"{n_params:,}",
                lm.update,
                lm.precision,
                format_bytes(ram) if ram else "-",
                f"{sc:.4g}" if sc is not None else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def memory_table(mem: MemoryReport, budget: int | None) -> str:
    lines = ["RAM at the peak of one training step:"]
    for c in CATEGORIES:
        if mem.categories[c]:
            q = mem.int8_bytes.get(c, 0)
            int8 = f"   (int8 tensors {q:,} B)" if q else ""
            n = mem.categories[c]
            lines.append(f"  {c.replace('_', ' '):<22}{n:>10,} B  {format_bytes(n):>9}{int8}")
    lines.append(
        f"  {'peak RAM':<22}{mem.peak_ram_bytes:>10,} B  {format_bytes(mem.peak_ram_bytes):>9}"
        + (
            f"   (budget {format_bytes(budget)}, {100 * mem.peak_ram_bytes / budget:.0f}% used)"
            if budget
            else ""
        )
    )
    lines.append(
        f"  arena {mem.arena_bytes:,} B (lower bound {mem.arena_lower_bound:,} B); "
        f"flash for frozen weights {mem.flash_bytes:,} B ({format_bytes(mem.flash_bytes)})"
        + (", int8 where a layer's forward is" if any(lm.precision == "int8" for lm in mem.layers) else "")
    )
    return "\n".join(lines)


def plot_memory(mem: MemoryReport, path: str | Path, title: str) -> None:
    """Two panels: the peak RAM by category, and the RAM each layer's update costs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 2.4]})
    cats = [c for c in CATEGORIES if mem.categories[c]]
    bottom = 0.0
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(cats):
        v = mem.categories[c] / 1024
        a.bar(0, v, bottom=bottom, color=cmap(i), label=c.replace("_", " "))
        bottom += v
    a.set_xticks([0], ["peak RAM"])
    a.set_ylabel("KB")
    a.set_title(f"peak {format_bytes(mem.peak_ram_bytes)}")
    a.legend(fontsize=7, loc="upper right")
    names = [lm.name for lm in mem.layers]
    parts = {
        "trainable weights": [lm.trainable_bytes for lm in mem.layers],
        "optimizer state": [lm.optimizer_bytes for lm in mem.layers],
        "weight gradients": [lm.gradient_bytes for lm in mem.layers],
        "saved input": [lm.saved_input_bytes for lm in mem.layers],
        "frozen (flash)": [lm.frozen_bytes for lm in mem.layers],
    }
    x = range(len(names))
    bot = [0.0] * len(names)
    for i, (label, vals) in enumerate(parts.items()):
        kb = [v / 1024 for v in vals]
        hatch = "//" if label.startswith("frozen") else None
        b.bar(
            x, kb, bottom=bot, label=label, color="0.85" if hatch else cmap(i), hatch=hatch, edgecolor="0.5"
        )
        bot = [p + q for p, q in zip(bot, kb, strict=True)]
    b.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    b.set_ylabel("KB")
    b.set_title("per layer (RAM unless hatched)")
    b.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
