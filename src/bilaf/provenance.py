"""Provenance: hashes of features and selections, and the versions of what made them.

Recorded in every manifest (:mod:`bilaf.manifest`) and checked again when a
selection is reproduced or drawn.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["features_sha256", "indices_sha256", "package_versions"]


def features_sha256(X: Any, chunk_bytes: int = 64 * 1024**2) -> str:
    """SHA-256 of the raw bytes of a feature array (C order), streamed in row chunks.

    A memory-mapped ``.npy`` is never loaded whole. Shape and dtype are not
    part of the hash; the manifest records them beside it.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor of shape (n, d)
    chunk_bytes : int, default=64 MiB
        Bytes hashed per step.

    Returns
    -------
    str
        64 hex digits.
    """
    if not isinstance(X, np.ndarray):
        try:
            import torch

            if isinstance(X, torch.Tensor):
                X = X.detach().cpu().numpy()
        except ImportError:  # pragma: no cover
            pass
        X = np.asarray(X)
    h = hashlib.sha256()
    if X.ndim == 0 or X.shape[0] == 0:
        h.update(np.ascontiguousarray(X).tobytes())
        return h.hexdigest()
    row_bytes = max(1, X.itemsize * int(np.prod(X.shape[1:], dtype=np.int64)))
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, X.shape[0], step):
        h.update(memoryview(np.ascontiguousarray(X[start:start + step])).cast("B"))
    return h.hexdigest()


def indices_sha256(indices: Any) -> str:
    """SHA-256 of the selected indices as little-endian int64 (selection order matters)."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def package_versions() -> Dict[str, Optional[str]]:
    """Versions of bilaf, numpy, torch, scikit-learn and Python (None when a package is missing).

    From a git checkout, ``bilaf_source`` adds the commit (``+dirty`` with local changes).
    """
    from importlib import metadata

    from . import __version__

    out: Dict[str, Optional[str]] = {"bilaf": __version__}
    for name, dist in (("numpy", "numpy"), ("torch", "torch"), ("scikit-learn", "scikit-learn")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[name] = None
    out["python"] = platform.python_version()
    commit = _source_commit()
    if commit:
        out["bilaf_source"] = commit
    return out


def git_state(*, short: bool = False, untracked: bool = True) -> Optional[Tuple[str, bool]]:
    """``(commit, changed)`` of the git checkout bilaf runs from (an editable install), else None.

    ``changed``: files of the bilaf package differ from the commit (``untracked``: new files count too).
    """
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=5)
        if top.returncode != 0:
            return None
        head = subprocess.run(["git", "-C", str(here), "rev-parse", *(["--short"] if short else []), "HEAD"],
                              capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                *([] if untracked else ["--untracked-files=no"]), "--", str(here)],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return head, bool(dirty)


def _source_commit() -> Optional[str]:
    """``<commit>[+dirty]`` when bilaf runs from a git checkout (an editable install), else None.

    The version number alone cannot tell two development states apart.
    """
    state = git_state(untracked=False)
    return None if state is None else state[0] + ("+dirty" if state[1] else "")
