"""``SelectionResult``: what every selector returns, and atomic file writing."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from .utils.files import PathLike, default_mode

__all__ = ["SelectionResult", "atomic_write", "atomic_path", "remove_stale_temporaries"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:24] or "host"
#: A temporary without a writer's pid (written by an earlier version) counts as left over after this long.
LEGACY_TEMP_AGE_S = 3600.0


def _temp_prefix(path: Path) -> str:
    """``.NAME.PID@HOST.``: whose temporary it is, so a later run can tell a killed writer's from a live one's."""
    return f".{path.name}.{os.getpid()}@{_HOST}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(path: PathLike) -> List[Path]:
    """Remove the temporary files of ``path`` that a killed writer left beside it.

    A temporary of ``path`` is named ``.NAME.PID@HOST.XXXXXXXX<suffix>``; it is
    removed when it was made on this host by a process that no longer runs
    (SIGKILL, power loss: no clean-up ran). Temporaries of live writers and of
    other hosts are left alone. Nameless temporaries of earlier versions
    (``.NAME.XXXXXXXX<suffix>``) are removed when untouched for an hour.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    head = f".{path.name}."
    tagged = re.compile(re.escape(head) + r"(\d+)@([A-Za-z0-9-]+)\.")
    legacy = re.compile(re.escape(head) + r"[a-z0-9_]{8}(" + re.escape(path.suffix) + r"|\.tmp)$")
    removed: List[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(head):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            m = tagged.match(e.name)
            if m:
                pid = int(m.group(1))
                if m.group(2) != _HOST or pid == os.getpid() or _alive(pid):
                    continue
            elif not (legacy.match(e.name) and time.time() - e.stat().st_mtime > LEGACY_TEMP_AGE_S):
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed


@contextmanager
def atomic_write(path: PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash, an exception or a kill leaves no half-written file at ``path``;
    the temporary files of writers killed before they could clean up are
    removed first (:func:`remove_stale_temporaries`).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise FileNotFoundError(f"output folder does not exist: {directory}")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that want a file name (pyarrow, matplotlib)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise FileNotFoundError(f"output folder does not exist: {directory}")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=path.suffix or ".tmp", dir=directory)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):
            os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@dataclass
class SelectionResult:
    """The samples chosen for labeling.

    Attributes
    ----------
    indices : numpy.ndarray of int64, shape (budget,)
        Pool indices in selection order; distinct; exactly ``budget`` long.
    method : str
        The selector that produced it.
    core_indices : numpy.ndarray of int64
        The core (pseudo-class centre) samples among ``indices``; empty for
        methods without cores.
    boundary_indices : numpy.ndarray of int64
        The boundary samples among ``indices`` (BiLAF); empty otherwise.
    pseudo_labels : numpy.ndarray of int64, shape (n_samples,) or None
        Pseudo-class of each pool sample (-1 = removed as noise), for methods
        that form pseudo-classes.
    scores : numpy.ndarray of float64, shape (budget,)
        A per-pick score (BiLAF: the penalised boundary score at the time of
        the pick, lower = nearer a boundary; NaN for cores and methods without
        scores).
    opponents : numpy.ndarray of int64, shape (budget,)
        For BiLAF boundary picks, the opponent pseudo-class; -1 otherwise.
    pick_classes : numpy.ndarray of int64, shape (budget,)
        Pseudo-class of each pick (-1 when there are none).
    n_samples : int
        Pool size.
    params : dict
        The selector's parameters.
    timings : dict
        Seconds per stage.
    notes : list of str
        What the selector did about edge cases (fewer cores, capped classes...).
    """

    indices: np.ndarray
    method: str = ""
    core_indices: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    boundary_indices: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    pseudo_labels: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None
    opponents: Optional[np.ndarray] = None
    pick_classes: Optional[np.ndarray] = None
    n_samples: int = 0
    params: Dict[str, Any] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        b = self.indices.shape[0]
        self.core_indices = np.asarray(self.core_indices, dtype=np.int64)
        self.boundary_indices = np.asarray(self.boundary_indices, dtype=np.int64)
        if self.scores is None:
            self.scores = np.full(b, np.nan)
        if self.opponents is None:
            self.opponents = np.full(b, -1, dtype=np.int64)
        if self.pick_classes is None:
            self.pick_classes = np.full(b, -1, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.opponents = np.asarray(self.opponents, dtype=np.int64)
        self.pick_classes = np.asarray(self.pick_classes, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def roles(self) -> np.ndarray:
        """Per pick: ``"core"``, ``"boundary"``, ``"labeled"`` or ``"selected"``."""
        roles = np.full(len(self), "selected", dtype=object)
        roles[np.isin(self.indices, self.core_indices)] = "core"
        roles[np.isin(self.indices, self.boundary_indices)] = "boundary"
        labeled = self.params.get("labeled_indices")
        if labeled is not None and len(labeled):
            roles[np.isin(self.indices, np.asarray(labeled))] = "labeled"
        return roles

    def to_list(self) -> List[int]:
        return [int(i) for i in self.indices]

    def to_json(self, path: PathLike) -> None:
        """Write the indices as a plain JSON list of ints (the published code's format), atomically."""
        with atomic_write(path) as fh:
            json.dump(self.to_list(), fh)

    def records(self, ids: Optional[Any] = None, paths: Optional[Any] = None) -> List[Dict[str, Any]]:
        """One dict per pick: rank, index, id, path, role, pseudo_class, score, opponent_class."""
        roles = self.roles
        out = []
        for rank, (idx, role, cls, score, opp) in enumerate(
            zip(self.indices, roles, self.pick_classes, self.scores, self.opponents)
        ):
            i = int(idx)
            out.append({
                "rank": rank,
                "index": i,
                "id": str(ids[i]) if ids is not None else str(i),
                "path": str(paths[i]) if paths is not None else "",
                "role": str(role),
                "pseudo_class": int(cls),
                "score": None if not np.isfinite(score) else float(score),
                "opponent_class": int(opp),
            })
        return out
