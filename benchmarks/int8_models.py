"""int8 frozen layers against float32: budgets, peak RAM, flash and instructions per MAC of the int8 models in
../shared/data/models and of float models quantized after training, and the adaptation of the int8
hello_world regressor.

Run:  .venv/bin/python benchmarks/int8_models.py [--board mps2-an386] [--no-qemu] [--only kws]

For every model, both precisions of the frozen layers (``frozen_precision`` int8 and fp32; a float model
is post-training quantized first from real inputs, :mod:`mcutrain.train.ptq`):

- the smallest budget any plan fits (the planner's own minimum: one bias at the cheapest place);
- the auto plan (proxy scores) under the case's budget: its peak RAM and flash, or why it does not fit;
- in QEMU (``--board``, exact counts under -icount): the self-test firmware of that plan, built plain and
  with -DMT_PROFILE, one training step: instructions per MAC of the whole step and of the int8 forwards
  (profile ids ``<kind>_fw_s8``). The self-test checks the device's loss and parameters against the
  simulator; a failing firmware stops the benchmark.

hello_world, the one int8 model with its data at hand (``y = sin(x)``), adapts to a sensor with a gain and
an offset (``y = 0.8 sin(x) + 0.3``) in the simulator, 2,000 samples streamed once: RMSE before and
after, with int8 and with float32 frozen layers, and the RMSE of the int8 model exported after training
(:mod:`mcutrain.host.export_int8`) as LiteRT's reference kernels run it. The other models' accuracies
come from the demos (docs/quantization.md, "Measured").
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.cli.args import budget, col_bytes
from mcutrain.core import ir
from mcutrain.core.int8_scratch import S8_COL_BYTES
from mcutrain.core.units import format_bytes
from mcutrain.data.shared import shared_data_dir, shared_path
from mcutrain.emit.firmware_build import build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.firmware_run import profile_table, run_firmware
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.planner import BudgetError, PlanResult
from mcutrain.train.simulator import Simulator
from mcutrain.train.update_plan import OptimizerConfig, OptimizerKind, PlanError


def _resnet8() -> tuple[ir.Graph, np.ndarray]:
    from mcutrain.data import cifar

    return api.load(shared_path("models", "mlperf_tiny_resnet8_cifar10_float.tflite")), cifar.load().x[:200]


def _handposture() -> tuple[ir.Graph, np.ndarray]:
    from mcutrain.data import handposture

    frames = handposture.load(users=["User1"])
    return api.load(shared_path("models", "st_handposture_vl53l5cx_cnn2d_float.tflite")), frames.x[:200]


def _depth() -> tuple[ir.Graph, np.ndarray]:
    from mcutrain.data.scenes import generate

    b = generate("A", 64, seed=0)  # the pre-training domain; images in [0, 1] as the demo feeds them
    return api.load("depth"), (b.image[:, None] / 255.0).astype(np.float32)


@dataclass(frozen=True)
class Case:
    label: str
    budget: int  # bytes
    load: Callable[[], tuple[ir.Graph, np.ndarray | None]]  # the graph, and calibration inputs if float


def _int8(name: str) -> Callable[[], tuple[ir.Graph, None]]:
    return lambda: (api.load(shared_path("models", f"{name}.tflite")), None)


CASES = (
    Case("hello_world int8", 3 * 1024, _int8("tflm_hello_world_int8")),
    Case("micro_speech int8", 32 * 1024, _int8("tflm_micro_speech_int8")),
    Case("kws int8", 64 * 1024, _int8("mlperf_kws_dscnn_int8")),
    Case("vww int8", 256 * 1024, _int8("mlperf_vww_mobilenetv1_int8")),
    Case("resnet8 PTQ", 128 * 1024, _resnet8),
    Case("resnet8 PTQ", 64 * 1024, _resnet8),
    Case("handposture PTQ", 8 * 1024, _handposture),
    Case("depth PTQ", 256 * 1024, _depth),
)


@dataclass(frozen=True)
class Row:
    case: str
    precision: str
    budget: int
    min_budget: int
    plan: PlanResult | None  # None: no plan fits the budget
    instr_per_mac: float = math.nan
    s8_instr_per_mac: float = math.nan

    def cells(self) -> list[str]:
        m = self.plan.memory if self.plan else None
        trained = self.plan.plan.trained if self.plan else ()
        layers = ", ".join(f"{lu.name}:{lu.update.value}" for lu in trained) or "-"
        if self.plan and not self.plan.plan.int8_scratch:  # the budget holds no DSP scratch
            layers = "reference kernels; " + layers
        return [
            self.case,
            self.precision,
            format_bytes(self.budget),
            f"{self.min_budget:,}",
            f"{m.peak_ram_bytes:,}" if m else "does not fit",
            f"{m.flash_bytes:,}" if m else "-",
            "-" if math.isnan(self.instr_per_mac) else f"{self.instr_per_mac:.2f}",
            "-" if math.isnan(self.s8_instr_per_mac) else f"{self.s8_instr_per_mac:.2f}",
            layers if len(layers) < 60 else layers[:57] + "...",
        ]


def min_budget(graph: ir.Graph, precision: str) -> int:
    try:
        api.plan(graph, 1, "auto", score="proxy", frozen_precision=precision)
    except BudgetError as e:
        return e.min_budget
    raise AssertionError("a plan fit into one byte")


def plan_at(
    graph: ir.Graph, budget: int, precision: str, col_bytes: int | str = S8_COL_BYTES, strategy: str = "auto"
) -> PlanResult | None:
    try:
        return api.plan(
            graph, budget, strategy, score="proxy", frozen_precision=precision, int8_col_bytes=col_bytes
        )
    except BudgetError:
        return None


def count(graph: ir.Graph, res: PlanResult, board: str, root: Path) -> tuple[float, float]:
    """Instructions per MAC of one training step, whole and of the int8 forwards, on ``board``."""
    st = SelfTest.random(graph, res.plan, 1)
    proj = emit_firmware(graph, res.plan, root, board, st)
    runs = [run_firmware(build_firmware(proj.out_dir, profile=p), 900) for p in (False, True)]
    for r in runs:
        if r.exit_code != 0:
            raise SystemExit(f"{root.name} on {board}: {r.outcome}\n{r.run.stdout}")
    step = runs[0].report["instret_mean"]  # the plain build: no profiling hooks in the count
    rows = profile_table(proj.manifest, runs[1].report)
    macs = sum(row["work"] for row in rows if row["mac"])
    s8 = [row for row in rows if row["mac"] and row["id"].endswith("_s8")]
    s8_macs = sum(row["work"] for row in s8)
    return step / macs, (sum(row["instret"] for row in s8) / s8_macs if s8_macs else math.nan)


def litert_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """LiteRT's reference kernels on float samples ``x`` of a model with one int8 input and output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (s, z), (so, zo) = inp["quantization"], out["quantization"]
    ys = []
    for xi in x:
        it.set_tensor(
            inp["index"], np.clip(np.round(xi / s) + z, -128, 127).astype(np.int8).reshape(inp["shape"])
        )
        it.invoke()
        ys.append(so * (it.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zo))
    return np.stack(ys)


def hello_world_adaptation(root: Path, samples: int = 2000) -> list[str]:
    """RMSE of hello_world on a gained and offset sine, before and after streaming ``samples`` once, and
    of the int8 model exported after training, run by LiteRT."""
    from mcutrain.host.export_int8 import export_tflite_int8

    src = shared_path("models", "tflm_hello_world_int8.tflite")
    g = api.load(src)
    rng = np.random.default_rng(0)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(0, 2 * math.pi, (n, 1)).astype(np.float32)
        return x, (0.8 * np.sin(x) + 0.3).astype(np.float32)

    def rmse(pred: np.ndarray) -> float:
        return float(np.sqrt(np.mean((pred.reshape(yt.shape) - yt) ** 2)))

    xs, ys = data(samples)
    xt, yt = data(500)
    out = []
    opt = OptimizerConfig(OptimizerKind.ADAM, lr=3e-3)
    for prec in ("int8", "fp32"):
        res = api.plan(g, 3 * 1024, "auto", score="proxy", optimizer=opt, frozen_precision=prec)
        sim = Simulator(g, res.plan)
        before = rmse(sim.predict(xt).numpy())
        sim.fit(xs, ys)
        after = rmse(sim.predict(xt).numpy())
        exported = "-"
        if prec == "int8":
            root.mkdir(parents=True, exist_ok=True)
            export_tflite_int8(src, g, res.plan, sim.numpy_params(), root / "hello_world_tuned.tflite")
            exported = f"{rmse(litert_predict(root / 'hello_world_tuned.tflite', xt)):.3f}"
        peak = res.memory.peak_ram_bytes
        out.append(f"| hello_world, {prec} frozen | {peak:,} | {before:.3f} | {after:.3f} | {exported} |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--board", default="mps2-an386", help="QEMU board for the instruction counts")
    ap.add_argument("--no-qemu", action="store_true", help="memory only (seconds instead of minutes)")
    ap.add_argument("--only", help="cases whose label contains this text")
    ap.add_argument("--out", help="keep the firmware projects here (default: a temporary folder)")
    ap.add_argument(
        "--int8-col-bytes",
        type=col_bytes,
        default=S8_COL_BYTES,
        help=f"the int8 DSP conv2d's column budget of the plans, or auto (default {S8_COL_BYTES})",
    )
    ap.add_argument(
        "--budget", type=budget, help="every case's RAM budget instead of its own, e.g. 24KB (with --only)"
    )
    ap.add_argument("--strategy", default="auto", help="the plans' strategy (default auto, proxy scores)")
    args = ap.parse_args()
    if not (d := shared_data_dir()) or not d.is_dir():
        print("needs the real models of ../shared/data (or MCUTRAIN_SHARED_DATA)", file=sys.stderr)
        return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="mt-int8-bench-"))
    rows: list[Row] = []
    loaded: dict[str, tuple[ir.Graph, ir.Graph]] = {}  # label -> (float view, int8 graph)
    for case in CASES:
        if args.only and args.only not in case.label:
            continue
        t0 = time.monotonic()
        if case.label not in loaded:
            g, calib = case.load()
            loaded[case.label] = (g, g if calib is None else api.quantize(g, calib))
        fg, qg = loaded[case.label]
        if args.budget:
            case = replace(case, budget=args.budget)
        for prec, g in (("int8", qg), ("fp32", fg)):
            res = plan_at(g, case.budget, prec, args.int8_col_bytes, args.strategy)
            ipm = s8 = math.nan
            if res is not None and not args.no_qemu:
                folder = root / f"{case.label.replace(' ', '_')}_{case.budget // 1024}k_{prec}"
                try:
                    ipm, s8 = count(g, res, args.board, folder)
                except PlanError as e:  # the board's RAM cannot hold the plan
                    print(f"  {case.label} {prec}: {e}", file=sys.stderr)
            rows.append(Row(case.label, prec, case.budget, min_budget(g, prec), res, ipm, s8))
            print(" | ".join(rows[-1].cells()), f"({time.monotonic() - t0:.0f} s)", flush=True)
    head = ["model", "frozen", "budget", "min budget (B)", "peak RAM (B)", "flash (B)", "instr/MAC"]
    head.append("int8 fw")
    print(f"\n== int8 against float32 frozen layers ({args.board} for instructions)\n")
    print("| " + " | ".join([*head, "auto plan"]) + " |\n|" + "---|" * (len(head) + 1))
    for r in rows:
        print("| " + " | ".join(r.cells()) + " |")
    if not args.only or "hello" in args.only:
        print("\n== hello_world adapting to y = 0.8 sin(x) + 0.3 (simulator, 2,000 samples, Adam 3e-3)\n")
        print("| model | peak RAM (B) | RMSE before | RMSE after | exported int8, LiteRT |")
        print("|---|---|---|---|---|")
        print("\n".join(hello_world_adaptation(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
