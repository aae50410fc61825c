"""The ``bilaf`` command: one verb per stage, files between stages.

Each verb lives in its own module exposing ``add_parser(subparsers)`` (which
registers the verb and sets ``func``). The layer is thin: it parses, calls
the library, and turns bad input (:class:`UserError`, the library's
:class:`~bilaf.errors.ValidationError`, missing files) into one line on stderr
with exit code 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import List, Optional

from ..errors import ValidationError

VERBS = ("embed", "select", "evaluate", "bench", "plot", "report", "demo")


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, schedulers), raised like Ctrl-C so every clean-up runs as for SIGINT."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


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
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        rc = args.func(args)
    except Terminated:
        print(f"bilaf {args.verb}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (UserError, ValidationError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        # only bad input becomes one line; any other exception is a bug and keeps its traceback
        if isinstance(exc, ValidationError):
            from .options import flag_of

            # option names as this verb's flags spell them: its FLAG_NAMES first (e.g. bench's --knn-k for k)
            own = getattr(sys.modules.get(getattr(args.func, "__module__", "")), "FLAG_NAMES", {})
            msg = exc.render(lambda name: own.get(name) or flag_of(name))
        else:
            msg = str(exc) or type(exc).__name__
        if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{msg}: {exc.filename}"
        print(f"bilaf {args.verb}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bilaf {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
