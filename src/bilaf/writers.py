"""Selection writers for labeling teams: JSON, CSV, Parquet, Label Studio tasks, a list of paths.

Every writer is atomic: it writes a temporary file beside the target and
renames it into place only when it is complete, so a crash never leaves a
half-written file. :func:`write_outputs` extends this to several files at
once: all of them are written first, then all are renamed, and if any fails
none is left behind.

Formats (chosen by the file suffix, or named):

``json``
    A plain JSON list of pool indices in selection order (the published
    BiLAF/ActiveFT code's format).
``csv`` / ``parquet``
    One row per pick: ``rank, index, id, path, role, pseudo_class, score,
    opponent_class`` (role is ``core``, ``boundary``, ``labeled`` or
    ``selected``; score is BiLAF's boundary score at the time of the pick,
    lower = nearer a boundary, empty for cores).
``labelstudio``
    A Label Studio tasks file: ``[{"data": {"image": PATH, "bilaf_rank": ...,
    "bilaf_role": ..., "bilaf_score": ..., ...}, "predictions":
    [{"model_version": ..., "score": PRIORITY, "result": []}]}, ...]``. Every
    task has exactly one (empty) prediction whose score is the pick's
    priority ``1 - rank / n_picks`` (see :func:`labelstudio_priority`): in
    (0, 1] as Label Studio requires, highest for bilaf's first pick, so
    sorting the Data Manager by prediction score, descending, gives bilaf's
    order for every method and role. The raw per-pick score (BiLAF's
    boundary score, null for cores) and the role stay in ``data``. Suffix
    ``.labelstudio.json``.
``paths``
    One file path (or id) per line, in selection order; suffix ``.txt``.

:func:`read_selection` reads every one of these formats back (it lives in :mod:`bilaf.selection_reader`
and is importable from here too).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import ValidationError
from .result import SelectionResult, atomic_path
from .selection_reader import read_selection
from .utils.files import PathLike, default_mode

__all__ = [
    "FORMATS",
    "labelstudio_priority",
    "COLUMNS",
    "format_for_path",
    "selection_records",
    "write_selection",
    "write_outputs",
    "check_output_path",
    "read_selection",
]


FORMATS = ("json", "csv", "parquet", "labelstudio", "paths")
COLUMNS = ("rank", "index", "id", "path", "role", "pseudo_class", "score", "opponent_class")

_SUFFIXES = {".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".txt": "paths",
             ".lst": "paths"}


def format_for_path(path: PathLike, fmt: Optional[str] = None) -> str:
    """The output format of ``path``: ``fmt`` when given, else from the suffix.

    ``*.labelstudio.json`` is a Label Studio tasks file, ``*.json`` a plain
    list of indices, ``*.csv`` CSV, ``*.parquet``/``*.pq`` Parquet, ``*.txt``
    a list of file paths.

    Raises
    ------
    ValueError
        For an unknown format or suffix.
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValidationError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = Path(path).name.lower()
    if name.endswith(".labelstudio.json") or name.endswith(".ls.json"):
        return "labelstudio"
    suffix = Path(name).suffix
    if suffix not in _SUFFIXES:
        raise ValidationError(f"cannot tell the output format of {str(path)!r} from its suffix; use .json, .csv, "
                         ".parquet, .txt or .labelstudio.json")
    return _SUFFIXES[suffix]


def check_output_path(path: PathLike, fmt: Optional[str] = None) -> str:
    """Check, before any work, that ``path`` can be written in its format; return the format."""
    fmt = format_for_path(path, fmt)
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    if p.is_dir():
        raise ValidationError(f"output path is a folder: {p}")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write to the output folder {parent}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (only checks that it is installed)
        except ImportError:
            raise ValidationError("Parquet output needs pyarrow: pip install 'bilaf[io]'") from None
    return fmt


def selection_records(result: SelectionResult, ids: Optional[Sequence[Any]] = None,
                      paths: Optional[Sequence[Any]] = None, path_prefix: str = "") -> List[Dict[str, Any]]:
    """One dict per pick, in selection order, with the columns of :data:`COLUMNS`.

    Parameters
    ----------
    result : SelectionResult
    ids : sequence of str, optional
        Stable id of every pool row (default: the row number).
    paths : sequence of str, optional
        File path of every pool row (default: empty).
    path_prefix : str, default=""
        Prepended to every non-empty path (a folder, a URL or a Label Studio
        ``/data/local-files/?d=`` prefix).
    """
    recs = result.records(ids=ids, paths=paths)
    if path_prefix:
        for r in recs:
            if r["path"]:
                r["path"] = _join_prefix(path_prefix, r["path"])
    return recs


def _join_prefix(prefix: str, path: str) -> str:
    if prefix.endswith(("/", "=", ":")) or path.startswith("/"):
        return prefix + path
    return prefix + "/" + path


# -- the individual formats (each writes a complete file at a given path) -----------------

def _write_json(result: SelectionResult, records: List[Dict[str, Any]], path: Path, **_: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result.to_list(), fh)
        fh.write("\n")


def _write_csv(result: SelectionResult, records: List[Dict[str, Any]], path: Path, **_: Any) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in records:
            w.writerow({**r, "score": "" if r["score"] is None else repr(r["score"])})


def _write_parquet(result: SelectionResult, records: List[Dict[str, Any]], path: Path, **_: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "rank": pa.array([r["rank"] for r in records], pa.int64()),
        "index": pa.array([r["index"] for r in records], pa.int64()),
        "id": pa.array([r["id"] for r in records], pa.string()),
        "path": pa.array([r["path"] for r in records], pa.string()),
        "role": pa.array([r["role"] for r in records], pa.string()),
        "pseudo_class": pa.array([r["pseudo_class"] for r in records], pa.int64()),
        "score": pa.array([r["score"] for r in records], pa.float64()),
        "opponent_class": pa.array([r["opponent_class"] for r in records], pa.int64()),
    })
    md = {b"bilaf.method": str(result.method).encode(), b"bilaf.n_samples": str(result.n_samples).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **md})
    pq.write_table(table, str(path))


def _write_paths(result: SelectionResult, records: List[Dict[str, Any]], path: Path, **_: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r["path"] or r["id"]) + "\n")


def labelstudio_priority(rank: int, n_picks: int) -> float:
    """The Label Studio prediction score of the pick at ``rank`` (0-based) of ``n_picks``: ``1 - rank / n_picks``.

    In (0, 1] and strictly decreasing with the rank, so a descending sort by
    prediction score is bilaf's selection order.
    """
    if n_picks < 1 or not 0 <= rank < n_picks:
        raise ValidationError(f"rank {rank} is out of range for {n_picks} picks")
    return 1.0 - rank / n_picks


def _write_labelstudio(result: SelectionResult, records: List[Dict[str, Any]], path: Path, *,
                       data_key: str = "image", model_version: Optional[str] = None,
                       texts: Optional[Mapping[int, str]] = None, **_: Any) -> None:
    if model_version is None:
        from . import __version__

        model_version = f"bilaf-{__version__}-{result.method or 'selection'}"
    tasks = []
    if texts is None and records and all(not r["path"] for r in records) and all(
            r["id"] == str(r["index"]) for r in records):
        warnings.warn(f"the features have no ids or paths: each Label Studio task's {data_key!r} holds a row "
                      "number, not a file (give the features ids, e.g. a <name>_ids.txt beside a .npy)",
                      UserWarning, stacklevel=3)
    for r in records:
        value = texts[r["index"]] if texts is not None and r["index"] in texts else (r["path"] or r["id"])
        data = {
            data_key: value,
            "bilaf_rank": r["rank"],
            "bilaf_index": r["index"],
            "bilaf_id": r["id"],
            **({"bilaf_path": r["path"]} if texts is not None and r["path"] else {}),
            "bilaf_role": r["role"],
            "bilaf_score": r["score"],
            "bilaf_pseudo_class": r["pseudo_class"],
            "bilaf_opponent_class": r["opponent_class"],
        }
        # Label Studio validates 0 <= score <= 1 and sorts tasks by it: the pick's priority
        tasks.append({"data": data, "predictions": [{"model_version": model_version,
                                                     "score": labelstudio_priority(r["rank"], len(records)),
                                                     "result": []}]})
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tasks, fh, indent=1)
        fh.write("\n")


_WRITERS = {"json": _write_json, "csv": _write_csv, "parquet": _write_parquet, "labelstudio": _write_labelstudio,
            "paths": _write_paths}


def write_selection(result: SelectionResult, path: PathLike, fmt: Optional[str] = None, *,
                    ids: Optional[Sequence[Any]] = None, paths: Optional[Sequence[Any]] = None,
                    path_prefix: str = "", data_key: str = "image", model_version: Optional[str] = None,
                    texts: Optional[Mapping[int, str]] = None) -> Path:
    """Write a selection to one file, atomically.

    Parameters
    ----------
    result : SelectionResult
        The selection.
    path : str or path-like
        Target file; its suffix picks the format unless ``fmt`` is given.
    fmt : {"json", "csv", "parquet", "labelstudio", "paths"}, optional
        The format (default: from the suffix, see :func:`format_for_path`).
    ids, paths : sequence of str, optional
        Id and file path of every pool row (e.g. ``FeatureSet.ids``).
    path_prefix : str, default=""
        Prepended to every path (e.g. an image root or URL).
    data_key : str, default="image"
        Label Studio only: the task data field (``"image"``, ``"text"``...).
    model_version : str, optional
        Label Studio only: the predictions' model version.
    texts : mapping of int to str, optional
        Label Studio only: the text of each picked pool index, put in the
        task's ``data_key`` field instead of the path (text pools).

    Returns
    -------
    pathlib.Path
        The written file.

    Warns
    -----
    UserWarning
        Label Studio only: when there are neither ids nor paths (nor
        ``texts``), so each task's ``data_key`` field holds a row number.

    Examples
    --------
    >>> import numpy as np, bilaf, tempfile, os
    >>> res = bilaf.select(np.random.default_rng(0).normal(size=(100, 4)), 5, method="random", random_state=0)
    >>> d = tempfile.mkdtemp()
    >>> _ = write_selection(res, os.path.join(d, "picks.csv"))
    """
    return write_outputs(result, [(path, fmt)], ids=ids, paths=paths, path_prefix=path_prefix,
                         data_key=data_key, model_version=model_version, texts=texts)[0]


def write_outputs(result: SelectionResult, targets: Sequence[Union[PathLike, Tuple[PathLike, Optional[str]]]], *,
                  ids: Optional[Sequence[Any]] = None, paths: Optional[Sequence[Any]] = None,
                  path_prefix: str = "", data_key: str = "image",
                  model_version: Optional[str] = None, texts: Optional[Mapping[int, str]] = None,
                  extra_files: Sequence[Tuple[PathLike, Callable[[Path], None]]] = ()) -> List[Path]:
    """Write a selection to several files, all or none.

    Each target is a path or a ``(path, format)`` pair. Every file is first
    written to a temporary file beside its target; only when all are complete
    are they renamed into place. On any error no target is created or changed.

    Parameters
    ----------
    result : SelectionResult
    targets : sequence of path or (path, format)
    ids, paths, path_prefix, data_key, model_version, texts
        See :func:`write_selection`.
    extra_files : sequence of (path, callable)
        Further files written in the same all-or-none step: each callable
        gets a temporary path to write (after the selection files are
        written; e.g. the manifest).

    Returns
    -------
    list of pathlib.Path
    """
    plan: List[Tuple[Path, str]] = []
    for t in targets:
        p, f = (t if isinstance(t, tuple) else (t, None))
        plan.append((Path(p), check_output_path(p, f)))
    seen = set()
    for p in [q for q, _ in plan] + [Path(q) for q, _ in extra_files]:
        key = os.path.abspath(p)
        if key in seen:
            raise ValidationError(f"output {p} is given twice")
        seen.add(key)
    records = selection_records(result, ids=ids, paths=paths, path_prefix=path_prefix)
    # write every temporary file inside nested atomic_path contexts: all are renamed on success,
    # all are removed on failure (the innermost renames first, so a rename failure can still leave
    # earlier targets; renames within one folder do not fail in practice)
    with ExitStack() as stack:
        for p, f in plan:
            tmp = stack.enter_context(atomic_path(p))
            _WRITERS[f](result, records, tmp, data_key=data_key, model_version=model_version, texts=texts)
            _finish(tmp)
        for p, render in extra_files:
            tmp = stack.enter_context(atomic_path(p))
            render(tmp)
            _finish(tmp)
    return [p for p, _ in plan]


def _finish(path: Path) -> None:
    """Flush a finished temporary file to disk and give it ordinary permissions (mkstemp makes it 0600)."""
    try:
        os.chmod(path, default_mode())
    except OSError:  # pragma: no cover
        pass
    _fsync(path)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
