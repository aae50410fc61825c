"""Helpers shared by the CLI commands (no command imports another: they import this)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from . import UserError

__all__ = ["one_line_errors", "load_feature_file", "host_description"]


def one_line_errors(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    """Make ``parser`` report bad arguments as one line on stderr with exit code 2 (no usage block)."""

    def error(self: argparse.ArgumentParser, message: str) -> None:  # noqa: ARG001
        print(f"bilaf {verb}: error: {message} (see bilaf {verb} --help)", file=sys.stderr)
        raise SystemExit(2)

    original = parser.parse_known_args

    def parse_known_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None):
        ns, extras = original(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    parser.error = types.MethodType(error, parser)  # type: ignore[method-assign]
    parser.parse_known_args = types.MethodType(parse_known_args, parser)  # type: ignore[method-assign]
    return parser


def load_feature_file(path: str):
    """:meth:`FeatureSet.load` with every failure turned into one line naming the file."""
    from ..features import FeatureSet

    try:
        if Path(path).is_dir():  # Parquet shards written by `bilaf embed --engine ray`
            from ..engines.ray_embed import read_feature_shards

            return read_feature_shards(path)
        return FeatureSet.load(path)
    except (FileNotFoundError, UserError):
        raise
    except (ValueError, TypeError, OSError) as exc:
        msg = str(exc)
        if "pickled" in msg or "allow_pickle" in msg:
            msg = "not a numeric NumPy array file"
        if Path(path).name in msg:
            raise ValidationError(msg) from None
        raise ValidationError(f"cannot read feature file {path}: {msg}") from None


def host_description(device: str = "cpu") -> str:
    """e.g. ``"Linux x86_64, 2 CPU cores"`` or ``"..., GPU NVIDIA H100 80GB HBM3"``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    text = f"{platform.system()} {platform.machine()}, {cores} CPU cores"
    if device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                text += f", GPU {torch.cuda.get_device_name(0)}"
        except Exception:  # pragma: no cover
            pass
    return text
