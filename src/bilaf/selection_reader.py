"""Reading a selection back: any file :mod:`bilaf.writers` writes, or the published code's JSON list.

A selection names its rows by pool index, by id, or by path (an id after a
``--path-prefix``); ids and paths are matched against the feature file's ids.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .errors import ValidationError
from .utils.files import PathLike

__all__ = ["read_selection"]



def read_selection(path: PathLike, ids: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Read a selection written by :func:`write_selection` (any format) or by the published code.

    Parameters
    ----------
    path : str or path-like
        A ``.json`` list of indices, a ``.csv``/``.parquet`` table with an
        ``index`` (or ``id``) column, a Label Studio tasks file, or a ``.txt``
        / ``.npy`` list of indices, ids or paths.
    ids : sequence of str, optional
        The pool's row ids, used to turn ids or paths into indices.

    Returns
    -------
    dict
        ``indices`` (int64 array, selection order) and, when the file holds
        them, ``roles``, ``pseudo_class``, ``score`` and ``opponent_class``
        (arrays aligned with ``indices``).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, unreadable content, or ids not found in the pool.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"selection file not found: {path}")
    if path.is_dir():
        raise ValidationError(f"expected a selection file, got a folder: {path}")
    name = path.name.lower()
    out: Dict[str, Any] = {}
    try:
        if name.endswith(".npy"):
            out["indices"] = np.load(path, allow_pickle=False)
        elif name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "indices" in data:
                data = data["indices"]
            if isinstance(data, list) and data and isinstance(data[0], dict) and "data" in data[0]:
                rows = [t["data"] for t in data]
                if all("bilaf_index" in r for r in rows):
                    out["indices"] = [r["bilaf_index"] for r in rows]
                    out["roles"] = [r.get("bilaf_role", "selected") for r in rows]
                    out["pseudo_class"] = [r.get("bilaf_pseudo_class", -1) for r in rows]
                    if any("bilaf_score" in r for r in rows):
                        out["score"] = [math.nan if r.get("bilaf_score") is None else float(r["bilaf_score"])
                                        for r in rows]
                else:
                    key = next((k for k in ("image", "text", "path", "id") if k in rows[0]), None)
                    if key is None:
                        raise ValidationError(f"{path}: Label Studio tasks without a bilaf_index, image or text field")
                    out["indices"] = _ids_to_indices([str(r[key]) for r in rows], ids, path)
            elif isinstance(data, list):
                out["indices"] = _values_to_indices(data, ids, path)
            else:
                raise ValidationError(f"{path}: expected a JSON list of indices")
        elif name.endswith((".csv", ".parquet", ".pq")):
            if name.endswith(".csv"):
                with open(path, newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
                cols = {k: [r[k] for r in rows] for k in (rows[0].keys() if rows else [])}
            else:
                import pyarrow.parquet as pq

                cols = pq.read_table(path).to_pydict()
            if "index" in cols:
                out["indices"] = _values_to_indices(cols["index"], None, path)
            elif "id" in cols or "path" in cols:
                out["indices"] = _ids_to_indices([str(v) for v in cols.get("id", cols.get("path"))], ids, path)
            else:
                raise ValidationError(f"{path}: no 'index', 'id' or 'path' column")
            if "role" in cols:
                out["roles"] = [str(v) for v in cols["role"]]
            for k in ("pseudo_class", "opponent_class"):
                if k in cols:
                    out[k] = [int(v) if v not in ("", None) else -1 for v in cols[k]]
            if "score" in cols:
                out["score"] = [float(v) if v not in ("", None) else math.nan for v in cols["score"]]
        else:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            out["indices"] = _values_to_indices(lines, ids, path)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, KeyError, OSError) as exc:
        raise ValidationError(f"cannot read selection file {path}: {exc}") from None
    idx = np.asarray(out["indices"])
    if idx.dtype.kind not in "iu":
        if idx.size and idx.dtype.kind == "f" and np.all(idx == np.round(idx)):
            idx = idx.astype(np.int64)
        elif idx.size:
            raise ValidationError(f"{path}: expected integer indices, got {idx.dtype}")
    out["indices"] = idx.astype(np.int64).ravel()
    for k in ("pseudo_class", "opponent_class"):
        if k in out:
            out[k] = np.asarray(out[k], dtype=np.int64)
    if "score" in out:
        out["score"] = np.asarray(out["score"], dtype=np.float64)
    if "roles" in out:
        out["roles"] = np.asarray(out["roles"], dtype=object)
    return out


def _values_to_indices(values: Sequence[Any], ids: Optional[Sequence[str]], path: Path) -> List[int]:
    ints: List[int] = []
    for v in values:
        if isinstance(v, bool):
            break
        if isinstance(v, (int, np.integer)):
            ints.append(int(v))
            continue
        if isinstance(v, float) and v.is_integer():
            ints.append(int(v))
            continue
        s = str(v).strip()
        if s.lstrip("-").isdigit():
            ints.append(int(s))
            continue
        break
    else:
        return ints
    return _ids_to_indices([str(v) for v in values], ids, path)


def _ids_to_indices(values: Sequence[str], ids: Optional[Sequence[str]], path: Path) -> List[int]:
    if ids is None:
        raise ValidationError(f"{path} names samples by id or path; the feature file has no ids to match them")
    where = {str(s): i for i, s in enumerate(ids)}
    out = []
    prefix: Optional[str] = None
    for v in values:
        if v in where:
            out.append(where[v])
            continue
        if prefix is None:
            prefix = _path_prefix_of(v, where)
        if prefix is not None and v.startswith(prefix) and v[len(prefix):] in where:
            out.append(where[v[len(prefix):]])
            continue
        raise ValidationError(f"{path}: {v!r} is not an id of the feature file")
    return out


def _path_prefix_of(value: str, where: Mapping[str, int]) -> Optional[str]:
    """The ``--path-prefix`` a written path carries: what precedes the longest id it ends with, else None."""
    for i, ch in enumerate(value):
        if i and ch == "/" and value[i:] in where:  # an absolute-path id after the prefix
            return value[:i]
        if ch in "/=:" and value[i + 1:] in where:
            return value[:i + 1]
    return None
