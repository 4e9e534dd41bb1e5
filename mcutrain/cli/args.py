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


_SHAPE_HINT = "give the input's shape with the batch axis first, e.g. 1,16 or 1,3,32,32"


def input_shape(text: str) -> tuple[int, ...]:
    """``--input-shape`` as PyTorch users write it, batch axis first (``1,16``, ``1,3,32,32``; ``x`` also
    separates): the per-sample shape, without the batch axis."""
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read a shape from {text!r}: {_SHAPE_HINT}") from None
    if len(dims) < 2 or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: {_SHAPE_HINT}")
    return dims[1:]


def zones(text: str) -> ZoneSpec:
    from mcutrain.train.update_plan import ZoneSpec

    try:
        v = [int(t) for t in text.split(",")]
        return ZoneSpec(*v)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"cannot read a zone footprint from {text!r}: use TOP,LEFT,ZONE_H,ZONE_W[,ROWS,COLS]"
        ) from None


#: The largest RAM a 32-bit microcontroller can address: larger budgets are typing mistakes.
MAX_BUDGET_BYTES = 2**32


def budget(text: str) -> int:
    from mcutrain.core.units import format_bytes, parse_bytes

    try:
        n = parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if n > MAX_BUDGET_BYTES:
        raise argparse.ArgumentTypeError(
            f"{text} is more than the {format_bytes(MAX_BUDGET_BYTES)} a 32-bit microcontroller can address"
        )
    return n


def col_bytes(text: str) -> int | str:
    """``--int8-col-bytes``: a number of bytes (the plan checks its range) or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of bytes nor auto") from None


def demo_budget(text: str, full: bool = True) -> int | None:
    """A demo's ``--budget``: read as ``plan`` reads it, or ``full`` (None: the full update's peak RAM)
    where the demo has a full update to offer. Bad text is a :class:`PlanError` naming the flag."""
    from mcutrain.train.update_plan import PlanError

    if full and text.strip().lower() == "full":
        return None
    try:
        return budget(text)
    except argparse.ArgumentTypeError as e:
        raise PlanError(f"--budget: {e}" + (", or 'full'" if full else "")) from None
