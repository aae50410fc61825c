"""The ``bilaf`` command: one verb per stage, files between stages.

Each verb lives in its own module exposing ``add_parser(subparsers)`` (which
registers the verb and sets ``func``). The layer is thin: it parses, calls
the library, and turns user errors into one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

VERBS = ("embed", "select", "evaluate", "bench", "plot", "report", "demo")


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="bilaf",
        description="Active finetuning: choose, in one shot and without labels, the samples worth labeling.",
    )
    parser.add_argument("--version", action="version", version=f"bilaf {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        try:
            mod = importlib.import_module(f"{__name__}.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{verb}":
                continue  # verb not installed in this build
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except (UserError, ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        msg = str(exc) or type(exc).__name__
        if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{msg}: {exc.filename}"
        print(f"bilaf {args.verb}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bilaf {args.verb}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
