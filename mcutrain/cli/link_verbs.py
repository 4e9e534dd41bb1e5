"""The serial-link verbs: ``stream`` (samples to a training device) and ``pull`` (its trainable parameters
back), over any pyserial URL (docs/protocol.md). Samples come from a
:class:`~mcutrain.host.samples.SampleSource`: an ``.npz`` file or a plug-in ``--source
package.module:factory`` whose factory takes the device's :class:`~mcutrain.host.Info` (e.g. a live sensor).

Exit status: 0 on success; 1 when the link fails (timeout, closed port, refused request); 2 for a wrong
command line or unreadable data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcutrain.cli.args import fail
from mcutrain.host import Link
from mcutrain.host.samples import NpzSource, SampleSource, checkpoint_setup, load_plugin, save_params, stream


def open_link(args: argparse.Namespace) -> Link:
    return Link(
        args.port,
        baudrate=args.baud,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        expect_model_hash=args.expect_hash,
    )


def add_port_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="pyserial URL: /dev/ttyACM0, socket://127.0.0.1:PORT, ...")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=2.0, help="first wait for a reply, seconds (default 2)")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to (re)open the port")
    p.add_argument("--expect-hash", help="refuse a device whose model hash does not start with this")


def cmd_stream(args: argparse.Namespace) -> int:
    from mcutrain.cli.monitor_verbs import monitor_from_args
    from mcutrain.host import LinkError

    try:
        with open_link(args) as link:
            assert link.info is not None
            try:
                if args.source:
                    src: SampleSource = load_plugin(args.source, link.info)
                else:
                    src = NpzSource(args.data, link.info, args.scale, args.offset)
                mon = monitor_from_args(args, link.info)
                ckpt = checkpoint_setup(link, src, args.val, args.checkpoint_every, args.persist)
            except (OSError, ValueError, ImportError, AttributeError) as e:
                return fail("stream", str(e), 2)
            start = link.info.next_sample_id
            try:
                n = stream(link, src, args.rate, args.limit, not (args.quiet or args.monitor), mon, ckpt)
                if ckpt is not None:
                    ckpt.finish(link, n)
            finally:
                if mon is not None:
                    mon.close()
            if ckpt is not None:
                print(ckpt.tally.summary())
            st = link.device_stats()
            print(
                f"streamed {n} samples from #{start} to {args.port}: device step {st.step}, "
                f"loss avg {st.loss_avg:.6g}, skipped {st.nonfinite_skips}, last step {st.last_step_instr} "
                f"instructions; link retransmits {link.stats.retransmits}"
            )
    except LinkError as e:
        return fail("stream", str(e), 1)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from mcutrain.host import LinkError

    try:
        with open_link(args) as link:
            assert link.info is not None
            params = link.get_params()
            info = link.info
            st = link.device_stats()
    except LinkError as e:
        return fail("pull", str(e), 1)
    out = Path(args.out)
    save_params(out, params, info, st.step)
    print(
        f"pulled {params.size} trainable parameters (step {st.step}, model {info.model_hash[:12]}) to {out}"
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from mcutrain.cli.monitor_verbs import add_monitor_options

    st = sub.add_parser("stream", help="stream samples to a device that trains over the serial link")
    add_port_options(st)
    src = st.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help=".npz with x and y (labels) or target (floats), optional mask")
    src.add_argument("--source", help="plug-in sample source: package.module:factory (called with the INFO)")
    st.add_argument("--rate", type=float, help="at most this many samples per second")
    st.add_argument("--limit", type=int, help="send at most this many samples")
    st.add_argument("--scale", type=float, default=1.0, help="uint8/int16 inputs: raw * scale + offset")
    st.add_argument("--offset", type=float, default=0.0)
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.add_argument("--val", type=int, default=0, help="send the first N samples to the validation slots")
    st.add_argument(
        "--checkpoint-every", type=int, default=0, help="accept-if-better after every M trained samples"
    )
    st.add_argument("--persist", action="store_true", help="write kept checkpoints to the device's storage")
    add_monitor_options(st)
    st.set_defaults(func=cmd_stream)

    pl = sub.add_parser("pull", help="read the trainable parameters of a device into an .npz")
    add_port_options(pl)
    pl.add_argument("--out", required=True, help="output .npz (array 'params', plus model_hash, step)")
    pl.set_defaults(func=cmd_pull)
