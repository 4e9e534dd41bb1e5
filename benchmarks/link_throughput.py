"""Serial-link throughput in QEMU: payload bytes/s of image-sized samples against the raw rate of the same
serial path, for the link firmware of two trivial models (so that the link, not training, is measured).

Per model and serial variant, in one QEMU run, ROUNDS rounds side by side (the UART's pace in QEMU
follows the host's scheduling, so rates drift with the machine's load; ratios within a round do not):

- raw: on the link's own port, a delimiter, as many bytes of non-zero noise as the round's sample frames
  take (the device's receiver reads every byte and drops them as one oversize frame), a delimiter, then
  a HELLO; the time until INFO arrives gives the raw host-to-device byte rate of the same UART path;
- store: SAMPLEs without TRAIN (decoded and stored, no training step): the protocol's rate, stop-and-wait
  turnarounds included;
- train: SAMPLE + TRAIN on the trivial model (one small step each);
- one STATS round trip (20 bytes out, 80 back): the stop-and-wait turnaround.

Efficiency = payload bytes/s (tensor data only) / raw bytes/s. Serial variants: QEMU's TCP serial port
with Nagle's algorithm on QEMU's side (``SerialTcp(port)``), and with ``nodelay=on``
(``SerialTcp(port, nodelay=True)``: the device's byte-at-a-time replies are not held back waiting for the
host's delayed ACK).

    .venv/bin/python benchmarks/link_throughput.py [--samples 2] [--rounds 24]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import serial
import torch
from torch import nn

from mcutrain import api
from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.frontends.torch import load_module
from mcutrain.host import Block, Link, Sample
from mcutrain.host.framing import wire_size
from mcutrain.host.sample_encoding import sample_frame_size
from mcutrain.train.update_plan import LossConfig, LossKind, OptimizerConfig, UpdatePlan

BOARD = "mps2-an386"


@dataclass(frozen=True)
class Case:
    name: str
    module: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    loss: LossConfig
    sample: Callable[[np.random.Generator, int], Sample]


def _cifar_model() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))


def _cifar_sample(rng: np.random.Generator, i: int) -> Sample:
    img = rng.integers(0, 256, 3 * 32 * 32).astype(np.uint8)
    return Sample(Block.u8(img), Block.label(int(rng.integers(10)), 10), sample_id=i)


def _depth_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 1, 1), nn.AvgPool2d((8, 10)), nn.Flatten())


def _depth_sample(rng: np.random.Generator, i: int) -> Sample:
    img = rng.integers(0, 256, 64 * 80).astype(np.uint8)
    zones = rng.integers(200, 4000, 64).astype(np.int16)
    return Sample(Block.u8(img), Block.i16(zones, scale=1e-3), Block.bits(rng.random(64) < 0.9), sample_id=i)


CASES = [
    Case("CIFAR 32x32x3 u8 + label", _cifar_model, (3, 32, 32), LossConfig(LossKind.XENT), _cifar_sample),
    Case(
        "depth 64x80 u8 + 64 i16 zones + mask",
        _depth_model,
        (1, 64, 80),
        LossConfig(LossKind.MSE, masked=True),
        _depth_sample,
    ),
]


def build(case: Case, out: Path) -> FirmwareBuild:
    torch.manual_seed(0)
    g = load_module(case.module().eval(), torch.zeros(1, *case.input_shape), name="probe")
    opt = OptimizerConfig(lr=1e-3)
    plan: UpdatePlan = api.plan(g, None, "full", optimizer=opt, loss=case.loss).plan
    return build_firmware(emit_firmware(g, plan, out, BOARD, app="link").out_dir)


def open_port(url: str) -> serial.Serial:
    end = time.monotonic() + 20
    while True:  # QEMU opens its port a moment after it starts
        try:
            return serial.serial_for_url(url, timeout=0.05)
        except serial.SerialException:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def raw_rate(port: serial.Serial, link: Link, nbytes: int) -> float:
    """Bytes/s of the host-to-device path: noise that the device must read, then a HELLO round trip
    (the device answers the noise with ERROR OVERSIZE, the HELLO with INFO)."""
    noise = np.random.default_rng(nbytes).integers(1, 256, nbytes).astype(np.uint8).tobytes()
    t0 = time.monotonic()
    port.write(b"\x00" + noise + b"\x00")
    port.flush()
    link.hello()
    return (len(noise) + 2) / (time.monotonic() - t0)


def stream_rate(link: Link, samples: list[Sample], train: bool) -> tuple[float, float]:
    """(payload bytes/s, wire bytes/s host to device) of SAMPLEs sent one after the other."""
    out0 = link.stats.bytes_out
    t0 = time.monotonic()
    for s in samples:
        link.sample(s, train=train)
    dt = time.monotonic() - t0
    payload = sum(s.data_bytes() for s in samples)
    return payload / dt, (link.stats.bytes_out - out0) / dt


def measure(fb: FirmwareBuild, nodelay: bool, samples: list[Sample], rounds: int) -> list[tuple]:
    """Per round, side by side on one connection: (raw B/s, store-only payload B/s, its wire B/s,
    with-TRAIN payload B/s, seconds of one STATS round trip)."""
    m = len(samples) // (2 * rounds)
    wire = sum(wire_size(sample_frame_size(s)) for s in samples[:m])
    out = []
    tcp = SerialTcp(free_tcp_port(), nodelay=nodelay)
    with QemuProcess(fb.target, fb.elf, icount=True, serial=tcp) as q:
        port = open_port(tcp.url)
        with Link(port, timeout=5.0) as link:
            for r in range(rounds):
                raw = raw_rate(port, link, wire)
                part = samples[2 * r * m : 2 * (r + 1) * m]
                store, store_wire = stream_rate(link, part[:m], train=False)
                train, _ = stream_rate(link, part[m:], train=True)
                t0 = time.monotonic()
                link.device_stats()
                out.append((raw, store, store_wire, train, time.monotonic() - t0))
            link.exit_firmware()
        q.wait(timeout_s=30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2, help="samples per mode and round (default 2)")
    ap.add_argument("--rounds", type=int, default=24, help="rounds of raw / store / train (default 24)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(CASES):
            fb = build(case, Path(tmp) / f"fw{k}")
            rng = np.random.default_rng(k)
            samples = [case.sample(rng, i) for i in range(2 * args.samples * args.rounds)]
            data, wire = samples[0].data_bytes(), wire_size(sample_frame_size(samples[0]))
            for nodelay in (False, True):
                per = np.array(measure(fb, nodelay, samples, args.rounds))
                med = np.median(per, axis=0)
                eff = per[:, 1] / per[:, 0]
                eff_train = per[:, 3] / per[:, 0]
                rows.append((case.name, data, wire, nodelay, med, eff, eff_train))
    print(
        f"serial-link throughput in QEMU ({BOARD}, -icount shift=0): {args.rounds} rounds of raw noise / "
        f"{args.samples} SAMPLEs without TRAIN / {args.samples} with TRAIN, side by side; medians "
        f"(efficiency: median, min-max of the per-round ratios); host {os.uname().nodename}"
    )
    print()
    print(
        "| sample | data B | wire B/frame | QEMU serial | raw B/s | payload B/s, store only (wire) | "
        "efficiency | payload B/s with TRAIN | efficiency | STATS round trip |"
    )
    print("|" + "---|" * 10)
    for name, data, wire, nodelay, med, eff, eff_train in rows:
        kind = "tcp, nodelay=on" if nodelay else "tcp, Nagle on"
        print(
            f"| {name} | {data} | {wire} | {kind} | {med[0]:,.0f} | {med[1]:,.0f} ({med[2]:,.0f}) | "
            f"{np.median(eff):.1%} ({eff.min():.0%}-{eff.max():.0%}) | {med[3]:,.0f} | "
            f"{np.median(eff_train):.1%} ({eff_train.min():.0%}-{eff_train.max():.0%}) | "
            f"{med[4] * 1e3:.1f} ms |"
        )


if __name__ == "__main__":
    main()
