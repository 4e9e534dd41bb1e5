"""Instructions per training step and per MAC on Cortex-M4F (QEMU mps2-an386, exact counts under -icount).

Run:  .venv/bin/python benchmarks/firmware_instructions.py [--board mps2-an386] [--steps 2]

For the ST hand-posture CNN and the MLPerf ResNet-8 (../shared/data/models), under the full plan and an
auto plan: the self-test firmware (which also checks the results against the simulator) is built twice,
plain (instructions per step around mt_train_step) and with -DMT_PROFILE (instructions per kernel kind
and pass, the hook's own cost subtracted). MACs are those of the conv/linear kernels actually executed:
forward, input gradients where the plan back-propagates, weight gradients of the trained rows only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.cli_firmware import format_measurements
from mcutrain.firmware import SelfTest, build_firmware, emit_firmware, is_mac_id, profile_table, run_firmware
from mcutrain.plan import OptimizerConfig, OptimizerKind

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCUTRAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))
PASSES = ("fw", "bw_wgrad", "bw_igrad")


def cases(steps: int):
    """(label, graph, plan, self-test) for each model and plan."""
    hp = api.load(SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite")
    st = SelfTest.random(hp, api.plan(hp, None, "full").plan, steps)
    yield "hand-posture full", hp, api.plan(hp, None, "full").plan, st
    yield "hand-posture auto 16KB", hp, api.plan(hp, 16 * 1024, "auto", score="proxy").plan, st
    r8 = api.load(SHARED / "models" / "mlperf_tiny_resnet8_cifar10_float.tflite")
    d = np.load(SHARED / "datasets" / "cifar10_test_1000.npz")  # raw 0..255 pixels: Adam at 1e-5 is stable
    x = d["x"][:steps].transpose(0, 3, 1, 2).astype(np.float32)
    st8 = SelfTest(x, np.eye(10, dtype=np.float32)[d["y"][:steps]])
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5)
    yield "ResNet-8 full", r8, api.plan(r8, None, "full", optimizer=opt).plan, st8
    yield "ResNet-8 auto 256KB", r8, api.plan(r8, 256 * 1024, "auto", score="proxy", optimizer=opt).plan, st8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--steps", type=int, default=2, help="training steps per run (counts are per step)")
    ap.add_argument("--out", help="keep the projects here (default: a temporary folder)")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"needs the real models in {SHARED}", file=sys.stderr)
        return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="mt-fw-bench-"))
    summary = []
    for label, g, plan, st in cases(args.steps):
        t0 = time.monotonic()
        proj = emit_firmware(g, plan, root / label.replace(" ", "_"), args.board, st)
        plain, prof = build_firmware(proj.out_dir), build_firmware(proj.out_dir, profile=True)
        r, rp = run_firmware(plain, 600), run_firmware(prof, 600)
        for run in (r, rp):
            if run.exit_code != 0:
                print(run.run.stdout, run.run.message, file=sys.stderr)
                return 1
        rows = profile_table(proj.manifest, rp.report)
        print(f"\n== {label}: {g.name} on {args.board}, plan {plan.strategy} ({time.monotonic() - t0:.1f} s)")
        print(plain.summary())
        print(format_measurements(proj.manifest, r.report, rows))
        macs = proj.manifest["macs"]
        by_pass = {}
        for p in PASSES:
            ids = [pid for pid in macs if is_mac_id(pid) and pid.endswith("_" + p)]
            n = sum(macs[i] for i in ids)
            ins = sum(row["instret"] for row in rows if row["id"] in ids)
            by_pass[p] = (n, ins)
        total_macs = sum(n for n, _ in by_pass.values())
        summary.append((label, r.report["instret_mean"], total_macs, by_pass))

    print(f"\n== summary on {args.board}: instructions per MAC (MACs of the conv/linear kernels)")
    head = f"{'case':<24} {'instr/step':>13} {'MACs/step':>11} {'step/MAC':>9}"
    print(head + "".join(f" {p + ' MACs':>14} {p + '/MAC':>13}" for p in PASSES))
    for label, step, macs, by_pass in summary:
        line = f"{label:<24} {step:>13,} {macs:>11,} {step / macs:>9.2f}"
        for p in PASSES:
            n, ins = by_pass[p]
            line += f" {n:>14,} {(ins / n if n else float('nan')):>13.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
