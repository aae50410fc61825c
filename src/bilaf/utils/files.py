"""The path type every writer takes, and the permissions a new file or folder gets."""

from __future__ import annotations

import os
from typing import Union

__all__ = ["PathLike", "process_umask", "default_mode"]

#: A path as users give it: a string or any ``os.PathLike``.
PathLike = Union[str, "os.PathLike[str]"]


def process_umask() -> int:
    """The process umask, read by setting it and putting it back."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file, ``0o666`` minus the umask (``os.mkdir`` a new
    folder, ``0o777`` minus the umask, when ``directory``): what a file made by ``mkstemp`` (0600) is given."""
    return (0o777 if directory else 0o666) & ~process_umask()
