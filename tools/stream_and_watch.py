#!/usr/bin/env python3
"""Stream samples to a training device and watch it: live view, CSV, TensorBoard events and curves.

    tools/stream_and_watch.py PORT|FW_DIR DATA.npz [LOG_DIR] [more mcutrain options]

PORT is a pyserial URL or device (a board running the link firmware: ``mcutrain stream --monitor``);
FW_DIR is a project from ``mcutrain emit --app link``, built and run in QEMU (``mcutrain run --stream
--monitor``), whose trained parameters end in FW_DIR/params.npz. LOG_DIR defaults to ``out/watch``.
A thin wrapper over the ``mcutrain`` CLI (docs/monitor.md); the exit status is the command's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mcutrain import cli


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    where, data, rest = argv[0], argv[1], argv[2:]
    log_dir = "out/watch"
    if rest and not rest[0].startswith("-"):
        log_dir, rest = rest[0], rest[1:]
    if (Path(where) / "firmware.json").is_file():
        cmd = ["run", where, "--stream", data]
    else:
        cmd = ["stream", "--port", where, "--data", data]
    return cli.main([*cmd, "--monitor", "--log-dir", log_dir, *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
