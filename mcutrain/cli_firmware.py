"""The board commands of the ``mcutrain`` CLI: ``emit``/``build`` for a board target, ``run`` and ``report``.

``register(subparsers)`` is called by :func:`mcutrain.cli.build_parser` after it has added its own ``emit``
and ``build``: it adds ``run`` and ``report``, adds the board options to ``emit`` (``--selftest``, ``--seed``)
and ``build`` (``--target``, ``--profile``), and routes those two commands here unless the target is
``host`` (``build`` without ``--target`` follows the project: a folder with ``firmware.json`` is a firmware
project), so that ``--target host`` keeps going to the host code in ``cli.py``.

Exit status: 0 on success; 1 when a build, a memory check or a run fails; 2 for a wrong command line or
a project that is not a firmware project; ``run`` returns the firmware's own exit status, 124 on timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT_EXIT = 124


def _err(cmd: str, msg: str, code: int = 1) -> int:
    print(f"mcutrain {cmd}: error: {msg}", file=sys.stderr)
    return code


def _targets_help() -> str:
    from .targets import list_targets

    return ", ".join(n for n in list_targets() if n != "rv32-qemu")


def is_firmware(args: argparse.Namespace) -> bool:
    """Whether a parsed ``emit``/``build`` command is for a board (else it goes to the host code)."""
    target = getattr(args, "target", None)
    if target is not None:
        return target != "host"
    d = getattr(args, "dir", None)
    return d is not None and (Path(d) / "firmware.json").is_file()


# ---- emit ----------------------------------------------------------------------------------------


def cmd_emit(args: argparse.Namespace) -> int:
    from . import api
    from .firmware import SelfTest, emit_firmware
    from .plan import PlanError, UpdatePlan
    from .targets import TargetError, load_target

    try:
        target = load_target(args.target)
    except TargetError as e:
        return _err("emit", str(e), 2)
    plan = UpdatePlan.load(args.plan)
    source = args.model or json.loads(Path(args.plan).read_text()).get("model_source")
    if not source:
        raise PlanError(f"{args.plan} does not say which model it was made for: pass --model")
    graph = api.load(source, args.input_shape)
    plan.validate(graph)
    if args.app == "link" and args.selftest:
        return _err("emit", "--app link and --selftest exclude each other: a firmware is one or the other", 2)
    st = SelfTest.random(graph, plan, args.selftest, args.seed) if args.selftest else None
    link_opts = {"val_slots": args.val_slots, "snapshot": args.snapshot, "storage": args.storage}
    if args.app != "link" and any(v not in (None, 0) for v in link_opts.values()):
        return _err(
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
        return _err("emit", str(e), 2)
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
        print(f"  self-test tolerance: loss {e.tol_loss:.1e}, parameters {e.tol_param:.1e} (relative)")
    if fp.emitted.cluster is not None:  # a PULP target: the L1/L2 plan, step by step (docs/gap9.md)
        print("  " + fp.emitted.cluster.table().replace("\n", "\n  "))
    if m["plan_peak_ram_bytes"] > target.ram.length:
        print(f"  warning: the plan does not fit {target.name}'s RAM: the build will fail", file=sys.stderr)
    print(f"  build it with: mcutrain build {fp.out_dir} --target {target.name}")
    print(f"             or: make -C {fp.out_dir} -f Makefile.{target.name}")
    if args.app == "link":
        print(f"  train it in QEMU with: mcutrain run {fp.out_dir} --stream DATA.npz --monitor")
    return 0


# ---- build ---------------------------------------------------------------------------------------


def _build(cmd: str, args: argparse.Namespace, profile: bool = False) -> Any:
    """A FirmwareBuild, or an int exit status after printing the error."""
    from .crossbuild import BuildError
    from .firmware import FirmwareError, build_firmware
    from .targets import TargetError

    try:
        return build_firmware(args.dir, getattr(args, "target", None), profile=profile)
    except (FirmwareError, BuildError, TargetError) as e:
        return _err(cmd, str(e), 2 if "not a firmware project" in str(e) else 1)


def cmd_build(args: argparse.Namespace) -> int:
    fb = _build("build", args, args.profile)
    if isinstance(fb, int):
        return fb
    print(fb.summary())
    return 0


# ---- run -----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .firmware import FirmwareError, run_firmware

    fb = _build("run", args, args.profile)
    if isinstance(fb, int):
        return fb
    print(fb.summary(), file=sys.stderr)
    if args.stream:
        from .cli_monitor import run_stream

        return run_stream(fb, args)
    if fb.manifest["kind"] == "link":
        return _err("run", f"{args.dir} is a serial-link firmware: give it samples with --stream DATA.npz", 2)
    try:
        r = run_firmware(fb, args.timeout)
    except FirmwareError as e:
        return _err("run", str(e), 2)
    sys.stdout.write(r.run.stdout)
    sys.stdout.flush()
    if r.run.timed_out:
        return _err("run", r.run.message + " (a hang, or raise --timeout)", TIMEOUT_EXIT)
    print(f"mcutrain run: {r.run.message} ({r.outcome})", file=sys.stderr)
    return int(r.exit_code or 0)


# ---- report --------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from .firmware import FirmwareError, profile_table, run_firmware

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
            return _err("report", str(e), 2)
        if r.run.timed_out or r.exit_code != 0:
            sys.stdout.write(r.run.stdout)
            return _err("report", f"{r.run.message} ({r.outcome})")
        runs[profile] = r.report
    print(fb.summary())
    print(format_measurements(fb.manifest, runs[False], profile_table(fb.manifest, runs[True])))
    return 0


def format_measurements(manifest: dict[str, Any], report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The run's numbers and the per-kernel table (benchmarks/firmware_instructions.py prints it too)."""
    from .firmware import is_mac_id

    macs = sum(n for pid, n in manifest["macs"].items() if is_mac_id(pid))
    fw = sum(n for pid, n in manifest["macs"].items() if is_mac_id(pid) and pid.endswith("_fw"))
    step = report["instret_mean"]
    lines = [
        f"  stack  measured (painted) {report['stack_step']:,} B by the training steps, "
        f"{report['stack_all']:,} B with printf, of {report['stack_size']:,} B",
        f"  instructions per training step {step:,} (min {report['instret_min']:,}, max "
        f"{report['instret_max']:,}, resolution {report['instret_resolution']})",
        f"  MACs per step {macs:,} (forward {fw:,}, backward {macs - fw:,}): {step / macs:.2f} instructions "
        f"per MAC",
        "",
        f"  {'kernel':<26} {'calls':>5} {'instructions':>13} {'share':>6} {'MACs/elems':>11} "
        f"{'per MAC/elem':>13}",
    ]
    for r in sorted(rows, key=lambda r: -r["instret"]):
        unit = "MAC" if r["mac"] else "elem"
        per = f"{r['per_work']:.2f}/{unit}" if r["work"] else "-"
        lines.append(
            f"  {r['id']:<26} {r['calls']:>5} {r['instret']:>13,.0f} {r['instret'] / step:>6.1%} "
            f"{r['work']:>11,} {per:>13}"
        )
    return "\n".join(lines)


# ---- registration --------------------------------------------------------------------------------


def _route(host: Callable[[argparse.Namespace], int], board: Callable[[argparse.Namespace], int]):
    def dispatch(args: argparse.Namespace) -> int:
        if is_firmware(args):
            return board(args)
        if getattr(args, "precision", "fp32") != "fp32":  # only the PULP cluster has an FP16 option
            return _err("emit", f"--precision {args.precision} needs --target gap9 or gap9-rv32-qemu", 2)
        return host(args)

    return dispatch


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``report``; extend ``emit`` and ``build`` (already added by cli.py) for boards."""
    boards = _targets_help()
    em = sub.choices.get("emit")
    if em is not None:
        for a in em._actions:
            if a.dest == "target":
                a.help = f"host (a native build for tests and bindings) or a board: {boards}"
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
        em.set_defaults(func=_route(em.get_default("func"), cmd_emit))
    bd = sub.choices.get("build")
    if bd is not None:
        bd.add_argument(
            "--target", help=f"host, or a board ({boards}); default: the one the project was emitted for"
        )
        bd.add_argument("--profile", action="store_true", help="boards: -DMT_PROFILE (per-kernel counts)")
        bd.set_defaults(func=_route(bd.get_default("func"), cmd_build))

    rn = sub.add_parser("run", help="build a firmware project and run it in QEMU; exits with its status")
    rn.add_argument("dir")
    rn.add_argument("--target", help="the board (default: the project's)")
    rn.add_argument("--timeout", type=float, default=60.0, help="seconds before QEMU is killed (default 60)")
    rn.add_argument("--profile", action="store_true", help="run the MT_PROFILE build")
    from .cli_monitor import add_run_stream_options

    add_run_stream_options(rn)
    rn.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "report", help="build, run and measure a firmware project: memory, stack, instructions per kernel"
    )
    rp.add_argument("dir")
    rp.add_argument("--target", help="the board (default: the project's)")
    rp.add_argument("--timeout", type=float, default=120.0)
    rp.set_defaults(func=cmd_report)
