"""One memory vocabulary for every stage: sizes are bytes, written with KB = 1024 bytes and MB = 1024 KB,
as MCU datasheets count (``KiB``/``MiB`` are read as the same units)."""

from __future__ import annotations

import math

#: Bytes of a float32 value, the unit of every tensor and parameter the training step keeps.
F32 = 4
_UNITS = {"GB": 1024**3, "MB": 1024**2, "KB": 1024, "G": 1024**3, "M": 1024**2, "K": 1024, "B": 1}


def parse_bytes(value: int | str, allow_zero: bool = False) -> int:
    """``256KB``, ``1.2MB``, ``4096``, ``64 KiB``, ``16K``, ``4M`` (or an int) -> bytes (rounded).
    Raises ValueError, saying what was expected, for anything else, for negative sizes and (unless
    ``allow_zero``) for 0."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"cannot read a memory size from {value!r}: use e.g. 256KB, 1.2MB or 65536")
    if isinstance(value, int):
        n = value
    else:
        s = value.strip().upper().replace(" ", "").replace("IB", "B")
        unit = next((u for u in _UNITS if s.endswith(u)), "")
        num, mult = (s[: -len(unit)], _UNITS[unit]) if unit else (s, 1)
        try:
            v = float(num)
        except ValueError:
            raise ValueError(
                f"cannot read a memory size from {value!r}: use e.g. 256KB, 1.2MB or 65536"
            ) from None
        if not math.isfinite(v):
            raise ValueError(f"memory size must be a finite number, got {value!r}")
        n = round(v * mult)
    if n < 0 or (n == 0 and not allow_zero):
        raise ValueError(f"memory size must be positive, got {value!r}")
    return n


def format_bytes(n: int) -> str:
    """``512`` -> ``512 B``, ``262144`` -> ``256 KB``, ``7900`` -> ``7.7 KB``, ``1258291`` -> ``1.20 MB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n // 1024} KB" if n % 1024 == 0 else f"{n / 1024:.1f} KB"
    return f"{n // 1024**2} MB" if n % 1024**2 == 0 else f"{n / 1024**2:.2f} MB"
