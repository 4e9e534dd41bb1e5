"""The ``mcutrain export`` verb: a model in its own format with the parameters pulled from a device
(docs/export.md).

Exit status: 0 on success; 2 when the inputs do not fit together (another model or plan, wrong length)
or a trained value has no place in the source format.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError, export

    try:
        res = export(args.model, args.params, args.plan, args.out, args.input_shape)
    except (ExportError, OSError) as e:
        print(f"mcutrain export: error: {e}", file=sys.stderr)
        return 2
    what = {"tflite": "float values in the file", "torch": "state_dict values", "json": "parameter values"}
    print(f"wrote {res.out}: {res.changed} {what[res.kind]} changed, everything else as in {args.model}")
    return 0


def register(sub: argparse._SubParsersAction, shape: Callable[[str], tuple[int, ...]]) -> None:
    """Add ``export``; ``shape`` parses ``--input-shape`` as ``plan`` does."""
    ex = sub.add_parser(
        "export", help="write the model in its own format (.tflite, PyTorch state_dict) with pulled weights"
    )
    ex.add_argument("model", help="the model the plan was made for (.tflite, .pt2, package.module:factory)")
    ex.add_argument("--params", required=True, help=".npz written by `mcutrain pull`")
    ex.add_argument("--plan", required=True, help="the plan file the device's firmware was built from")
    ex.add_argument("--out", required=True, help="new.tflite for a .tflite model, new.pt for a PyTorch one")
    ex.add_argument("--input-shape", type=shape, help="per-sample input shape of a factory, e.g. 3,32,32")
    ex.set_defaults(func=cmd_export)
