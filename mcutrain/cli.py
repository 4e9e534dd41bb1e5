"""The ``mcutrain`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .plan import ZoneSpec


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read a shape from {text!r}: use e.g. 1,3,32,32") from None
    if len(dims) == 4 and dims[0] == 1:
        dims = dims[1:]  # a leading batch axis of 1
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}")
    return dims


def _zones(text: str) -> ZoneSpec:
    from .plan import ZoneSpec

    try:
        v = [int(t) for t in text.split(",")]
        return ZoneSpec(*v)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"cannot read a zone footprint from {text!r}: use TOP,LEFT,ZONE_H,ZONE_W[,ROWS,COLS]"
        ) from None


def _budget(text: str) -> int:
    from .memory import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_plan(args: argparse.Namespace) -> int:
    from . import api, report
    from .plan import LossConfig, LossKind, OptimizerConfig, OptimizerKind

    graph = api.load(args.model, args.input_shape)
    loss = api.default_loss(graph)
    if args.loss or args.masked or args.zones:
        kind = LossKind(args.loss) if args.loss else loss.kind
        loss = LossConfig(kind, masked=args.masked, zone=args.zones)
    opt = OptimizerConfig(OptimizerKind(args.optimizer), lr=args.lr)
    calib = api.load_calibration(args.calib, graph, loss) if args.calib else None
    if args.strategy == "auto" and calib is None:
        print(
            "note: no --calib data: scores come from random inputs and labels (a structural prior); "
            "pass --calib DATA.npz for a data-driven plan",
            file=sys.stderr,
        )
    res = api.plan(
        graph,
        args.budget,
        args.strategy,
        calib,
        opt,
        loss,
        score=args.score,
        k=args.k,
        batch=args.batch,
        progress=sys.stderr.isatty() or args.progress,
        lr_scale=args.lr_scale,
    )
    print(
        f"model {graph.name}: {graph.num_params():,} parameters, {graph.macs():,} MACs per sample, "
        f"hash {graph.fingerprint()[:12]}"
    )
    print(
        f"strategy {res.plan.strategy}, optimizer {opt.kind.value}, loss {loss.kind.value}, "
        f"batch {res.plan.batch}"
    )
    print()
    print(report.plan_table(graph, res))
    print()
    print(report.memory_table(res.memory, args.budget))
    if res.plan.strategy == "auto":
        print(
            f"score {res.score:.4g} (upper bound {res.upper_bound:.4g}, gap {res.gap:.3g}); "
            f"{res.evaluated} exact memory analyses in {res.seconds:.2f} s"
        )
    extra = {
        "model_source": str(args.model),
        **res.memory.to_dict(),
        "score": res.score,
        "score_upper_bound": res.upper_bound,
    }
    res.plan.save(args.out, extra)
    print(f"\nwrote {args.out}")
    if args.plot:
        report.plot_memory(res.memory, args.plot, f"{graph.name}: {res.plan.strategy} plan")
        print(f"wrote {args.plot}")
    return 0


# emit options that only a firmware project has (added by cli_firmware.register)
BOARD_ONLY_EMIT = ("selftest", "app", "val_slots", "snapshot", "storage")


def cmd_emit(args: argparse.Namespace) -> int:
    from . import api
    from .codegen import emit
    from .memory import format_bytes
    from .plan import PlanError, UpdatePlan

    plan = UpdatePlan.load(args.plan)
    from pathlib import Path

    source = args.model or json.loads(Path(args.plan).read_text()).get("model_source")
    if not source:
        raise PlanError(f"{args.plan} does not say which model it was made for: pass --model")
    graph = api.load(source, args.input_shape)
    if args.target != "host":
        raise PlanError(f"unknown target {args.target!r}: this version emits projects for 'host'")
    board_only = [
        f"--{k.replace('_', '-')}" for k in BOARD_ONLY_EMIT if getattr(args, k, None) not in (None, 0)
    ]
    if board_only:
        raise PlanError(f"{', '.join(board_only)}: firmware options, for a board target (--target BOARD)")
    em = emit(graph, plan, args.out)
    m = em.memory
    print(f"emitted {graph.name} ({plan.strategy} plan) into {em.out_dir}/")
    print(
        f"  arena {m.arena_bytes:,} B (lower bound {m.arena_lower_bound:,} B), trainable parameters "
        f"{em.trainable_numel:,} floats, frozen weights {format_bytes(m.flash_bytes)} in flash"
    )
    print(
        f"  steps: {len(m.train_graph.steps)} per training sample; peak RAM of the plan "
        f"{m.peak_ram_bytes:,} B"
    )
    print(f"  build it with: mcutrain build {em.out_dir}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .hostbuild import BuildError, build_host

    if not (Path(args.dir) / "mt_model.c").exists():
        print(
            f"mcutrain build: error: {args.dir} is not a generated project (run `mcutrain emit` first)",
            file=sys.stderr,
        )
        return 2
    try:
        build_host(args.dir, "all")
        if args.fast:  # the vectorized conv2d kernels, -O3 -march=native (docs/kernels.md)
            build_host(args.dir, "libmt_fast.so")
    except BuildError as e:
        print(f"mcutrain build: error: {e}", file=sys.stderr)
        return 1
    for name in ("libmt.so", "mt_train_host", "libmt_fast.so"):
        p = Path(args.dir) / name
        if p.exists():
            print(f"built {p} ({p.stat().st_size:,} bytes)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .demo_depth import DepthDemoConfig, run

    if args.case == "handposture":
        from . import demo_handposture

        args.budget = args.budget or "16KB"
        args.epochs = args.epochs or 5
        return demo_handposture.main(args)
    if args.case == "cifar-shift":
        from . import demo_cifar

        return demo_cifar.main(args)
    if args.case != "depth":
        raise SystemExit(f"mcutrain demo: unknown case {args.case!r} (available: depth, handposture, ...)")
    cfg = DepthDemoConfig(out=Path(args.out or "out/demo-depth"), quick=args.quick, lr=args.lr or 3e-4)
    if bool(args.train_flights) != bool(args.test_flights):
        raise SystemExit("mcutrain demo: give both --train-flights and --test-flights, or neither")
    if args.train_flights:  # real drone flights instead of synthetic domain B
        cfg.data = Path(args.data) if args.data else None
        cfg.train_flights, cfg.test_flights = args.train_flights, args.test_flights
    if args.quick:
        cfg.stream, cfg.test = 24, 24
    if args.samples:
        cfg.stream = args.samples
    result = run(cfg)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import api

    graph = api.load(args.model, args.input_shape)
    if args.json:
        print(graph.to_json() if args.params else json.dumps(graph.to_dict(with_params=False), indent=1))
        return 0
    print(f"{graph.name}: {len(graph.nodes)} nodes, {graph.num_params():,} parameters, {graph.macs():,} MACs")
    for name, shape in graph.inputs:
        print(f"  input  {name:<24} {'x'.join(map(str, shape))}")
    for n in graph.nodes:
        print(
            f"  {n.op.kind:<18} {n.name:<24} {'x'.join(map(str, graph.shapes[n.name])):<12} "
            f"<- {', '.join(n.inputs)}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcutrain", description="Plan, compile and run fine-tuning on microcontrollers."
    )
    p.add_argument("--version", action="version", version=f"mcutrain {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    pl = sub.add_parser("plan", help="choose what to update under a RAM budget and write a plan file")
    pl.add_argument("model", help="a .tflite or .pt2 file, package.module:factory, or a built-in model name")
    pl.add_argument("--budget", type=_budget, help="RAM budget, e.g. 256KB or 1.2MB (KB = 1024 bytes)")
    pl.add_argument(
        "--input-shape", type=_shape, help="per-sample input shape for PyTorch models, e.g. 1,3,32,32"
    )
    pl.add_argument("--calib", help="calibration data: .npz with x, y (and mask)")
    pl.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    pl.add_argument("--lr", type=float, default=0.01)
    pl.add_argument(
        "--lr-scale",
        choices=["none", "relative"],
        default="none",
        help="relative: each tensor's rate times its pretrained RMS (lr = relative step; docs/cifar.md)",
    )
    pl.add_argument("--loss", choices=["xent", "mse", "l1", "berhu"])
    pl.add_argument("--masked", action="store_true", help="targets come with a 0/1 validity mask")
    pl.add_argument(
        "--zones",
        type=_zones,
        metavar="TOP,LEFT,ZH,ZW[,ROWS,COLS]",
        help="pool a dense (1,H,W) prediction over a grid of zones before the loss (8x8 ToF)",
    )
    pl.add_argument(
        "--strategy", choices=["auto", "full", "last-layer", "bias-only", "last-k"], default="auto"
    )
    pl.add_argument("--k", type=int, help="layers for --strategy last-k (default: as many as fit)")
    pl.add_argument(
        "--score",
        choices=["measured", "proxy"],
        default="measured",
        help="measured: short fine-tuning per candidate; proxy: gradient norms (faster)",
    )
    pl.add_argument("--batch", type=int, default=1, help="samples per update (gradient accumulation)")
    pl.add_argument("--out", default="plan.json")
    pl.add_argument("--plot", help="write a PNG of memory by category and by layer")
    pl.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    pl.set_defaults(func=cmd_plan)

    em = sub.add_parser("emit", help="generate the C project of a plan")
    em.add_argument("plan", help="plan file written by `mcutrain plan`")
    em.add_argument("--target", default="host", help="host (a native build for tests and bindings)")
    em.add_argument("--model", help="the model, if not the one recorded in the plan file")
    em.add_argument("--input-shape", type=_shape)
    em.add_argument("--out", required=True, help="project folder to write")
    em.set_defaults(func=cmd_emit)

    bd = sub.add_parser("build", help="build a generated project (host: shared library and driver)")
    bd.add_argument("dir")
    bd.add_argument(
        "--fast",
        action="store_true",
        help="host: also libmt_fast.so, the step with vectorized conv2d kernels for this CPU (-march=native)",
    )
    bd.set_defaults(func=cmd_build)

    dm = sub.add_parser("demo", help="end-to-end demos (depth: ToF pseudo-labels on a Cortex-M4F in QEMU)")
    dm.add_argument("case", choices=["depth", "handposture", "cifar-shift"])
    dm.add_argument("--quick", action="store_true", help="a short run (24 frames) for tests")
    dm.add_argument("--samples", type=int, help="frames to stream (depth: 600; handposture: first N)")
    dm.add_argument("--lr", type=float, help="learning rate (depth: 3e-4, handposture: 3e-3)")
    dm.add_argument("--out", help="folder for the plan, firmware, plots, results (default out/demo-CASE)")
    dm.add_argument("--json", help="also write the results here")
    dm.add_argument(
        "--data",
        help="depth: folder of the real drone flights (default: ../shared/data/datasets/tof_drone_flights); "
        "handposture: ST's zip or an unpacked folder of its layout (default: ../shared/data's zip)",
    )
    dm.add_argument(
        "--train-flights", help="real flights to stream for training, e.g. O0,O2,A0 (instead of domain B)"
    )
    dm.add_argument("--test-flights", help="held-out real flights for the zone RMSE, e.g. O1,O3")
    hp = dm.add_argument_group("handposture (docs/handposture.md)")
    hp.add_argument("--user", default="User1", help="the user to adapt to, e.g. User2")
    hp.add_argument(
        "--budget",
        help="RAM budget, e.g. 8KB, or 'full' (the full update's); handposture 16KB, cifar-shift 256KB",
    )
    hp.add_argument("--strategy", choices=["auto", "full", "last-layer", "bias-only"], default="auto")
    hp.add_argument("--cross-user", action="store_true", help="stream the other users, test on --user")
    hp.add_argument(
        "--epochs",
        type=int,
        help="passes over the calibration data (handposture: 5; cifar-shift: its recipe)",
    )
    hp.add_argument("--order", choices=["shuffled", "recorded"], default="shuffled")
    hp.add_argument("--simulator-only", action="store_true", help="no firmware, no QEMU")
    cf = dm.add_argument_group("cifar-shift (docs/cifar.md; also --budget, --strategy, --epochs, --data)")
    cf.add_argument("--shift", choices=["grayscale", "noise"], default="grayscale")
    cf.add_argument("--test", type=int, help="measure on N of the 500 test images (spread over the classes)")
    cf.add_argument("--calib", type=int, default=200, help="adapt images the auto plan is scored on")
    cf.add_argument("--score", choices=["measured", "proxy"], default="measured")
    dm.add_argument(
        "--lr-scale",
        choices=["none", "relative"],
        help="handposture, cifar-shift: per-tensor lr scaling (default: relative / the shift's recipe)",
    )
    dm.set_defaults(func=cmd_demo)

    ins = sub.add_parser("inspect", help="print a model's graph as mcutrain sees it")
    ins.add_argument("model")
    ins.add_argument("--input-shape", type=_shape)
    ins.add_argument("--json", action="store_true", help="print the IR as JSON")
    ins.add_argument("--params", action="store_true", help="with --json: include the parameters")
    ins.set_defaults(func=cmd_inspect)

    from . import cli_firmware

    cli_firmware.register(sub)  # boards: emit/build --target BOARD, run, report

    from . import cli_link

    cli_link.register(sub)  # serial link: stream, pull

    from . import cli_export

    cli_export.register(sub, _shape)  # pulled weights back into the source model's format

    from . import cli_monitor

    cli_monitor.register(sub)  # monitor
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .frontends import FrontendError
    from .ir import IRError
    from .plan import PlanError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FrontendError, PlanError, IRError) as e:
        print(f"mcutrain {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
