"""Where the ToF zones fall in the camera image of the real drone flights, fitted on the training flights.

Scores every placement of 3, 4 and 5-pixel zones in the 48x64 network input by edge alignment
(:mod:`mcutrain.data.footprint_fit`: the image gradient across zone borders where the two zones' distances
jump, over the gradient where they agree) and prints the best ones, the footprint of the assumed 87 deg
camera, and the best footprint if the zones were mirrored left-right (a check of the zone order).

Run:  .venv/bin/python benchmarks/depth_footprint.py [--flights A0,...]   (about a minute)
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from mcutrain.data.drone import load_flights
from mcutrain.data.flight_split import FlightSplit
from mcutrain.data.footprint_fit import edge_score, fit_footprint
from mcutrain.data.tof import Footprint


def hfov_deg(fp: Footprint, width: int = 64, tof_fov_deg: float = 45.0) -> float:
    """The camera's horizontal field of view for which the 45 deg ToF spans ``fp.width`` pixels."""
    return 2 * math.degrees(math.atan(width / fp.width * math.tan(math.radians(tof_fov_deg / 2))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flights", default=",".join(FlightSplit.load().train))
    args = ap.parse_args()
    b = load_flights(args.flights)
    print(f"{len(b)} frames of {args.flights}")
    print(
        f"{'footprint (zone px, top, left)':<32} {'hfov':>6} {'score':>6} {'vertical':>9} {'horizontal':>11}"
    )
    scores = fit_footprint(b)

    def row(label: str, s: object) -> None:
        fp = s.footprint  # type: ignore[attr-defined]
        print(
            f"{label:<32} {hfov_deg(fp):>5.1f}° {s.score:>6.2f} {s.vertical:>9.2f} {s.horizontal:>11.2f}"  # type: ignore[attr-defined]
        )

    for s in scores[:5]:
        fp = s.footprint
        row(f"{fp.zone_h} px at ({fp.top}, {fp.left})", s)
    row("assumed 87 deg, centred", edge_score(b, b.footprint))
    mirrored = dataclasses.replace(
        b, tof_mm=b.tof_mm[..., ::-1].copy(), tof_valid=b.tof_valid[..., ::-1].copy()
    )
    best_m = fit_footprint(mirrored)[0]
    fp = best_m.footprint
    row(f"mirrored zones: {fp.zone_h} px at ({fp.top}, {fp.left})", best_m)


if __name__ == "__main__":
    main()
