"""Label files as annotators send them back: class ids or names, per pool row, per pick, or by index / id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError

__all__ = ["read_labels"]


def _int_labels(arr: Any, where: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise ValidationError(f"{where}: expected one integer class id per row")
    return a.astype(np.int64)


def _label_values(texts: Sequence[str], classes: Optional[Sequence[str]]) -> Tuple[List[int], Optional[List[str]]]:
    """Class ids from label texts: integers as they are, or (when any text is not an integer) class names."""
    try:
        return [int(t) for t in texts], (list(classes) if classes else None)
    except ValueError:
        pass
    names = list(classes or [])
    known = {c: i for i, c in enumerate(names)}
    for t in sorted(set(texts) - set(known)):  # names the feature file lacks get new ids, in sorted order
        known[t] = len(names)
        names.append(t)
    return [known[t] for t in texts], names


def read_labels(path: str, n_rows: int, ids: Optional[Sequence[str]] = None,
                selection: Optional[np.ndarray] = None, what: str = "labels",
                classes: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, Optional[List[str]]]:
    """Labels for ``n_rows`` pool rows from a file (-1 where the file says nothing), and their class names.

    ``.npy`` / ``.txt``: one label per pool row, or one per selected sample
    (in selection order, when ``selection`` is given). ``.csv``: a ``label``
    column and an ``index`` or ``id`` (or ``path``) column naming the rows.
    A label is a class id (indexing ``classes``, the feature file's class
    names, when it has them) or, in ``.csv`` and ``.txt`` files, a class name
    (what annotators send back): names are mapped to their position in
    ``classes``, and names it lacks get new ids after it. The second value
    returned is the list of class names (None when neither the file nor
    ``classes`` gives names).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} file not found: {p}")
    name = p.name.lower()
    out = np.full(n_rows, -1, dtype=np.int64)
    if name.endswith(".csv"):
        import csv

        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise ValidationError(f"{what} file {p.name} is empty")
        cols = set(rows[0])
        if "label" not in cols:
            raise ValidationError(f"{what} file {p.name} has no 'label' column (columns: {', '.join(sorted(cols))})")
        key = "index" if "index" in cols else ("id" if "id" in cols else ("path" if "path" in cols else None))
        if key is None:
            raise ValidationError(f"{what} file {p.name} needs an 'index' or 'id' column beside 'label'")
        pos = {str(s): i for i, s in enumerate(ids)} if key != "index" and ids is not None else None
        rows = [r for r in rows if (r["label"] or "").strip() != ""]
        texts = [r["label"].strip() for r in rows]
        texts = [str(int(float(t))) if re.fullmatch(r"[+-]?\d+(\.0*)?", t) else t for t in texts]
        values, names = _label_values(texts, classes)
        for r, value in zip(rows, values):
            try:
                row = int(r[key]) if key == "index" else pos[str(r[key])]  # type: ignore[index]
            except (KeyError, TypeError):
                raise ValidationError(f"{what} file {p.name}: {key} {r[key]!r} is not a row of the feature file") from None
            except ValueError:
                raise ValidationError(f"{what} file {p.name}: bad row {key}={r[key]!r}") from None
            if not 0 <= row < n_rows:
                raise ValidationError(f"{what} file {p.name}: index {row} out of range for {n_rows} rows")
            out[row] = value
        return out, names
    names = list(classes) if classes else None
    if name.endswith(".npy"):
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValidationError(f"cannot read {what} file {p.name}: {exc}") from None
    elif name.endswith(".txt"):
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        tokens = " ".join(lines).split()
        if all(re.fullmatch(r"[+-]?\d+", t) for t in tokens):
            arr = np.asarray([int(t) for t in tokens], dtype=np.int64)
        else:  # one class name per line
            values, names = _label_values(lines, classes)
            arr = np.asarray(values, dtype=np.int64)
    else:
        raise ValidationError(f"{what} file {p.name}: use .npy, .txt (class ids or names) or .csv (index/id, label)")
    arr = _int_labels(arr, f"{what} file {p.name}")
    if len(arr) == n_rows:
        return arr, names
    if selection is not None and len(arr) == len(selection):
        out[selection] = arr
        return out, names
    extra = f" or {len(selection)} (the selected samples)" if selection is not None else ""
    raise ValidationError(f"{what} file {p.name} holds {len(arr)} labels; expected {n_rows} (the rows){extra}")
