"""Argument types and error output shared by the verbs of the ``mcutrain`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcutrain.train.update_plan import ZoneSpec


def fail(cmd: str, msg: str, code: int = 1) -> int:
    """Print ``mcutrain CMD: error: MSG`` to stderr and return the exit status ``code``."""
    print(f"mcutrain {cmd}: error: {msg}", file=sys.stderr)
    return code


def input_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read a shape from {text!r}: use e.g. 1,3,32,32") from None
    if len(dims) == 4 and dims[0] == 1:
        dims = dims[1:]  # a leading batch axis of 1
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}")
    return dims


def zones(text: str) -> ZoneSpec:
    from mcutrain.train.update_plan import ZoneSpec

    try:
        v = [int(t) for t in text.split(",")]
        return ZoneSpec(*v)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"cannot read a zone footprint from {text!r}: use TOP,LEFT,ZONE_H,ZONE_W[,ROWS,COLS]"
        ) from None


def budget(text: str) -> int:
    from mcutrain.core.units import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
