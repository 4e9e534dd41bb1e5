"""Instructions per training step of the gap9 sources on rv32, beside plain rv32 and Cortex-M4F (QEMU, exact).

Run:  .venv/bin/python benchmarks/gap9_instructions.py [--steps 2] [--boards mps2-an386,gap9-rv32-qemu]

The self-test firmware of each case (ST hand-posture CNN full and auto 16 KB, MLPerf ResNet-8 auto 256 KB
with Adam) is built for every board and run in QEMU under -icount shift=0; the table shows
mt_board_instret() per step (minstret on rv32, exact; SysTick on mps2-an386, exact to 40) and each
gap9-rv32-qemu plan's largest L1 working set. gap9-rv32-qemu runs the cluster's eight cores one after
another and its DMA as memcpy, so its count is the cluster's total work, not GAP9's time (docs/gap9.md).
ResNet-8's full update with Adam does not fit GAP9's L2 and is left out.

--int8: the four int8 models of ../shared/data/models instead (the plans of tests/emulator/
test_int8_firmware.py, 3 random samples), with the instructions of their int8 conv2d / linear forwards
(profile ids conv2d_fw_s8, linear_fw_s8) per step on each board: on gap9-rv32-qemu they are cluster tasks.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import firmware_instructions  # benchmarks/: the same cases (the script's folder is on sys.path)

from mcutrain.core import ir
from mcutrain.data.shared import shared_path
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import profile_table, run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.update_plan import UpdatePlan


def cases(steps: int) -> Iterator[tuple[str, ir.Graph, UpdatePlan, SelfTest]]:
    """The cases of firmware_instructions.py whose plans fit GAP9's L2 (not ResNet-8's full update)."""
    return (c for c in firmware_instructions.cases(steps) if c[0] != "ResNet-8 full")


INT8_CASES = {
    "tflm_hello_world_int8": ("last-layer", None),
    "tflm_micro_speech_int8": ("last-layer", None),
    "mlperf_kws_dscnn_int8": ("auto", 64 * 1024),
    "mlperf_vww_mobilenetv1_int8": ("last-layer", None),
}


def int8_cases(steps: int) -> Iterator[tuple[str, ir.Graph, UpdatePlan, SelfTest]]:
    """The int8 models with test_int8_firmware's plans and samples."""
    import numpy as np

    from mcutrain import api
    from mcutrain.train.update_plan import OptimizerConfig

    for name, (strategy, budget) in INT8_CASES.items():
        g = api.load(shared_path("models", f"{name}.tflite"))
        plan = api.plan(g, budget, strategy, score="proxy", optimizer=OptimizerConfig(lr=0.01)).plan
        rng = np.random.default_rng(0)
        x = rng.uniform(-1.0, 1.0, (steps, *g.inputs[0][1])).astype(np.float32)
        k = g.shapes[g.outputs[0]][0]
        t = np.eye(k, dtype=np.float32)[rng.integers(0, k, steps)] if k > 1 else rng.random((steps, 1))
        yield f"{name} {strategy}", g, plan, SelfTest(x, t.astype(np.float32))


def _s8_fw(proj_dir: Path) -> str:
    """Instructions of the int8 conv2d / linear forwards per training step and per MAC (a second build
    with the MT_PROFILE hook, its own cost subtracted)."""
    fb = build_firmware(proj_dir, profile=True)
    r = run_firmware(fb, timeout_s=300)
    rows = [x for x in profile_table(fb.manifest, r.report) if x["id"] in ("conv2d_fw_s8", "linear_fw_s8")]
    n, macs = sum(x["instret"] for x in rows), sum(x["work"] for x in rows)
    return f"{n:,.0f} ({n / macs:.2f}/MAC)" if macs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--boards", default="mps2-an386,rv32-qemu,gap9-rv32-qemu")
    ap.add_argument("--int8", action="store_true", help="the int8 models (int8 forwards on the cluster)")
    args = ap.parse_args()
    boards = args.boards.split(",")
    print(f"| case | {' | '.join(boards)} | gap9 / rv32 | L1 max (gap9) |")
    print(f"|---|{'---|' * len(boards)}---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, g, plan, st in (int8_cases if args.int8 else cases)(args.steps):
            counts: dict[str, int] = {}
            l1 = ""
            for b in boards:
                proj = emit_firmware(g, plan, Path(tmp) / f"{b}-{label.replace(' ', '_')}", b, st)
                r = run_firmware(build_firmware(proj.out_dir), timeout_s=300)
                if r.exit_code != 0:
                    raise SystemExit(f"{label} on {b}: {r.outcome}\n{r.run.stdout}")
                counts[b] = r.report["instret_mean"]
                if args.int8:
                    print(f"  {label} on {b}: int8 conv2d/linear forwards {_s8_fw(proj.out_dir)} per step")
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
