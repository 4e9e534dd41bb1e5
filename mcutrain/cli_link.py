"""The serial-link commands of the ``mcutrain`` CLI: ``stream`` (samples to a training device) and ``pull``
(its trainable parameters back), over any pyserial URL (docs/protocol.md).

``register(subparsers)`` adds both commands. Samples come from a :class:`SampleSource`: an ``.npz`` file
(:class:`NpzSource`) or a plug-in ``--source package.module:factory`` whose factory takes the device's
:class:`~mcutrain.host.Info` and returns a source (e.g. a live sensor).

Exit status: 0 on success; 1 when the link fails (timeout, closed port, refused request); 2 for a wrong
command line or unreadable data.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .host import Block, Info, Link, Sample


@runtime_checkable
class SampleSource(Protocol):
    """Where ``mcutrain stream`` takes samples from: a dataset, a recording or a live sensor.

    ``samples(start)`` yields :class:`Sample` objects whose ``sample_id`` counts up from ``start`` (the
    first sample the device has not applied yet: a restarted stream resumes there). ``total`` is the
    number of samples the source holds, or None for an endless live source.
    """

    @property
    def total(self) -> int | None: ...

    def samples(self, start: int) -> Iterator[Sample]: ...


class NpzSource:
    """Samples from an ``.npz`` file.

    ``x``: inputs ``[N, ...]`` in the model's layout: float (sent as float32), uint8 (sent as bytes,
    value = raw * ``scale`` + ``offset``) or int16 (likewise). Targets: ``y`` (integer class labels, sent
    as LABEL of ``info.target_numel`` classes) or ``target`` (``[N, target numel]`` floats). Optional
    ``mask`` (``[N, target numel]``, 0/1, sent as bits).
    """

    def __init__(self, path: str | Path, info: Info, scale: float = 1.0, offset: float = 0.0) -> None:
        with np.load(path) as d:
            if "x" not in d:
                raise ValueError(f"{path}: no array 'x' (the inputs)")
            self.x = d["x"]
            self.y = d.get("y")
            self.target = d.get("target")
            self.mask = d.get("mask")
        if self.y is None and self.target is None:
            raise ValueError(f"{path}: no targets: give 'y' (class labels) or 'target' (floats)")
        n = len(self.x)
        for name, a in (("y", self.y), ("target", self.target), ("mask", self.mask)):
            if a is not None and len(a) != n:
                raise ValueError(f"{path}: '{name}' has {len(a)} samples, 'x' has {n}")
        per = int(np.prod(self.x.shape[1:]))
        if per != info.input_numel:
            raise ValueError(f"{path}: samples of {per} values, the device's model takes {info.input_numel}")
        self.info, self.scale, self.offset = info, scale, offset

    @property
    def total(self) -> int:
        return len(self.x)

    def sample(self, i: int) -> Sample:
        x = self.x[i]
        if x.dtype == np.uint8:
            xb = Block.u8(x, scale=self.scale, offset=self.offset)
        elif x.dtype == np.int16:
            xb = Block.i16(x, scale=self.scale, offset=self.offset)
        else:
            xb = Block.f32(x)
        if self.y is not None:
            tb = Block.label(int(self.y[i]), self.info.target_numel)
        else:
            assert self.target is not None
            tb = Block.f32(self.target[i])
        mb = Block.none() if self.mask is None else Block.bits(np.asarray(self.mask[i]).ravel() != 0)
        return Sample(xb, tb, mb, sample_id=i)

    def samples(self, start: int) -> Iterator[Sample]:
        for i in range(start, self.total):
            yield self.sample(i)


def load_plugin(spec: str, info: Info) -> SampleSource:
    """``package.module:factory`` -> ``factory(info)``, checked to be a :class:`SampleSource`."""
    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise ValueError(f"--source {spec!r}: expected package.module:factory")
    src = getattr(importlib.import_module(mod), name)(info)
    if not isinstance(src, SampleSource):
        raise ValueError(f"--source {spec}: {type(src).__name__} has no 'total' and 'samples(start)'")
    return src


def _err(cmd: str, msg: str, code: int) -> int:
    print(f"mcutrain {cmd}: error: {msg}", file=sys.stderr)
    return code


def _link(args: argparse.Namespace) -> Link:
    return Link(
        args.port,
        baudrate=args.baud,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        expect_model_hash=args.expect_hash,
    )


def stream(
    link: Link,
    source: SampleSource,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> int:
    """Send the source's samples from the device's next one (SAMPLE + TRAIN each) at most ``rate`` per
    second; returns how many were sent."""
    from tqdm import tqdm

    assert link.info is not None
    start = link.info.next_sample_id
    total = source.total
    todo = None if total is None else max(0, total - start)
    if limit is not None:
        todo = limit if todo is None else min(todo, limit)
    sent = 0
    period = 1.0 / rate if rate else 0.0
    next_t = time.monotonic()
    bar = tqdm(total=todo, initial=0, unit="sample", disable=not progress, dynamic_ncols=True)
    try:
        for s in source.samples(start):
            if todo is not None and sent >= todo:
                break
            if period:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + period, time.monotonic())
            ack = link.sample(s)
            sent += 1
            bar.set_postfix(step=ack.step, loss=f"{ack.loss:.4g}", skipped="yes" if ack.skipped else "no")
            bar.update(1)
    finally:
        bar.close()
    return sent


def cmd_stream(args: argparse.Namespace) -> int:
    from .host import LinkError

    try:
        with _link(args) as link:
            assert link.info is not None
            try:
                if args.source:
                    src: SampleSource = load_plugin(args.source, link.info)
                else:
                    src = NpzSource(args.data, link.info, args.scale, args.offset)
            except (OSError, ValueError, ImportError, AttributeError) as e:
                return _err("stream", str(e), 2)
            start = link.info.next_sample_id
            n = stream(link, src, args.rate, args.limit, progress=not args.quiet)
            st = link.device_stats()
            print(
                f"streamed {n} samples from #{start} to {args.port}: device step {st.step}, "
                f"loss avg {st.loss_avg:.6g}, skipped {st.nonfinite_skips}, last step {st.last_step_instr} "
                f"instructions; link retransmits {link.stats.retransmits}"
            )
    except LinkError as e:
        return _err("stream", str(e), 1)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from .host import LinkError

    try:
        with _link(args) as link:
            assert link.info is not None
            params = link.get_params()
            info = link.info
            st = link.device_stats()
    except LinkError as e:
        return _err("pull", str(e), 1)
    out = Path(args.out)
    np.savez(
        out,
        params=params,
        model_hash=np.array(info.model_hash),
        board=np.array(info.board),
        plan=np.array(info.plan),
        step=np.array(st.step),
    )
    print(
        f"pulled {params.size} trainable parameters (step {st.step}, model {info.model_hash[:12]}) to {out}"
    )
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="pyserial URL: /dev/ttyACM0, socket://127.0.0.1:PORT, ...")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=2.0, help="first wait for a reply, seconds (default 2)")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to (re)open the port")
    p.add_argument("--expect-hash", help="refuse a device whose model hash does not start with this")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stream`` and ``pull``."""
    st = sub.add_parser("stream", help="stream samples to a device that trains over the serial link")
    _common(st)
    src = st.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help=".npz with x and y (labels) or target (floats), optional mask")
    src.add_argument("--source", help="plug-in sample source: package.module:factory (called with the INFO)")
    st.add_argument("--rate", type=float, help="at most this many samples per second")
    st.add_argument("--limit", type=int, help="send at most this many samples")
    st.add_argument("--scale", type=float, default=1.0, help="uint8/int16 inputs: raw * scale + offset")
    st.add_argument("--offset", type=float, default=0.0)
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.set_defaults(func=cmd_stream)

    pl = sub.add_parser("pull", help="read the trainable parameters of a device into an .npz")
    _common(pl)
    pl.add_argument("--out", required=True, help="output .npz (array 'params', plus model_hash, step)")
    pl.set_defaults(func=cmd_pull)
