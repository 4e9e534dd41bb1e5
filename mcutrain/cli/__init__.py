"""The ``mcutrain`` command line: one module per group of verbs, each adding its own parsers.

| module | verbs |
|---|---|
| :mod:`~mcutrain.cli.model_verbs` | ``inspect``, ``plan``, ``export`` |
| :mod:`~mcutrain.cli.project_verbs` | ``emit``, ``build``, ``run``, ``report`` (host or board, by ``--target``) |
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


def main(argv: Sequence[str] | None = None) -> int:
    from mcutrain.core.ir import IRError
    from mcutrain.frontends import FrontendError
    from mcutrain.train.update_plan import PlanError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FrontendError, PlanError, IRError) as e:
        print(f"mcutrain {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
