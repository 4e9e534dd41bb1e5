"""The ``demo`` verb: the end-to-end demos on built-in data (depth, hand postures, shifted CIFAR-10)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mcutrain.cli import args as cli_args


def cmd_demo(args: argparse.Namespace) -> int:
    from mcutrain.demos.depth import DepthDemoConfig, run

    if args.case == "handposture":
        from mcutrain.demos import handposture

        args.budget = cli_args.demo_budget(args.budget or "16KB")
        args.epochs = args.epochs or 5
        args.order = args.order or "shuffled"
        if args.order == "both":
            raise SystemExit("mcutrain demo handposture: --order shuffled or recorded")
        return _write(handposture.main(args), args.json)
    if args.case == "cifar-shift":
        from mcutrain.demos import cifar as demo_cifar

        args.budget = cli_args.demo_budget(args.budget or ("full" if args.strategy == "full" else "256KB"))
        return _write(demo_cifar.main(args), args.json)
    if args.case != "depth":
        raise SystemExit(f"mcutrain demo: unknown case {args.case!r} (available: depth, handposture, ...)")
    if bool(args.train_flights) != bool(args.test_flights):
        raise SystemExit("mcutrain demo: give both --train-flights and --test-flights, or neither")
    if args.train_flights:  # real flights: baselines, adapted model per type (--qemu: on the device too)
        return _depth_flights(args)
    cfg = DepthDemoConfig(out=Path(args.out or "out/demo-depth"), quick=args.quick, lr=args.lr or 3e-4)
    if args.quick:
        cfg.stream, cfg.test = 24, 24
    if args.samples:
        cfg.stream = args.samples
    return _write(run(cfg), args.json)


def _write(result: dict[str, Any], path: str | None) -> int:
    """The demo's results as JSON at ``path`` (``--json``), if given."""
    if path:
        Path(path).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def _depth_flights(args: argparse.Namespace) -> int:
    from mcutrain.demos.depth_flights import FlightsConfig, run

    orders = {"recorded": ("time",), "shuffled": ("shuffle",), "both": ("time", "shuffle")}
    cfg = FlightsConfig(
        train_flights=args.train_flights,
        test_flights=args.test_flights,
        data=Path(args.data) if args.data else None,
        orders=orders[args.order or "recorded"],
        out=Path(args.out or "out/demo-depth-flights"),
    )
    if args.lr:
        cfg.lr = args.lr
    if args.budget:
        cfg.budget = cli_args.demo_budget(args.budget, full=False)
    if args.every:
        cfg.every = cfg.test_every = args.every
    if args.replay_slots is not None:
        cfg.slots = args.replay_slots
    cfg.blend = args.blend
    cfg.blanked = not args.no_blanked
    cfg.qemu = args.qemu
    if args.quick:  # a small slice for tests: every 16th frame, a small reservoir, no GAP9 emission
        cfg.every = cfg.test_every = max(cfg.every, 16)
        cfg.slots, cfg.gap9 = min(cfg.slots, 8), False
    return _write(run(cfg), args.json)


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
        "--train-flights",
        help="real flights to stream for training, e.g. O0,O2,A0 (instead of domain B); 'split': the fixed "
        "split's (datasets/tof_drone_flights.toml), 'tune': its tuning split's",
    )
    dm.add_argument(
        "--test-flights", help="held-out real flights for the zone RMSE, e.g. O1,O3 (or 'split', 'tune')"
    )
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
    dm.add_argument(
        "--order",
        choices=["shuffled", "recorded", "both"],
        help="order of the streamed samples: depth on real flights recorded (time order, the default; both: "
        "also shuffled, and how much of its improvement time order keeps), handposture shuffled",
    )
    dm.add_argument(
        "--blend",
        type=float,
        metavar="A",
        help="depth, real flights: also A * network + (1 - A) * the running mean of the streamed zones, "
        "as the device's INFER BLEND answers (in the plan: 768 B); A from the tuning split",
    )
    dm.add_argument(
        "--qemu",
        action="store_true",
        help="depth, real flights: also train the plan's link firmware in QEMU on the time-ordered stream, "
        "through its replay reservoir, and compare it with the simulator",
    )
    dm.add_argument(
        "--no-blanked", action="store_true", help="depth, real flights: skip the blanked-image control"
    )
    dm.add_argument("--every", type=int, help="depth, real flights: every k-th frame (train and test)")
    dm.add_argument(
        "--replay-slots", type=int, help="depth, real flights: replay reservoir samples (16; 0: none)"
    )
    hp.add_argument(
        "--optimizer",
        choices=["adam", "sgd", "momentum"],
        help="handposture: adam (default; two floats of state per trained parameter) or sgd (none)",
    )
    hp.add_argument("--simulator-only", action="store_true", help="no firmware, no QEMU")
    cf = dm.add_argument_group("cifar-shift (docs/cifar.md; also --budget, --strategy, --epochs, --data)")
    cf.add_argument("--shift", choices=["grayscale", "noise"], default="grayscale")
    cf.add_argument("--test", type=int, help="measure on N of the 500 test images (spread over the classes)")
    cf.add_argument("--calib", type=int, default=200, help="adapt images the auto plan is scored on")
    cf.add_argument("--score", choices=["measured", "proxy"], default="measured")
    dm.add_argument(
        "--frozen-precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="handposture, cifar-shift: int8 runs the frozen layers with int8 kernels, the float model "
        "quantized from clean calibration data first (docs/quantization.md)",
    )
    dm.add_argument(
        "--lr-scale",
        choices=["none", "relative"],
        help="handposture, cifar-shift: per-tensor lr scaling (default: relative / the shift's recipe)",
    )
    dm.set_defaults(func=cmd_demo)
