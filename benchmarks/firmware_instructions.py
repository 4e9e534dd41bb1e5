"""Instructions per training step and per MAC on Cortex-M4F and rv32 (QEMU, exact counts under -icount).

Run:  .venv/bin/python benchmarks/firmware_instructions.py [--boards mps2-an386,rv32-qemu] [--steps 2]

For the ST hand-posture CNN and the MLPerf ResNet-8 (../shared/data/models), under the full plan and an
auto plan, on every board: the self-test firmware (which also checks the results against the simulator)
is built twice, plain (instructions per step around mt_train_step) and with -DMT_PROFILE (instructions
per kernel kind and pass, the hook's own cost subtracted). The plain firmware runs ``--repeat`` times to
show that the counts are the same on every run. MACs are those of the conv/linear kernels actually
executed: forward, input gradients where the plan back-propagates, weight gradients of the trained rows
only. Counters: SysTick on mps2-an386 (exact to 40 instructions), minstret on rv32-qemu (exact).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.boards.targets import load_target
from mcutrain.core import ir
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware, is_mac_id
from mcutrain.emit.firmware_run import format_measurements, profile_table, run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, UpdatePlan

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCUTRAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))
PASSES = ("fw", "bw_wgrad", "bw_igrad")
SHORT = {"mps2-an386": "M4F", "mps2-an500": "M7", "mps3-an547": "M55", "rv32-qemu": "rv32"}  # column names
Case = tuple[str, ir.Graph, UpdatePlan, SelfTest]


def cases(steps: int) -> Iterator[Case]:
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


@dataclass(frozen=True)
class Measurement:
    step: int  # instructions per training step (mean over the self-test's steps)
    runs: tuple[tuple[int, int, int], ...]  # (mean, min, max) of every plain run: equal when deterministic
    macs: int  # MACs per step of the conv/linear kernels
    by_pass: dict[str, tuple[int, float]]  # pass -> (MACs, instructions) per step
    kernels: dict[str, float]  # profile id -> instructions per step

    @property
    def deterministic(self) -> bool:
        return len(set(self.runs)) == 1


def measure(case: Case, board: str, root: Path, repeat: int) -> Measurement:
    """Build, run (plain ``repeat`` times, profiled once) and print the numbers of one case on one board."""
    label, g, plan, st = case
    t0 = time.monotonic()
    proj = emit_firmware(g, plan, root / board / label.replace(" ", "_"), board, st)
    plain, prof = build_firmware(proj.out_dir), build_firmware(proj.out_dir, profile=True)
    runs = [run_firmware(plain, 600) for _ in range(repeat)]
    rp = run_firmware(prof, 600)
    for run in (*runs, rp):
        if run.exit_code != 0:
            raise SystemExit(f"{label} on {board}: {run.outcome}\n{run.run.stdout}")
    r = runs[0].report
    rows = profile_table(proj.manifest, rp.report)
    print(f"\n== {label}: {g.name} on {board}, plan {plan.strategy} ({time.monotonic() - t0:.1f} s)")
    print(plain.summary())
    print(format_measurements(proj.manifest, r, rows))
    macs = proj.manifest["macs"]
    by_pass = {}
    for p in PASSES:
        ids = [pid for pid in macs if is_mac_id(pid) and pid.endswith("_" + p)]
        by_pass[p] = (sum(macs[i] for i in ids), sum(row["instret"] for row in rows if row["id"] in ids))
    return Measurement(
        step=r["instret_mean"],
        runs=tuple(
            (x.report["instret_mean"], x.report["instret_min"], x.report["instret_max"]) for x in runs
        ),
        macs=sum(n for n, _ in by_pass.values()),
        by_pass=by_pass,
        kernels={row["id"]: row["instret"] for row in rows},
    )


def _per(n: float, d: int) -> str:
    return f"{n / d:.2f}" if d else "-"


def print_summary(boards: list[str], results: dict[str, dict[str, Measurement]]) -> None:
    """A markdown table, one row per case: instructions per step and per MAC (the whole step and each
    pass) on every board, and the step's ratio between the last board and the first."""
    print(f"\n== summary: instructions per training step and per MAC on {', '.join(boards)}\n")
    cols = ["case", "MACs / step"]
    for b in boards:
        s = SHORT.get(b, b)
        cols += [f"{s} instr / step", f"{s} instr / MAC", *(f"{s} {p.removeprefix('bw_')}" for p in PASSES)]
    if len(boards) > 1:
        cols.append(f"{SHORT.get(boards[-1], boards[-1])} / {SHORT.get(boards[0], boards[0])}")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for label, per_board in results.items():
        ms = [per_board[b] for b in boards]
        cells = [label, f"{ms[0].macs:,}"]
        for m in ms:
            cells += [
                f"{m.step:,}",
                _per(m.step, m.macs),
                *(_per(m.by_pass[p][1], m.by_pass[p][0]) for p in PASSES),
            ]
        if len(boards) > 1:
            cells.append(f"{ms[-1].step / ms[0].step:.3f}")
        print("| " + " | ".join(cells) + " |")
    print("\nrepeated runs give the same counts (mean, min, max of the steps):")
    for label, per_board in results.items():
        same = (f"{b} {'yes' if m.deterministic else f'NO {m.runs}'}" for b, m in per_board.items())
        print(f"  {label:<24} " + ", ".join(same))


def print_kernels(boards: list[str], label: str, per_board: dict[str, Measurement]) -> None:
    """Instructions per step of every kernel kind and pass on every board, side by side."""
    print(f"\n== {label}: instructions per step by kernel")
    print(f"  {'kernel':<26}" + "".join(f" {b:>14}" for b in boards) + (" ratio" if len(boards) == 2 else ""))
    ids = sorted(per_board[boards[0]].kernels, key=lambda k: -per_board[boards[0]].kernels[k])
    for pid in ids:
        vals = [per_board[b].kernels.get(pid, 0.0) for b in boards]
        ratio = f" {vals[1] / vals[0]:5.2f}" if len(boards) == 2 and vals[0] else ""
        print(f"  {pid:<26}" + "".join(f" {v:>14,.0f}" for v in vals) + ratio)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--boards", default="mps2-an386,rv32-qemu", help="comma-separated QEMU boards")
    ap.add_argument("--steps", type=int, default=2, help="training steps per run (counts are per step)")
    ap.add_argument("--repeat", type=int, default=2, help="plain runs per case and board (determinism)")
    ap.add_argument("--only", help="cases whose label contains this text (e.g. hand-posture)")
    ap.add_argument("--out", help="keep the projects here (default: a temporary folder)")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"needs the real models in {SHARED}", file=sys.stderr)
        return 2
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    for b in boards:
        if not load_target(b).runs_in_qemu:
            print(f"{b} runs on hardware only: choose QEMU boards", file=sys.stderr)
            return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="mt-fw-bench-"))
    results: dict[str, dict[str, Measurement]] = {}
    for case in cases(args.steps):
        if args.only and args.only not in case[0]:
            continue
        results[case[0]] = {b: measure(case, b, root, args.repeat) for b in boards}
    for label, per_board in results.items():
        print_kernels(boards, label, per_board)
    print_summary(boards, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
