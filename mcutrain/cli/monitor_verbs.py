"""Watching training from the command line (docs/monitor.md).

- ``--monitor [--log-dir DIR]`` options of ``mcutrain stream`` and ``mcutrain run FW_DIR --stream DATA``
  (:func:`add_monitor_options`, :func:`monitor_from_args`): a :class:`~mcutrain.host.monitor.Monitor`
  fed with every ACK of the stream;
- ``mcutrain run FW_DIR --stream DATA`` (:func:`run_stream`): the serial-link firmware in QEMU on a TCP
  serial port, the samples streamed, the parameters pulled, QEMU ended by RESET(EXIT);
- ``mcutrain monitor --port URL`` (:func:`cmd_monitor`): polls STATS of a device that trains without
  this host (queries only: it never moves the device's sequence numbers or resume point).

Exit status as in :mod:`mcutrain.cli.link_verbs`: 0 success, 1 link failure, 2 wrong command line or data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mcutrain.cli.args import fail
from mcutrain.host import Info, Link, LinkError
from mcutrain.host.monitor import HeldOut, Monitor
from mcutrain.host.monitor_views import make_view
from mcutrain.host.samples import NpzSource, save_params, stream


def add_monitor_options(p: argparse.ArgumentParser) -> None:
    """The options that make a stream watched."""
    g = p.add_argument_group("monitor")
    g.add_argument("--monitor", action="store_true", help="live view of the training (plain lines off a TTY)")
    g.add_argument("--log-dir", help="log every step to DIR/steps.csv, TensorBoard events and curves.png")
    g.add_argument(
        "--stats-every", type=int, default=10, metavar="N", help="ask for STATS every N steps (default 10)"
    )
    g.add_argument("--held-out", metavar="NPZ", help="samples to evaluate (not train on) while streaming")
    g.add_argument("--held-out-count", type=int, default=16, metavar="K", help="use the first K (default 16)")
    g.add_argument(
        "--eval-every", type=int, default=50, metavar="N", help="evaluate them every N steps (default 50)"
    )
    g.add_argument(
        "--view-every", type=float, metavar="S", help="seconds between view updates (0.2; 5 off a TTY)"
    )


def monitor_from_args(args: argparse.Namespace, info: Info) -> Monitor | None:
    """The Monitor the options ask for (started), or None; ValueError for unusable held-out data."""
    if not args.monitor and not args.log_dir:
        return None
    held = None
    if args.held_out:
        src = NpzSource(args.held_out, info, args.scale, args.offset)
        held = HeldOut([src.sample(i) for i in range(min(args.held_out_count, src.total))], args.eval_every)
    view = make_view(every_s=args.view_every) if args.monitor else None
    mon = Monitor(args.log_dir, view, stats_every=args.stats_every, held_out=held)
    mon.start(info)
    return mon


# ---- mcutrain run FW_DIR --stream DATA -----------------------------------------------------------


def add_run_stream_options(p: argparse.ArgumentParser) -> None:
    """``run``'s options for the serial-link firmware."""
    g = p.add_argument_group("serial-link firmware (emit --app link)")
    g.add_argument("--stream", metavar="DATA", help=".npz of samples to stream (see mcutrain stream --data)")
    g.add_argument("--out", help="write the pulled parameters here (default: DIR/params.npz)")
    g.add_argument("--rate", type=float, help="at most this many samples per second")
    g.add_argument("--limit", type=int, help="stream at most this many samples")
    g.add_argument("--scale", type=float, default=1.0, help="uint8/int16 inputs: raw * scale + offset")
    g.add_argument("--offset", type=float, default=0.0)
    g.add_argument("--link-timeout", type=float, default=5.0, help="first wait for a reply, seconds")
    add_monitor_options(p)


def run_stream(fb: Any, args: argparse.Namespace) -> int:
    """Start the link firmware of build ``fb`` in QEMU, stream ``args.stream``, pull the parameters, end
    QEMU with RESET(EXIT); returns the exit status."""
    from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port

    if fb.manifest["kind"] != "link":
        return fail(
            "run",
            f"{fb.project} holds a {fb.manifest['kind']} firmware; --stream needs the serial-link firmware: "
            f"mcutrain emit PLAN --target {fb.target.name} --app link --out DIR",
            2,
        )
    if not fb.target.runs_in_qemu:
        return fail(
            "run",
            f"{fb.target.name} runs on hardware only: flash {fb.elf}, then mcutrain stream --port DEVICE "
            f"--data {args.stream} --monitor",
            2,
        )
    if not Path(args.stream).is_file():
        return fail("run", f"--stream {args.stream}: no such file", 2)
    out = Path(args.out) if args.out else Path(fb.project) / "params.npz"
    port = SerialTcp(free_tcp_port())
    with QemuProcess(fb.target, fb.elf, icount=True, serial=port) as q:
        try:
            with Link(
                port.url,
                timeout=args.link_timeout,
                connect_timeout=20.0,
                expect_model_hash=fb.manifest["model_hash"],
            ) as link:
                assert link.info is not None
                try:
                    src = NpzSource(args.stream, link.info, args.scale, args.offset)
                    mon = monitor_from_args(args, link.info)
                except (OSError, ValueError) as e:
                    link.exit_firmware()
                    return fail("run", str(e), 2)
                try:
                    n = stream(link, src, args.rate, args.limit, progress=not args.monitor, monitor=mon)
                finally:
                    plot = mon.close() if mon is not None else None
                st = link.device_stats()
                params = link.get_params()
                info = link.info
                link.exit_firmware()
        except LinkError as e:
            return fail("run", f"{e} (QEMU: {q.cmd[0]} on {port.url})", 1)
        r = q.wait(timeout_s=args.timeout)
    save_params(out, params, info, st.step)
    print(
        f"streamed {n} samples into {info.board} (QEMU): step {st.step}, loss avg {st.loss_avg:.6g}, "
        f"{st.last_step_instr:,} instructions in the last step; parameters ({params.size}) in {out}"
    )
    if plot is not None:
        print(f"logs and curves in {plot.parent}/")
    if r.timed_out:
        return fail("run", r.message + " after RESET(EXIT)", 124)
    return int(r.exit_code or 0)


# ---- mcutrain monitor --port URL -----------------------------------------------------------------


def cmd_monitor(args: argparse.Namespace) -> int:
    from mcutrain.cli.link_verbs import open_link

    if args.interval <= 0:
        return fail("monitor", "--interval must be > 0 seconds", 2)
    mon = Monitor(args.log_dir, make_view(every_s=args.view_every), stats_every=0)
    polls = 0
    try:
        with open_link(args) as link:
            assert link.info is not None
            mon.start(link.info)
            while True:
                st = link.device_stats()
                mon.on_stats(st)
                polls += 1
                if (args.polls and polls >= args.polls) or (args.until_step and st.step >= args.until_step):
                    break
                time.sleep(args.interval)
    except LinkError as e:
        return fail("monitor", str(e), 1)
    except KeyboardInterrupt:
        pass
    finally:
        plot = mon.close()
    where = f", curves in {plot}" if plot else ""
    print(f"monitor: {polls} polls, {len(mon.records)} steps logged{where}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``monitor``."""
    from mcutrain.cli.link_verbs import add_port_options

    m = sub.add_parser(
        "monitor",
        help="watch a device that trains (polls STATS; the feeding host can watch with stream --monitor)",
    )
    add_port_options(m)
    m.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    m.add_argument("--polls", type=int, help="stop after this many polls (default: Ctrl-C)")
    m.add_argument("--until-step", type=int, help="stop once the device reached this step")
    m.add_argument("--log-dir", help="log to DIR/steps.csv, TensorBoard events and curves.png")
    m.add_argument("--view-every", type=float, metavar="S", help="seconds between view updates")
    m.set_defaults(func=cmd_monitor)
