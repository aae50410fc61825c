"""Resumable work in shards: each finished shard of the embed loop kept in a folder, guarded by a manifest.

Work is cut into *shards* of consecutive samples. With a folder, each finished
shard is written there (atomically) together with a manifest naming the run
(input, backbone, shard size); a later run with the same manifest loads the
finished shards and computes only the rest. A shard whose inputs changed
since it was written (its stamp differs) is computed again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ValidationError, escape

__all__ = ["ShardStore", "run_shards", "MANIFEST"]

MANIFEST = "manifest.json"


class ShardStore:
    """Finished shards in a work folder, guarded by a manifest naming the run.

    Each shard also records a stamp of its inputs (file sizes and times, archive
    member sizes, pixel digests): a shard whose inputs changed since it was
    written is computed again. A folder holding shards of another run (another
    input, backbone or shard size) is refused (``on_mismatch="error"``) or
    emptied of its shards first (``"restart"``).
    """

    def __init__(self, folder: Optional[Union[str, Path]], manifest: Dict[str, Any],
                 on_mismatch: str = "error") -> None:
        if on_mismatch not in ("error", "restart"):
            raise ValidationError(f"on_mismatch must be 'error' or 'restart', got {on_mismatch!r}")
        self.folder = Path(folder) if folder is not None else None
        self.manifest = manifest
        self.restarted: Optional[str] = None  # why the shards found were dropped
        self.loaded = 0  # shards taken from the folder
        self.redone = 0  # shards found but computed again because their inputs changed
        if self.folder is None:
            return
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"resume folder is a file: {self.folder}")
        path = self.folder / MANIFEST
        self._text = json.dumps(manifest, sort_keys=True, indent=1)
        self._written = path.exists()
        what = None
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != json.loads(self._text):
                what = "unreadable manifest"
                if isinstance(old, dict):
                    diff = [k for k in sorted(set(old) | set(manifest)) if old.get(k) != manifest.get(k)]
                    what = "different " + ", ".join(diff)
        elif self.folder.is_dir() and any(self.folder.glob("shard_*.npz")):
            what = f"no {MANIFEST}"
        if what is None:
            return
        if on_mismatch == "error":
            raise ValidationError(f"resume folder {self.folder} holds shards of another run ({what}); "
                             f"remove it or choose another folder")
        for f in list(self.folder.glob("shard_*.npz")) + [path]:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        self._written = False
        self.restarted = what

    def _write_manifest(self) -> None:
        """Create the folder and its manifest on the first finished shard (a run failing early leaves nothing)."""
        if self._written or self.folder is None:
            return
        from ..result import atomic_write

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.folder / MANIFEST) as fh:
            fh.write(self._text)
        self._written = True

    def _path(self, k: int) -> Path:
        assert self.folder is not None
        return self.folder / f"shard_{k:06d}.npz"

    def has(self, k: int) -> bool:
        return self.folder is not None and self._path(k).is_file()

    def load(self, k: int, m: int, stamp: str) -> Optional[Tuple[np.ndarray, np.ndarray, List[Tuple[int, str]]]]:
        if self.folder is None or not self._path(k).is_file():
            return None
        try:
            with np.load(self._path(k), allow_pickle=False) as z:
                feats, ok = z["features"], z["ok"].astype(bool)
                errors = [(int(p), str(r)) for p, r in zip(z["error_pos"], z["error_reason"])]
                old_stamp = str(z["stamp"]) if "stamp" in z.files else None
        except Exception:  # a damaged shard is simply computed again
            return None
        if ok.shape != (m,) or feats.shape[0] != m:
            return None
        if old_stamp != stamp:  # an input was replaced under the same name
            self.redone += 1
            return None
        self.loaded += 1
        return feats, ok, errors

    def save(self, k: int, feats: np.ndarray, ok: np.ndarray, errors: List[Tuple[int, str]], stamp: str) -> None:
        if self.folder is None:
            return
        from ..result import atomic_write

        self._write_manifest()
        with atomic_write(self._path(k), "wb") as fh:
            np.savez(fh, features=feats, ok=ok,
                     error_pos=np.asarray([p for p, _ in errors], dtype=np.int64),
                     error_reason=np.asarray([r for _, r in errors], dtype=str), stamp=np.asarray(stamp))

    def report(self, n_shards: int) -> Dict[str, Any]:
        """What the resume folder gave this run (for ``FeatureSet.meta["resume"]``)."""
        return {"folder": str(self.folder), "shards": n_shards, "loaded": self.loaded, "redone": self.redone,
                "restarted": self.restarted}


def run_shards(n: int, shard_size: int, compute: Callable[[int, int, Any], Tuple[np.ndarray, np.ndarray,
                List[Tuple[int, str]]]], store: ShardStore, on_error: str, describe: Callable[[int], str],
                verbose: bool, desc: str, unit: str,
                stamp: Callable[[int, int], str] = lambda start, stop: "",
                ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, str]]]:
    """Compute (or load) every shard; return (features of ok rows, their positions, errors).

    ``stamp(start, stop)`` digests the inputs of a shard; it is taken before the
    shard is read, so an input changed during the run is redone on the next.
    """
    from tqdm.auto import tqdm

    n_shards = math.ceil(n / shard_size)
    results: List[Any] = [None] * n_shards
    stamps: List[str] = [""] * n_shards
    done = 0
    for k in range(n_shards):
        start, stop = k * shard_size, min(n, (k + 1) * shard_size)
        if store.has(k):
            stamps[k] = stamp(start, stop)
            results[k] = store.load(k, stop - start, stamps[k])
        if results[k] is not None:
            done += stop - start
    bar = tqdm(total=n, initial=done, desc=desc, unit=unit, disable=not verbose, dynamic_ncols=True, leave=False,
               smoothing=0.1)
    try:
        for k in range(n_shards):
            if results[k] is not None:
                _raise_on_error(results[k][2], on_error, describe)
                continue
            start, stop = k * shard_size, min(n, (k + 1) * shard_size)
            if store.folder is not None:
                stamps[k] = stamp(start, stop)
            feats, ok, errors = compute(start, stop, bar)
            _raise_on_error(errors, on_error, describe)
            store.save(k, feats, ok, errors, stamps[k])
            results[k] = (feats, ok, errors)
    finally:
        bar.close()
    parts, positions, errors_all = [], [], []
    for k, (feats, ok, errors) in enumerate(results):
        if ok.any():
            parts.append(np.asarray(feats[ok], dtype=np.float32))
            positions.append(k * shard_size + np.flatnonzero(ok))
        errors_all.extend(errors)
    if not parts:
        return np.empty((0, 0), np.float32), np.empty(0, np.int64), errors_all
    return np.concatenate(parts), np.concatenate(positions).astype(np.int64), errors_all


def _raise_on_error(errors: List[Tuple[int, str]], on_error: str, describe: Callable[[int], str]) -> None:
    if errors and on_error == "stop":
        pos, reason = errors[0]
        more = f" ({len(errors)} such in this shard)" if len(errors) > 1 else ""
        raise ValidationError(escape(f"cannot read {describe(pos)}: {reason}{more}; use ")
                              + "{setting} to skip bad files", setting=("on_error", "skip"))
