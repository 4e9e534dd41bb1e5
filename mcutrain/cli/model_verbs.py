"""Verbs on a model: ``inspect`` (the graph as mcutrain sees it), ``plan`` (what to update under a RAM
budget, written to a plan file) and ``export`` (the model in its own format with weights pulled from a
device, docs/export.md).

Exit status: 0 on success; 2 for a model, plan or budget that cannot be used (the message says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mcutrain.cli import args as cli_args
from mcutrain.core.int8_scratch import S8_COL_BYTES
from mcutrain.train.update_plan import STACK_RESERVE_BYTES, UpdatePlan


def cmd_inspect(args: argparse.Namespace) -> int:
    from mcutrain import api

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


def int8_note(plan: UpdatePlan) -> str:
    """What the plan line says of the int8 conv2d's kernels when it is not the default."""
    if not plan.int8_scratch:
        return "; int8 conv2d on the reference kernels (no room for the DSP scratch)"
    if plan.int8_col_bytes != S8_COL_BYTES and plan.frozen_precision == "int8":
        return f"; int8 conv2d column budget {plan.int8_col_bytes:,} B"
    return ""


def cmd_plan(args: argparse.Namespace) -> int:
    from mcutrain import api
    from mcutrain.cli import tables
    from mcutrain.train.plan_file import write_plan
    from mcutrain.train.update_plan import (
        LinkApp,
        LossConfig,
        LossKind,
        OptimizerConfig,
        OptimizerKind,
        PlanError,
    )

    if args.app != "link" and (
        args.val_slots or args.snapshot or args.storage or args.replay_slots or args.blend is not None
    ):
        raise PlanError(
            "--val-slots, --snapshot, --storage, --replay-slots and --blend size the serial-link firmware: "
            "add --app link"
        )
    if not args.replay_slots and (args.replay_steps is not None or args.replay_seed is not None):
        raise PlanError("--replay-steps and --replay-seed configure the reservoir: add --replay-slots K")
    given = {"replay_steps": args.replay_steps, "replay_seed": args.replay_seed}
    replay = {k: v for k, v in given.items() if v is not None}  # LinkApp's defaults otherwise
    app = (
        LinkApp.make(
            args.val_slots or 0,
            args.snapshot,
            args.storage,
            args.replay_slots or 0,
            **replay,
            blend=args.blend,
        )
        if args.app == "link"
        else None
    )
    graph = api.load(args.model, args.input_shape)
    loss = api.default_loss(graph)
    if args.loss or args.masked or args.zones:
        kind = LossKind(args.loss) if args.loss else loss.kind
        loss = LossConfig(kind, masked=args.masked, zone=args.zones)
    opt = OptimizerConfig(OptimizerKind(args.optimizer), lr=args.lr)
    calib = api.load_calibration(args.calib, graph, loss) if args.calib else None
    ptq = None
    if args.frozen_precision == "int8" and not graph.quantized:  # post-training quantization (train/ptq)
        if calib is None:
            raise PlanError(f"{args.model} is a float model: --frozen-precision int8 needs --calib DATA.npz")
        graph = api.quantize(graph, calib.x)
        ptq = {"calib": str(Path(args.calib).resolve()), "samples": len(calib.x)}
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
        stack_reserve_bytes=args.stack_reserve,
        app=app,
        frozen_precision=args.frozen_precision,
        int8_col_bytes=args.int8_col_bytes,
    )
    print(
        f"model {graph.name}: {graph.num_params():,} parameters, {graph.macs():,} MACs per sample, "
        f"hash {graph.fingerprint()[:12]}"
    )
    print(
        f"strategy {res.plan.strategy}, optimizer {opt.kind.value}, loss {loss.kind.value}, "
        f"batch {res.plan.batch}" + int8_note(res.plan)
    )
    print()
    print(tables.plan_table(graph, res))
    print()
    print(tables.memory_table(res.memory, args.budget))
    if res.plan.strategy == "auto":
        print(
            f"score {res.score:.4g} (upper bound {res.upper_bound:.4g}, gap {res.gap:.3g}); "
            f"{res.evaluated} exact memory analyses in {res.seconds:.2f} s"
        )
    source = str(Path(args.model).resolve()) if Path(args.model).is_file() else str(args.model)
    extra = {"score": res.score, "score_upper_bound": res.upper_bound}
    write_plan(args.out, res.plan, res.memory, source, graph.inputs[0][1], extra, ptq)
    print(f"\nwrote {args.out}")
    if args.plot:
        tables.plot_memory(res.memory, args.plot, f"{graph.name}: {res.plan.strategy} plan")
        print(f"wrote {args.plot}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mcutrain.host.export import ExportError, export

    try:
        res = export(args.model, args.params, args.plan, args.out, args.input_shape)
    except (ExportError, OSError) as e:
        print(f"mcutrain export: error: {e}", file=sys.stderr)
        return 2
    what = {"tflite": "float values in the file", "torch": "state_dict values", "json": "parameter values"}
    print(f"wrote {res.out}: {res.changed} {what[res.kind]} changed, everything else as in {args.model}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ins = sub.add_parser("inspect", help="print a model's graph as mcutrain sees it")
    ins.add_argument("model")
    ins.add_argument("--input-shape", type=cli_args.input_shape)
    ins.add_argument("--json", action="store_true", help="print the IR as JSON")
    ins.add_argument("--params", action="store_true", help="with --json: include the parameters")
    ins.set_defaults(func=cmd_inspect)

    pl = sub.add_parser("plan", help="choose what to update under a RAM budget and write a plan file")
    pl.add_argument("model", help="a .tflite or .pt2 file, package.module:factory, or a built-in model name")
    pl.add_argument(
        "--budget", type=cli_args.budget, help="RAM budget, e.g. 256KB or 1.2MB (KB = 1024 bytes)"
    )
    pl.add_argument(
        "--input-shape",
        type=cli_args.input_shape,
        metavar="N,C,H,W",
        help="PyTorch factories without example_input_shape: the input's shape as PyTorch writes it, batch "
        "axis first, e.g. 1,16 for an MLP or 1,3,32,32 for images (the batch size itself is not used)",
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
        type=cli_args.zones,
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
    pl.add_argument(
        "--frozen-precision",
        choices=["fp32", "int8"],
        help="frozen layers' forward: int8 (default for int8 models; a float model is quantized with the "
        "--calib data first, docs/quantization.md) or fp32",
    )
    pl.add_argument(
        "--int8-col-bytes",
        type=cli_args.col_bytes,
        default=S8_COL_BYTES,
        metavar="N|auto",
        help=f"int8 frozen layers: the Cortex-M DSP conv2d's column budget, which sizes its scratch (default "
        f"{S8_COL_BYTES}; 16384 runs KWS's convolutions at 0.94 instructions per MAC instead of 0.99; auto: "
        "the largest that leaves the update unchanged inside --budget, docs/quantization.md)",
    )
    pl.add_argument(
        "--stack-reserve",
        type=cli_args.budget,
        default=STACK_RESERVE_BYTES,
        metavar="BYTES",
        help=f"RAM for the call stack and the board runtime's data (default {STACK_RESERVE_BYTES} B)",
    )
    ap = pl.add_argument_group("the serial-link firmware's RAM in the budget (docs/protocol.md)")
    ap.add_argument(
        "--app", choices=["link"], help="count the link firmware's buffers in the plan's peak RAM"
    )
    ap.add_argument(
        "--val-slots", type=int, metavar="K", help="--app link: K validation samples on the device"
    )
    ap.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        help="--app link: a copy of the training state for CHECKPOINT/ROLLBACK (default: with --val-slots)",
    )
    ap.add_argument("--storage", choices=["semihost"], help="--app link: persist checkpoints")
    ap.add_argument(
        "--replay-slots",
        type=int,
        metavar="K",
        help="--app link: a replay reservoir of K streamed samples (docs/depth.md, 'Time order')",
    )
    ap.add_argument(
        "--replay-steps",
        type=int,
        metavar="N",
        help="--replay-slots: replayed training steps per streamed sample, after one on it (default 1)",
    )
    ap.add_argument(
        "--replay-seed",
        type=lambda v: int(v, 0),
        metavar="S",
        help="--replay-slots: the reservoir's xorshift32 seed, a non-zero uint32 (default 0x2545F491)",
    )
    ap.add_argument(
        "--blend",
        type=float,
        metavar="A",
        help="--app link: INFER BLEND answers A * prediction + (1 - A) * the running mean of the trained-on "
        "targets (regression; docs/depth.md, 'The blend on the device')",
    )
    pl.add_argument("--out", default="plan.json")
    pl.add_argument("--plot", help="write a PNG of memory by category and by layer")
    pl.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    pl.set_defaults(func=cmd_plan)

    ex = sub.add_parser(
        "export", help="write the model in its own format (.tflite, PyTorch state_dict) with pulled weights"
    )
    ex.add_argument("model", help="the model the plan was made for (.tflite, .pt2, package.module:factory)")
    ex.add_argument("--params", required=True, help=".npz written by `mcutrain pull`")
    ex.add_argument("--plan", required=True, help="the plan file the device's firmware was built from")
    ex.add_argument("--out", required=True, help="new.tflite for a .tflite model, new.pt for a PyTorch one")
    ex.add_argument(
        "--input-shape", type=cli_args.input_shape, metavar="N,C,H,W", help="as for plan, batch axis first"
    )
    ex.set_defaults(func=cmd_export)
