"""Instructions per training step of the gap9 sources on rv32, beside plain rv32 and Cortex-M4F (QEMU, exact).

Run:  .venv/bin/python benchmarks/gap9_instructions.py [--steps 2] [--boards mps2-an386,gap9-rv32-qemu]

The self-test firmware of each case (ST hand-posture CNN full and auto 16 KB, MLPerf ResNet-8 auto 256 KB
with Adam) is built for every board and run in QEMU under -icount shift=0; the table shows
mt_board_instret() per step (minstret on rv32, exact; SysTick on mps2-an386, exact to 40) and each
gap9-rv32-qemu plan's largest L1 working set. gap9-rv32-qemu runs the cluster's eight cores one after
another and its DMA as memcpy, so its count is the cluster's total work, not GAP9's time (docs/gap9.md).
ResNet-8's full update with Adam does not fit GAP9's L2 and is left out.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import firmware_instructions  # benchmarks/: the same cases (the script's folder is on sys.path)

from mcutrain.core import ir
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.update_plan import UpdatePlan


def cases(steps: int) -> Iterator[tuple[str, ir.Graph, UpdatePlan, SelfTest]]:
    """The cases of firmware_instructions.py whose plans fit GAP9's L2 (not ResNet-8's full update)."""
    return (c for c in firmware_instructions.cases(steps) if c[0] != "ResNet-8 full")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--boards", default="mps2-an386,rv32-qemu,gap9-rv32-qemu")
    args = ap.parse_args()
    boards = args.boards.split(",")
    print(f"| case | {' | '.join(boards)} | gap9 / rv32 | L1 max (gap9) |")
    print(f"|---|{'---|' * len(boards)}---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, g, plan, st in cases(args.steps):
            counts: dict[str, int] = {}
            l1 = ""
            for b in boards:
                proj = emit_firmware(g, plan, Path(tmp) / f"{b}-{label.replace(' ', '_')}", b, st)
                r = run_firmware(build_firmware(proj.out_dir), timeout_s=300)
                if r.exit_code != 0:
                    raise SystemExit(f"{label} on {b}: {r.outcome}\n{r.run.stdout}")
                counts[b] = r.report["instret_mean"]
                if proj.emitted.cluster is not None:
                    l1 = f"{proj.emitted.cluster.l1_bytes:,} B"
            ratio = (
                f"{counts['gap9-rv32-qemu'] / counts['rv32-qemu']:.2f}x"
                if {"gap9-rv32-qemu", "rv32-qemu"} <= counts.keys()
                else ""
            )
            print(
                f"| {label} | {' | '.join(f'{counts[b]:,}' for b in boards)} | {ratio} | {l1} |", flush=True
            )


if __name__ == "__main__":
    main()
