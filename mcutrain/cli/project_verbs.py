"""Verbs on a C project: ``emit`` (the plan's C project, for the host or a board), ``build``, ``run`` (QEMU)
and ``report`` (instructions per training step and per kernel).

``emit`` and ``build`` dispatch on the target: ``--target host`` (the default of ``emit``) is a native
build for tests and bindings (``libmt.so``); a board name gives a firmware project (``firmware.json``),
cross-built with the board's flags. ``build`` without ``--target`` follows the project.

Exit status: 0 on success; 1 when a build, a memory check or a run fails; 2 for a wrong command line or
a project that is not a firmware project; ``run`` returns the firmware's own exit status, 124 on timeout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mcutrain.cli import args as cli_args
from mcutrain.cli.args import fail

TIMEOUT_EXIT = 124
#: emit options that only a firmware project has
BOARD_ONLY_EMIT = ("selftest", "app", "val_slots", "snapshot", "storage")


def is_firmware(args: argparse.Namespace) -> bool:
    """Whether a parsed ``emit``/``build`` command is for a board (else it is for the host)."""
    target = getattr(args, "target", None)
    if target is not None:
        return target != "host"
    d = getattr(args, "dir", None)
    return d is not None and (Path(d) / "firmware.json").is_file()


def _plan_and_graph(args: argparse.Namespace) -> tuple[Any, Any]:
    """The plan file's plan and its model, loaded as the file records (or from ``--model`` /
    ``--input-shape``), after checking that the memory re-derived now is the file's."""
    from mcutrain import api
    from mcutrain.train.memory import analyze
    from mcutrain.train.plan_file import check_memory, read_plan
    from mcutrain.train.update_plan import PlanError

    pf = read_plan(args.plan)
    source = args.model or pf.model_source
    if not source:
        raise PlanError(f"{args.plan} does not say which model it was made for: pass --model")
    shape = args.input_shape if args.model else args.input_shape or pf.input_shape
    graph = api.load(source, shape)
    if pf.ptq:  # the float model quantized as it was at plan time (the same data gives the same graph)
        graph = api.quantize(graph, api.load_calibration(pf.ptq["calib"], graph, pf.plan.loss).x)
    pf.plan.validate(graph)
    check_memory(pf, analyze(graph, pf.plan))
    return pf.plan, graph


# ---- emit ----------------------------------------------------------------------------------------


def cmd_emit(args: argparse.Namespace) -> int:
    if args.target != "host":
        return _emit_firmware(args)
    if args.precision != "fp32":  # only the PULP cluster has an FP16 option
        return fail("emit", f"--precision {args.precision} needs --target gap9 or gap9-rv32-qemu", 2)
    board_only = [
        f"--{k.replace('_', '-')}" for k in BOARD_ONLY_EMIT if getattr(args, k, None) not in (None, 0)
    ]
    if board_only:
        opts = ", ".join(board_only)
        return fail("emit", f"{opts}: firmware options, for a board target (--target BOARD)", 2)
    from mcutrain.core.units import format_bytes
    from mcutrain.emit.model_c import emit

    plan, graph = _plan_and_graph(args)
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


# ---- emit ----------------------------------------------------------------------------------------


def _emit_firmware(args: argparse.Namespace) -> int:
    from mcutrain.boards.targets import TargetError, load_target
    from mcutrain.emit.firmware_project import emit_firmware
    from mcutrain.emit.selftest import SelfTest
    from mcutrain.train.update_plan import PlanError

    try:
        target = load_target(args.target)
    except TargetError as e:
        return fail("emit", str(e), 2)
    plan, graph = _plan_and_graph(args)
    if args.app == "link" and args.selftest:
        return fail("emit", "--app link and --selftest exclude each other: a firmware is one or the other", 2)
    st = SelfTest.random(graph, plan, args.selftest, args.seed) if args.selftest else None
    link_opts = {"val_slots": args.val_slots, "snapshot": args.snapshot, "storage": args.storage}
    if args.app != "link" and any(v not in (None, 0) for v in link_opts.values()):
        return fail(
            "emit", "--val-slots, --snapshot and --storage belong to the link firmware: add --app link", 2
        )
    try:
        fp = emit_firmware(
            graph,
            plan,
            args.out,
            target,
            st,
            app=args.app,
            precision=getattr(args, "precision", "fp32"),
            **{k: v for k, v in link_opts.items() if v is not None},
        )
    except PlanError as e:
        return fail("emit", str(e), 2)
    m = fp.manifest
    kind = f"self-test firmware ({args.selftest} steps)" if st else "footprint firmware"
    if args.app == "link":
        kind = f"serial-link firmware ({m['link_ram_bytes']:,} B of RAM for the link)"
    print(f"emitted {kind} of {graph.name} ({plan.strategy} plan) for {target.name} into {fp.out_dir}/")
    print(
        f"  plan peak RAM {m['plan_peak_ram_bytes']:,} B (board: {target.ram.length:,} B), arena "
        f"{m['arena_bytes']:,} B, stack region {m['stack_region_bytes']:,} B"
    )
    if fp.expected is not None:
        e = fp.expected
        print(
            f"  self-test tolerance (relative): losses {e.tol_losses.min():.1e}..{e.tol_loss:.1e} (each "
            f"step's round-off bound), parameters {e.tol_param:.1e}"
        )
    if fp.emitted.cluster is not None:  # a PULP target: the L1/L2 plan, step by step (docs/gap9.md)
        print("  " + fp.emitted.cluster.table().replace("\n", "\n  "))
    if m["plan_peak_ram_bytes"] > target.ram.length:
        print(f"  warning: the plan does not fit {target.name}'s RAM: the build will fail", file=sys.stderr)
    print(f"  build it with: mcutrain build {fp.out_dir} --target {target.name}")
    print(f"             or: make -C {fp.out_dir} -f Makefile.{target.name}")
    if args.app == "link":
        print(f"  train it in QEMU with: mcutrain run {fp.out_dir} --stream DATA.npz --monitor")
    return 0


# ---- build ---


# ---- build ---------------------------------------------------------------------------------------


def _build(cmd: str, args: argparse.Namespace, profile: bool = False) -> Any:
    """A FirmwareBuild, or an int exit status after printing the error."""
    from mcutrain.boards.cross_build import BuildError
    from mcutrain.boards.targets import TargetError
    from mcutrain.emit.firmware_build import build_firmware
    from mcutrain.emit.firmware_project import FirmwareError

    try:
        return build_firmware(args.dir, getattr(args, "target", None), profile=profile)
    except (FirmwareError, BuildError, TargetError) as e:
        return fail(cmd, str(e), 2 if "not a firmware project" in str(e) else 1)


def cmd_build(args: argparse.Namespace) -> int:
    if is_firmware(args):
        fb = _build("build", args, args.profile)
        if isinstance(fb, int):
            return fb
        print(fb.summary())
        return 0
    from mcutrain.emit.host_build import BuildError, build_host

    if not (Path(args.dir) / "mt_model.c").exists():
        return fail("build", f"{args.dir} is not a generated project (run `mcutrain emit` first)", 2)
    try:
        build_host(args.dir, "all")
        if args.fast:  # the vectorized conv2d kernels, -O3 -march=native (docs/kernels.md)
            build_host(args.dir, "libmt_fast.so")
    except BuildError as e:
        return fail("build", str(e), 1)
    for name in ("libmt.so", "mt_train_host", "libmt_fast.so"):
        p = Path(args.dir) / name
        if p.exists():
            print(f"built {p} ({p.stat().st_size:,} bytes)")
    return 0


# ---- run -----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from mcutrain.emit.firmware_project import FirmwareError
    from mcutrain.emit.firmware_run import run_firmware

    fb = _build("run", args, args.profile)
    if isinstance(fb, int):
        return fb
    print(fb.summary(), file=sys.stderr)
    if args.stream:
        from mcutrain.cli.monitor_verbs import run_stream

        return run_stream(fb, args)
    if fb.manifest["kind"] == "link":
        return fail("run", f"{args.dir} is a serial-link firmware: give it samples with --stream DATA.npz", 2)
    try:
        r = run_firmware(fb, args.timeout)
    except FirmwareError as e:
        return fail("run", str(e), 2)
    sys.stdout.write(r.run.stdout)
    sys.stdout.flush()
    if r.run.timed_out:
        return fail("run", r.run.message + " (a hang, or raise --timeout)", TIMEOUT_EXIT)
    print(f"mcutrain run: {r.run.message} ({r.outcome})", file=sys.stderr)
    return int(r.exit_code or 0)


# ---- report --------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from mcutrain.emit.firmware_project import FirmwareError
    from mcutrain.emit.firmware_run import format_measurements, profile_table, run_firmware

    fb = _build("report", args)
    if isinstance(fb, int):
        return fb
    runs = {}
    for profile in (False, True):
        b = fb if not profile else _build("report", args, True)
        if isinstance(b, int):
            return b
        try:
            r = run_firmware(b, args.timeout)
        except FirmwareError as e:
            return fail("report", str(e), 2)
        if r.run.timed_out or r.exit_code != 0:
            sys.stdout.write(r.run.stdout)
            return fail("report", f"{r.run.message} ({r.outcome})")
        runs[profile] = r.report
    print(fb.summary())
    print(format_measurements(fb.manifest, runs[False], profile_table(fb.manifest, runs[True])))
    return 0


# ---- parsers -------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from mcutrain.boards.targets import list_targets
    from mcutrain.cli.monitor_verbs import add_run_stream_options

    boards = ", ".join(n for n in list_targets() if n != "rv32-qemu")
    em = sub.add_parser("emit", help="generate the C project of a plan (host, or a board's firmware)")
    em.add_argument("plan", help="plan file written by `mcutrain plan`")
    em.add_argument(
        "--target", default="host", help=f"host (a native build for tests and bindings) or a board: {boards}"
    )
    em.add_argument("--model", help="the model, if not the one recorded in the plan file")
    em.add_argument("--input-shape", type=cli_args.input_shape)
    em.add_argument("--out", required=True, help="project folder to write")
    em.add_argument(
        "--selftest",
        type=int,
        metavar="N",
        help="board targets: a self-test firmware that trains N steps on embedded samples and compares "
        "with the simulator (default: a footprint firmware)",
    )
    em.add_argument("--seed", type=int, default=0, help="seed of the self-test's random samples")
    em.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="gap9 targets: operands of the cluster's conv/linear tiles in L1 (fp16: binary16, float32 "
        "sums and master weights; docs/gap9.md)",
    )
    em.add_argument(
        "--app",
        choices=["link"],
        help="board targets: link = the serial-link firmware that trains on streamed samples "
        "(docs/protocol.md; run it with mcutrain run DIR --stream DATA)",
    )
    em.add_argument(
        "--val-slots",
        type=int,
        metavar="K",
        help="--app link: K validation samples kept on the device (EVAL, CHECKPOINT accept-if-better)",
    )
    em.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        help="--app link: keep a copy of the training state for CHECKPOINT/ROLLBACK (its RAM is counted; "
        "default: on when there are validation slots or storage)",
    )
    em.add_argument(
        "--storage",
        choices=["semihost"],
        help="--app link: persist checkpoints (QEMU: a semihosting file for flash, two slots)",
    )
    em.set_defaults(func=cmd_emit)

    bd = sub.add_parser("build", help="build a generated project (host: shared library and driver; boards)")
    bd.add_argument("dir")
    bd.add_argument(
        "--target", help=f"host, or a board ({boards}); default: the one the project was emitted for"
    )
    bd.add_argument(
        "--fast",
        action="store_true",
        help="host: also libmt_fast.so, the step with vectorized conv2d kernels for this CPU (-march=native)",
    )
    bd.add_argument("--profile", action="store_true", help="boards: -DMT_PROFILE (per-kernel counts)")
    bd.set_defaults(func=cmd_build)

    rn = sub.add_parser("run", help="build a firmware project and run it in QEMU; exits with its status")
    rn.add_argument("dir")
    rn.add_argument("--target", help="the board (default: the project's)")
    rn.add_argument("--timeout", type=float, default=60.0, help="seconds before QEMU is killed (default 60)")
    rn.add_argument("--profile", action="store_true", help="run the MT_PROFILE build")
    add_run_stream_options(rn)
    rn.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "report", help="build, run and measure a firmware project: memory, stack, instructions per kernel"
    )
    rp.add_argument("dir")
    rp.add_argument("--target", help="the board (default: the project's)")
    rp.add_argument("--timeout", type=float, default=120.0)
    rp.set_defaults(func=cmd_report)
