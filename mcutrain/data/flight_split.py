"""The train/test split of the real drone flights, and the tuning split inside the training flights.

Read from the manifest ``datasets/tof_drone_flights.toml`` (chosen once, before tuning; the reasons are
written there and in docs/depth.md). Flight names start with their type: ``A`` approach, ``O`` object,
``R`` rotate.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcutrain.data.shared import read_manifest

FLIGHT_TYPES = {"A": "approach", "O": "object", "R": "rotate"}


@dataclass(frozen=True)
class FlightSplit:
    train: tuple[str, ...]
    test: tuple[str, ...]
    fit: tuple[str, ...]  # tuning: train on these ...
    val: tuple[str, ...]  # ... and score on these (all of them training flights)

    @staticmethod
    def load() -> FlightSplit:
        s = read_manifest("tof_drone_flights")["split"]
        t = s["tuning"]
        split = FlightSplit(*(tuple(x) for x in (s["train"], s["test"], t["fit"], t["val"])))
        if set(split.train) & set(split.test) or not set(split.fit) | set(split.val) <= set(split.train):
            raise ValueError("tof_drone_flights.toml: test flights overlap training, or tuning leaves train")
        return split


def flight_type(name: str) -> str:
    """``"approach"``, ``"object"`` or ``"rotate"`` from the flight name's first letter."""
    try:
        return FLIGHT_TYPES[name[:1].upper()]
    except KeyError:
        raise ValueError(f"flight {name!r}: names start with one of {', '.join(FLIGHT_TYPES)}") from None
