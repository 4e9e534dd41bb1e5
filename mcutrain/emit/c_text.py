"""C text: literals (``c_float`` prints 9 significant digits and rejects NaN and Inf) and the warning flags
of all the C we compile (C names of layers: :func:`mcutrain.core.layout.c_ident`).
"""

from __future__ import annotations

import math

import numpy as np

from mcutrain.train.update_plan import PlanError

#: Warnings the kernel runtime and generated code compile clean with (as errors), on the host and for
#: the MCU targets; the generated host Makefile and the kernel and link tests all use this list.
C_WARNINGS: tuple[str, ...] = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wdouble-promotion",
    "-Wstrict-prototypes",
)


def c_float(v: float) -> str:
    """A float literal with 9 significant digits (exact round trip); rejects NaN and Inf."""
    f = float(v)
    if not math.isfinite(f):
        raise PlanError(f"cannot emit a non-finite constant ({f}): the model has NaN or Inf parameters")
    s = f"{f:.9g}"
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def c_array(values: np.ndarray, per_line: int = 8) -> str:
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    lines = []
    for i in range(0, len(flat), per_line):
        lines.append("    " + ", ".join(c_float(v) for v in flat[i : i + per_line]) + ",")
    return "\n".join(lines)


def c_int_array(values: np.ndarray, ctype: str, per_line: int = 16) -> str:
    """The initializer of an integer array (``int8_t``, ``int32_t``, ``uint64_t``)."""
    flat = np.asarray(values).reshape(-1)
    lines = []
    for i in range(0, len(flat), per_line):
        lines.append("    " + ", ".join(c_int(int(v), ctype) for v in flat[i : i + per_line]) + ",")
    return "\n".join(lines)


def c_int(v: int, ctype: str = "int32_t") -> str:
    """An integer literal of ``ctype`` (``INT32_MIN`` spelled so that it is an int, 64-bit with ``ull``)."""
    if ctype == "uint64_t":
        return f"{v}ull"
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def c_plus(expr: str, n: int) -> str:
    return f"{expr} + {n}" if n else expr
