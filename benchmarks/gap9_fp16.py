"""The FP16 option of the gap9 targets against float32: training drift, L1, instructions on rv32.

Run:  .venv/bin/python benchmarks/gap9_fp16.py [--steps 200] [--qemu-steps 2]

1. Drift: the simulator in float32 and in its FP16 mode (``Simulator(fp16_operands=True)``: what the
   generated C computes with ``precision="fp16"``, to float32 round-off) train the same plan on the same
   samples; the table shows the mean loss of the last 20 steps, the loss on held-out samples after the
   last step, and the largest difference of the trained parameters relative to their largest update.
2. L1 and instructions: each case's self-test firmware for gap9-rv32-qemu in fp32 and in fp16, built
   and run in QEMU under -icount shift=0 (minstret per step, exact); the largest L1 working set of each
   plan. rv32imfc has no FP16 unit: the conversions are software there (docs/gap9.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import firmware_instructions  # benchmarks/: the same models and plans (the script's folder is on sys.path)
import numpy as np
import torch

from mcutrain import api
from mcutrain.core import ir
from mcutrain.data.shared import shared_path
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, UpdatePlan

BOARD = "gap9-rv32-qemu"


def _cifar(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(shared_path("datasets", "cifar10_test_1000.npz"))
    x = d["x"][offset : offset + n].transpose(0, 3, 1, 2).astype(np.float32)
    return x, np.eye(10, dtype=np.float32)[d["y"][offset : offset + n]]


def drift_cases(steps: int) -> list[tuple[str, ir.Graph, UpdatePlan, tuple, tuple]]:
    """(label, graph, plan, (x, target) to train on, (x, target) held out)."""
    out = []
    r8 = api.load(shared_path("models", "mlperf_tiny_resnet8_cifar10_float.tflite"))
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=1e-5)  # raw 0..255 pixels (firmware_instructions.py)
    plan = api.plan(r8, 256 * 1024, "auto", score="proxy", optimizer=opt).plan
    out.append(("ResNet-8 auto 256KB, CIFAR-10, adam 1e-5", r8, plan, _cifar(steps, 0), _cifar(200, 800)))
    hp = api.load(shared_path("models", "st_handposture_vl53l5cx_cnn2d_float.tflite"))
    plan = api.plan(hp, None, "full", optimizer=OptimizerConfig(lr=0.01)).plan
    st, held = SelfTest.random(hp, plan, steps, seed=1), SelfTest.random(hp, plan, 200, seed=2)
    out.append(
        ("hand-posture full, random samples, sgd 0.01", hp, plan, (st.x, st.target), (held.x, held.target))
    )
    return out


def drift(g: ir.Graph, plan: UpdatePlan, train: tuple, held: tuple) -> list[str]:
    sims = {fp16: Simulator(g, plan, fp16_operands=fp16) for fp16 in (False, True)}
    start = {k: v.clone() for k, v in sims[False].params.items()}
    row = []
    for sim in sims.values():
        losses = sim.fit(*train)
        row += [f"{np.mean(losses[-20:]):.5f}", f"{sim.eval_loss(*held):.5f}"]
    upd = max(float((sims[False].params[k] - start[k]).abs().max()) for k in start)
    diff = max(float((sims[True].params[k] - sims[False].params[k]).abs().max()) for k in start)
    return [*row, f"{diff / max(upd, 1e-30):.1e}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--qemu-steps", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"Drift over {args.steps} steps (simulator, float32 against the FP16 mode)\n")
    print(
        "| case | fp32 loss (last 20) | fp32 held-out | fp16 loss (last 20) | fp16 held-out "
        "| param diff / update |"
    )
    print("|---|---|---|---|---|---|")
    for label, g, plan, train, held in drift_cases(args.steps):
        print(f"| {label} | {' | '.join(drift(g, plan, train, held))} |", flush=True)

    print(f"\nL1 and instructions per step on {BOARD} (QEMU -icount, {args.qemu_steps} steps)\n")
    print(
        "| case | L1 max fp32 | L1 max fp16 | tiles/step fp32 | tiles/step fp16 | instructions fp32 | ",
        end="",
    )
    print("instructions fp16 | fp16 / fp32 |\n|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, g, plan, st in firmware_instructions.cases(args.qemu_steps):
            if label == "ResNet-8 full":  # does not fit GAP9's L2 (docs/gap9.md)
                continue
            l1, tiles, count = {}, {}, {}
            for prec in ("fp32", "fp16"):
                proj = emit_firmware(
                    g, plan, Path(tmp) / f"{prec}-{label.replace(' ', '_')}", BOARD, st, precision=prec
                )
                r = run_firmware(build_firmware(proj.out_dir), timeout_s=600)
                if r.exit_code != 0:
                    raise SystemExit(f"{label} {prec}: {r.outcome}\n{r.run.stdout}")
                assert proj.emitted.cluster is not None
                cm = proj.emitted.cluster
                l1[prec], tiles[prec], count[prec] = cm.l1_bytes, cm.tiles_per_step, r.report["instret_mean"]
            print(
                f"| {label} | {l1['fp32']:,} B | {l1['fp16']:,} B | {tiles['fp32']} | {tiles['fp16']} | "
                f"{count['fp32']:,} | {count['fp16']:,} | "
                f"{count['fp16'] / count['fp32']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
