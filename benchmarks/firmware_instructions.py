"""Instructions per training step and per MAC on Cortex-M4F, M7 and M55 (QEMU, exact counts under -icount),
with the portable kernels ("before") and with the board's optimized kernel sets ("after") side by side.

Run:  .venv/bin/python benchmarks/firmware_instructions.py [--boards mps2-an386,mps2-an500,mps3-an547]
          [--steps 2] [--repeat 2] [--only ResNet] [--variants portable,optimized]

For the ST hand-posture CNN and the MLPerf ResNet-8 (../shared/data/models), under the full plan and an
auto plan, on every board and with both kernel variants: the self-test firmware (which also checks the
results against the simulator) is built twice, plain (instructions per step around mt_train_step) and
with -DMT_PROFILE (instructions per kernel kind and pass, the hook's own cost subtracted). The plain
firmware runs ``--repeat`` times to show that the counts are the same on every run. "portable" builds
the same firmware without the board's kernel sets (board.toml ``kernels``: Cortex-M on the M4F and M7,
Cortex-M + Helium on the M55). MACs are those of the conv/linear kernels actually executed: forward,
input gradients where the plan back-propagates, weight gradients of the trained rows only. A plan whose
RAM exceeds a board runs on the board's larger-RAM variant (mps3-an547-isram: the M55 with its data in
the 4 MB SRAM; marked in the tables). Counters: SysTick on the Arm boards (exact to 40 instructions on
the MPS2, 32 on the MPS3), minstret on rv32-qemu (exact).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.boards.targets import load_target
from mcutrain.core import ir
from mcutrain.data.shared import shared_data_dir, shared_path
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware, is_mac_id
from mcutrain.emit.firmware_run import format_measurements, profile_table, run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.memory import analyze
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, UpdatePlan

PASSES = ("fw", "bw_wgrad", "bw_igrad")
SHORT = {"mps2-an386": "M4F", "mps2-an500": "M7", "mps3-an547": "M55", "rv32-qemu": "rv32"}  # column names
VARIANTS = ("portable", "optimized")
#: boards with more RAM for plans that do not fit the board itself (same CPU, same QEMU machine)
LARGER_RAM = {"mps3-an547": "mps3-an547-isram"}
Case = tuple[str, ir.Graph, UpdatePlan, SelfTest]


def cases(steps: int) -> Iterator[Case]:
    """(label, graph, plan, self-test) for each model and plan."""
    hp = api.load(shared_path("models", "st_handposture_vl53l5cx_cnn2d_float.tflite"))
    st = SelfTest.random(hp, api.plan(hp, None, "full").plan, steps)
    yield "hand-posture full", hp, api.plan(hp, None, "full").plan, st
    yield "hand-posture auto 16KB", hp, api.plan(hp, 16 * 1024, "auto", score="proxy").plan, st
    r8 = api.load(shared_path("models", "mlperf_tiny_resnet8_cifar10_float.tflite"))
    d = np.load(shared_path("datasets", "cifar10_test_1000.npz"))  # raw 0..255 pixels: Adam at 1e-5 is stable
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


def board_for(board: str, plan: UpdatePlan, graph: ir.Graph) -> str:
    """``board``, or its larger-RAM variant when the plan's peak RAM exceeds the board's RAM."""
    peak = analyze(graph, plan).peak_ram_bytes
    if peak > load_target(board).ram.length and board in LARGER_RAM:
        return LARGER_RAM[board]
    return board


def measure(case: Case, board: str, variant: str, root: Path, repeat: int) -> Measurement:
    """Build, run (plain ``repeat`` times, profiled once) and print the numbers of one case on one board
    with the portable kernels or the board's optimized kernel sets."""
    label, g, plan, st = case
    t0 = time.monotonic()
    target = load_target(board)
    if variant == "portable":
        target = replace(target, kernels=())
    proj = emit_firmware(g, plan, root / board / variant / label.replace(" ", "_"), target, st)
    plain, prof = build_firmware(proj.out_dir), build_firmware(proj.out_dir, profile=True)
    runs = [run_firmware(plain, 600) for _ in range(repeat)]
    rp = run_firmware(prof, 600)
    for run in (*runs, rp):
        if run.exit_code != 0:
            raise SystemExit(f"{label} on {board} ({variant}): {run.outcome}\n{run.run.stdout}")
    r = runs[0].report
    rows = profile_table(proj.manifest, rp.report)
    kernels = "+".join(target.kernels) or "portable"
    took = time.monotonic() - t0
    print(f"\n== {label}: {g.name} on {board}, plan {plan.strategy}, kernels {kernels} ({took:.1f} s)")
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


Key = tuple[str, str]  # (board, variant)


def print_summary(
    boards: list[str],
    variants: list[str],
    results: dict[str, dict[Key, Measurement]],
    ran_on: dict[tuple[str, str], str],
) -> None:
    """One markdown table: a row per case and board, instructions per step and per MAC (the whole step
    and each pass) with each kernel variant side by side."""
    print(f"\n== summary: instructions per training step and per MAC ({' -> '.join(variants)})\n")
    arrow = " -> ".join
    cols = [
        "case",
        "board",
        "MACs / step",
        "instr / step",
        "instr / MAC",
        *(p.removeprefix("bw_") for p in PASSES),
    ]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    notes = set()
    for label, per in results.items():
        for b in boards:
            ms = [per[(b, v)] for v in variants]
            name = SHORT.get(b, b)
            if ran_on[(label, b)] != b:
                name += "*"
                notes.add(f"* {label} on {ran_on[(label, b)]}: the plan needs more RAM than {b} has")
            cells = [
                label,
                name,
                f"{ms[0].macs:,}",
                arrow(f"{m.step:,}" for m in ms),
                arrow(
                    f"**{_per(m.step, m.macs)}**" if i == len(ms) - 1 else _per(m.step, m.macs)
                    for i, m in enumerate(ms)
                ),
                *(arrow(_per(m.by_pass[p][1], m.by_pass[p][0]) for m in ms) for p in PASSES),
            ]
            print("| " + " | ".join(cells) + " |")
    for n in sorted(notes):
        print(n)
    print("\nrepeated runs give the same counts (mean, min, max of the steps):")
    for label, per in results.items():
        same = (
            f"{SHORT.get(b, b)}/{v} {'yes' if m.deterministic else f'NO {m.runs}'}"
            for (b, v), m in per.items()
        )
        print(f"  {label:<24} " + ", ".join(same))


def print_kernels(boards: list[str], variants: list[str], label: str, per: dict[Key, Measurement]) -> None:
    """Instructions per step of every kernel kind and pass, every board and variant side by side."""
    keys = [(b, v) for b in boards for v in variants]
    print(f"\n== {label}: instructions per step by kernel")
    print(f"  {'kernel':<26}" + "".join(f" {SHORT.get(b, b) + ' ' + v[:4]:>14}" for b, v in keys))
    ids = sorted(per[keys[0]].kernels, key=lambda k: -per[keys[0]].kernels[k])
    for pid in ids:
        print(f"  {pid:<26}" + "".join(f" {per[k].kernels.get(pid, 0.0):>14,.0f}" for k in keys))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--boards", default="mps2-an386,mps2-an500,mps3-an547", help="comma-separated QEMU boards"
    )
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help="portable, optimized or both (side by side)"
    )
    ap.add_argument("--steps", type=int, default=2, help="training steps per run (counts are per step)")
    ap.add_argument("--repeat", type=int, default=2, help="plain runs per case and board (determinism)")
    ap.add_argument("--only", help="cases whose label contains this text (e.g. hand-posture)")
    ap.add_argument("--out", help="keep the projects here (default: a temporary folder)")
    args = ap.parse_args()
    if not (d := shared_data_dir()) or not d.is_dir():
        print("needs the real models of ../shared/data (or MCUTRAIN_SHARED_DATA)", file=sys.stderr)
        return 2
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not set(variants) <= set(VARIANTS):
        print(f"--variants: choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    for b in boards:
        if not load_target(b).runs_in_qemu:
            print(f"{b} runs on hardware only: choose QEMU boards", file=sys.stderr)
            return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="mt-fw-bench-"))
    results: dict[str, dict[Key, Measurement]] = {}
    ran_on: dict[tuple[str, str], str] = {}
    for case in cases(args.steps):
        if args.only and args.only not in case[0]:
            continue
        results[case[0]] = {}
        for b in boards:
            ran_on[(case[0], b)] = board_for(b, case[2], case[1])
            for v in variants:
                results[case[0]][(b, v)] = measure(case, ran_on[(case[0], b)], v, root, args.repeat)
    for label, per in results.items():
        print_kernels(boards, variants, label, per)
    print_summary(boards, variants, results, ran_on)
    return 0


if __name__ == "__main__":
    sys.exit(main())
