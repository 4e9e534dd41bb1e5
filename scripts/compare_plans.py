"""Print the peak RAM of two plan files side by side, and their ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(a: str, b: str) -> None:
    pa, pb = (json.loads(Path(p).read_text()) for p in (a, b))
    ra, rb = pa["peak_ram_bytes"], pb["peak_ram_bytes"]
    print(f"{pa['strategy']:>12}: {ra:>10,} B of RAM")
    print(f"{pb['strategy']:>12}: {rb:>10,} B of RAM   ({ra / rb:.2f}x less than {pa['strategy']})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
