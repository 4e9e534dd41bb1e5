"""The ``mcutrain`` command line: one module per group of verbs, each adding its own parsers.

| module | verbs |
|---|---|
| :mod:`~mcutrain.cli.model_verbs` | ``inspect``, ``plan``, ``export`` |
| :mod:`~mcutrain.cli.project_verbs` | ``emit``, ``build``, ``run``, ``report`` (host or board) |
| :mod:`~mcutrain.cli.link_verbs` | ``stream``, ``pull`` |
| :mod:`~mcutrain.cli.monitor_verbs` | ``monitor`` (and the ``--monitor`` options of ``stream`` and ``run``) |
| :mod:`~mcutrain.cli.demo_verbs` | ``demo`` |
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mcutrain import __version__


def build_parser() -> argparse.ArgumentParser:
    from mcutrain.cli import demo_verbs, link_verbs, model_verbs, monitor_verbs, project_verbs

    p = argparse.ArgumentParser(
        prog="mcutrain", description="Plan, compile and run fine-tuning on microcontrollers."
    )
    p.add_argument("--version", action="version", version=f"mcutrain {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for verbs in (model_verbs, project_verbs, link_verbs, monitor_verbs, demo_verbs):
        verbs.add_parsers(sub)
    return p


#: Options whose value may start with "-" (a negative size is an error the parser should name).
_VALUE_OPTIONS = ("--budget", "--stack-reserve")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit status 0 on success, 1 when something outside the command line failed (a
    build, the link, a file that cannot be written), 2 for unusable input. Errors are one line on stderr."""
    from mcutrain.boards.targets import TargetError
    from mcutrain.core.ir import IRError
    from mcutrain.frontends import FrontendError
    from mcutrain.train.update_plan import PlanError

    args_in = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(args_in[:-1]):  # "--budget -1KB": a value, not an option
        if a in _VALUE_OPTIONS and args_in[i + 1].startswith("-"):
            args_in[i : i + 2] = [f"{a}={args_in[i + 1]}", ""]
    args = build_parser().parse_args([a for a in args_in if a != ""])
    try:
        return int(args.func(args))
    except (FrontendError, PlanError, IRError, TargetError) as e:
        print(f"mcutrain {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file or folder that cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        print(f"mcutrain {args.cmd}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
