"""Write calibration data for the depth network: synthetic domain-B ("the field") frames with their 8x8
ToF zones as targets (normalized depth) and validity masks.

    .venv/bin/python scripts/make_depth_calib.py OUT.npz [N]

Prints the zone footprint to pass to `mcutrain plan --zones`.
"""

from __future__ import annotations

import sys

import numpy as np

from mcutrain.data.scenes import generate
from mcutrain.zoo.depth import MAX_DEPTH_M


def main(out: str, n: int = 64) -> None:
    b = generate("B", n, seed=1)
    x = (b.image[:, None] / 255.0).astype(np.float32)
    target = (b.tof_mm.reshape(n, -1) / 1000.0 / MAX_DEPTH_M).astype(np.float32)
    mask = b.tof_valid.reshape(n, -1).astype(np.float32)
    np.savez(out, x=x, target=target, mask=mask)
    f = b.footprint
    print(f"wrote {out}: {n} domain-B frames; --zones {f.top},{f.left},{f.zone_h},{f.zone_w}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
