"""The manifest beside every selection: what produced it, and how to produce it again.

A manifest is a small JSON file (``<selection>.manifest.json``) holding the
method, its parameters and seed, the budget, the already-labeled indices (warm
start), the package versions, the pool size and a SHA-256 hash of the feature
array, per-stage timings, and a hash of the selected indices. It also keeps
the pool's pseudo-labels (compressed) and the core indices, so that
``bilaf plot`` can draw any selection file without recomputing.

:func:`reproduce` (``bilaf select --manifest FILE`` calls it) runs the same
selection again and tells whether the indices are identical.

One module on purpose: the manifest's format is written (:func:`build_manifest`),
read (``recorded_*``) and replayed (:func:`reproduce`) here, so a change of
format touches one file; hashes and package versions are in ``provenance.py``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import platform
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ValidationError, ValidationTypeError
from .params import validate_params
from .provenance import features_sha256, indices_sha256, package_versions
from .result import SelectionResult, atomic_write
from .utils.files import PathLike

__all__ = [
    "MANIFEST_VERSION",
    "features_sha256",
    "indices_sha256",
    "package_versions",
    "build_manifest",
    "write_manifest",
    "read_manifest",
    "recorded_params",
    "recorded_labeled",
    "recorded_constraints",
    "constraints_entry",
    "manifest_path_for",
    "legacy_manifest_path_for",
    "manifest_matches",
    "find_manifest",
    "encode_labels",
    "decode_labels",
    "selector_from_manifest",
    "reproduce",
]

MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
# parameters that change how a selection is computed, not what it is
RUNTIME_PARAMS = ("verbose", "device", "memory_budget")


# -- pseudo-labels, compactly -------------------------------------------------------------------

def encode_labels(labels: Optional[np.ndarray]) -> Optional[Dict[str, Any]]:
    """Pack an int array (e.g. pseudo-labels) as zlib-compressed little-endian int32, base64."""
    if labels is None:
        return None
    arr = np.asarray(labels, dtype="<i4")
    return {"encoding": "int32-le+zlib+base64", "n": int(arr.shape[0]),
            "data": base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii")}


def decode_labels(packed: Optional[Dict[str, Any]]) -> Optional[np.ndarray]:
    """Inverse of :func:`encode_labels` (int64 array), or None."""
    if not packed:
        return None
    if packed.get("encoding") != "int32-le+zlib+base64":
        raise ValidationError(f"unknown label encoding {packed.get('encoding')!r} in manifest")
    arr = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype="<i4").astype(np.int64)
    if arr.shape[0] != int(packed["n"]):
        raise ValidationError("corrupt pseudo-labels in manifest")
    return arr


# -- building, writing, reading -----------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise ValidationTypeError(f"cannot record parameter value {v!r} ({type(v).__name__}) in a manifest")


def _round_timings(t: Any) -> Any:
    if isinstance(t, dict):
        return {k: _round_timings(v) for k, v in t.items()}
    return round(t, 4) if isinstance(t, float) else t


def build_manifest(result: SelectionResult, *, features_path: Optional[PathLike], features_hash: str,
                   features_shape: Sequence[int], features_dtype: str, budget: Any, seed: Any,
                   selector_params: Dict[str, Any], labeled: Optional[np.ndarray] = None,
                   labeled_path: Optional[PathLike] = None, timings: Optional[Dict[str, Any]] = None,
                   outputs: Sequence[Tuple[PathLike, str]] = (), command: Optional[Sequence[str]] = None,
                   extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Assemble a manifest (a JSON-ready dict) for a selection.

    Parameters
    ----------
    result : SelectionResult
        The selection.
    features_path : path or None
        The feature file (recorded as an absolute path).
    features_hash : str
        :func:`features_sha256` of the array as stored.
    features_shape, features_dtype
        Shape and dtype of the stored array.
    budget : str, int or float
        The budget as requested (e.g. ``"1%"``); the count used is ``len(result)``.
    seed : int or None
        The ``random_state``.
    selector_params : dict
        The selector's constructor parameters (``selector.get_params()``).
    labeled : array of int, optional
        Warm start: the already-labeled indices.
    labeled_path : path, optional
        The file they came from.
    timings : dict, optional
        Seconds per stage of the whole run (load, hash, selection stages, write).
    outputs : sequence of (path, format)
        The files the selection was written to.
    command : sequence of str, optional
        The command line.
    extra : dict, optional
        Anything else to record.

    Returns
    -------
    dict
    """
    params = {k: v for k, v in selector_params.items() if k != "random_state"}
    derived = {k: v for k, v in result.params.items() if k not in selector_params and k != "labeled_indices"}
    man: Dict[str, Any] = {
        "bilaf_manifest": MANIFEST_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "features": {
            "path": str(Path(features_path).resolve()) if features_path is not None else None,
            "sha256": features_hash,
            "hash_of": "raw array bytes, C order",
            "shape": [int(s) for s in features_shape],
            "dtype": str(features_dtype),
        },
        "pool_size": int(result.n_samples),
        "method": result.method,
        "seed": _jsonable(seed),
        "budget": {"requested": _jsonable(budget), "count": len(result)},
        "params": _jsonable(params),
        "labeled": None if labeled is None else {
            "path": str(Path(labeled_path).resolve()) if labeled_path is not None else None,
            "indices": [int(i) for i in labeled],
        },
        "versions": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "python_implementation": sys.implementation.name},
        "timings": _round_timings(_jsonable(timings or {})),
        "result": {
            "n_selected": len(result),
            "indices_sha256": indices_sha256(result.indices),
            "n_cores": int(len(result.core_indices)),
            "n_boundary": int(len(result.boundary_indices)),
            "core_indices": [int(i) for i in result.core_indices],
            "derived": _jsonable(derived),
            "notes": list(result.notes),
        },
        "outputs": [{"path": str(Path(p).resolve()), "format": f} for p, f in outputs],
        "pseudo_labels": encode_labels(result.pseudo_labels),
    }
    if extra:
        man.update(_jsonable(extra))
    return man


def write_manifest(manifest: Dict[str, Any], path: PathLike) -> Path:
    """Write a manifest as indented JSON, atomically."""
    path = Path(path)
    with atomic_write(path, encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    return path


def read_manifest(path: PathLike) -> Dict[str, Any]:
    """Read and check a manifest written by :func:`write_manifest`.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If it is not a bilaf manifest, or is of a newer version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not a bilaf manifest (not JSON: {exc})") from None
    if not isinstance(man, dict) or "bilaf_manifest" not in man:
        raise ValidationError(f"{path} is not a bilaf manifest (no 'bilaf_manifest' key)")
    if int(man["bilaf_manifest"]) > MANIFEST_VERSION:
        raise ValidationError(f"{path} is a manifest of version {man['bilaf_manifest']}; this bilaf reads "
                         f"version {MANIFEST_VERSION}")
    for key in ("features", "method", "budget", "params", "pool_size"):
        if key not in man:
            raise ValidationError(f"{path}: manifest lacks {key!r}")
    man["_path"] = str(path.resolve())
    return man


def manifest_path_for(selection_path: PathLike) -> Path:
    """``picks.csv`` -> ``picks.csv.manifest.json``: the manifest is named after the whole output file name.

    Outputs that share a stem (``r.csv`` and ``r.json``, written by two
    runs) thus never share a manifest. A manifest's own path is returned
    unchanged.
    """
    p = Path(selection_path)
    if p.name.lower().endswith(MANIFEST_SUFFIX):
        return p
    return p.with_name(p.name + MANIFEST_SUFFIX)


def legacy_manifest_path_for(selection_path: PathLike) -> Path:
    """Where earlier versions of bilaf put the manifest: ``picks.csv`` -> ``picks.manifest.json``."""
    p = Path(selection_path)
    name = p.name
    for compound in (".labelstudio.json", ".ls.json", MANIFEST_SUFFIX):
        if name.lower().endswith(compound):
            return p.with_name(name[: -len(compound)] + MANIFEST_SUFFIX)
    return p.with_name((p.stem if p.suffix else name) + MANIFEST_SUFFIX)


def find_manifest(selection_path: PathLike) -> Optional[Path]:
    """The manifest beside a selection file, if there is one (``<name>.manifest.json``, else the older
    ``<stem>.manifest.json``, which another output of the same stem may have written: check
    :func:`manifest_matches` before trusting it)."""
    for cand in (manifest_path_for(selection_path), legacy_manifest_path_for(selection_path)):
        if cand.exists() and cand != Path(selection_path):
            return cand
    return None


def manifest_matches(manifest: Dict[str, Any], indices: Any) -> bool:
    """Whether ``indices`` (a selection file's picks, in order) are the picks the manifest records."""
    want = manifest.get("result", {}).get("indices_sha256")
    return want is not None and indices_sha256(np.asarray(indices, dtype=np.int64)) == want


def features_location(manifest: Dict[str, Any]) -> Optional[Path]:
    """Where the manifest's feature file is now: its recorded path, else the same name beside the manifest."""
    rec = manifest.get("features", {}).get("path")
    if not rec:
        return None
    p = Path(rec)
    if p.exists():
        return p
    here = manifest.get("_path")
    if here:
        alt = Path(here).parent / p.name
        if alt.exists():
            return alt
    return p


# -- running it again ---------------------------------------------------------------------------

def recorded_params(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """The method's parameters a manifest records, checked against this version of bilaf."""
    from .selectors import get_selector_class

    cls = get_selector_class(manifest["method"])
    params = dict(manifest["params"])
    validate_params(cls, params, owner=f"the manifest's method {manifest['method']!r} (in this version of bilaf)")
    return params


def recorded_labeled(manifest: Dict[str, Any]) -> Optional[np.ndarray]:
    """The already-labeled pool indices a manifest records (None when none)."""
    lab = manifest.get("labeled")
    return np.asarray(lab["indices"], dtype=np.int64) if lab else None


def recorded_constraints(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """The constraints a manifest records: ``candidates`` and ``exclude`` (index arrays or None), ``dedup``
    (a threshold or None), and ``paths`` (the files they were read from, by name)."""
    rec = manifest.get("constraints") or {}
    out: Dict[str, Any] = {"candidates": None, "exclude": None, "dedup": None, "paths": {}}
    for key in ("candidates", "exclude"):
        if rec.get(key):
            out[key] = np.asarray(rec[key]["indices"], dtype=np.int64)
            out["paths"][key] = rec[key].get("path")
    if rec.get("dedup") is not None:
        out["dedup"] = float(rec["dedup"])
    return out


def constraints_entry(c: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest entry ``{"constraints": ...}`` for constraints as :func:`recorded_constraints` gives them
    (empty when none is set)."""
    if c["candidates"] is None and c["exclude"] is None and c["dedup"] is None:
        return {}
    rec: Dict[str, Any] = {"dedup": c["dedup"]}
    for key in ("candidates", "exclude"):
        p = c["paths"].get(key)
        rec[key] = None if c[key] is None else {"path": str(Path(p).resolve()) if p else None,
                                                "indices": [int(i) for i in c[key]]}
    return {"constraints": rec}


def selector_from_manifest(manifest: Dict[str, Any], **overrides: Any):
    """The selector a manifest describes, with ``overrides`` applied (e.g. ``device="cuda"``)."""
    from .selectors import get_selector_class

    params = recorded_params(manifest)
    params.update(overrides)
    params["random_state"] = overrides.get("random_state", manifest.get("seed"))
    return get_selector_class(manifest["method"])(**params)


_RECORDED: Any = object()


def reproduce(manifest: Union[PathLike, Dict[str, Any]], X: Any = None, *, check_hash: bool = True,
              selector: Any = None, budget: Optional[int] = None, labeled: Any = _RECORDED,
              candidates: Any = _RECORDED, exclude: Any = _RECORDED, dedup: Any = _RECORDED,
              **overrides: Any) -> Tuple[SelectionResult, bool]:
    """Run the selection a manifest records, and tell whether it matches.

    Parameters
    ----------
    manifest : path or dict
        A manifest file or a dict from :func:`read_manifest`.
    X : array-like, optional
        The features; default: load the manifest's feature file.
    check_hash : bool, default=True
        Refuse features whose hash differs from the recorded one.
    selector : estimator, optional
        Run this selector instead of the one the manifest describes (e.g. the
        same method on another engine, or with options changed).
    budget : int, optional
        Picks in all (default: the recorded count).
    labeled, candidates, exclude, dedup : optional
        Replace the recorded warm start and constraints (``None`` removes one).
    **overrides
        Selector parameters to change (``device``, ``memory_budget``...); not
        with ``selector``.

    Returns
    -------
    result : SelectionResult
    identical : bool
        Whether the indices equal the recorded selection's (same order).

    Raises
    ------
    ValueError
        If the features differ from the recorded ones (and ``check_hash``).
    """
    if not isinstance(manifest, dict):
        manifest = read_manifest(manifest)
    if X is None:
        from .features import FeatureSet

        loc = features_location(manifest)
        if loc is None:
            raise ValidationError("the manifest records no feature file; pass the features")
        X = FeatureSet.load(loc).features
    if check_hash:
        h = features_sha256(X)
        if h != manifest["features"]["sha256"]:
            raise ValidationError(f"the features' hash {h[:12]}... differs from the manifest's "
                                  f"{manifest['features']['sha256'][:12]}...")
    if selector is None:
        selector = selector_from_manifest(manifest, **overrides)
    elif overrides:
        raise ValidationTypeError(f"give either a selector or parameter overrides, not both ({sorted(overrides)})")
    con = recorded_constraints(manifest)
    from .constraints import constrained_select

    res = constrained_select(selector, X, int(manifest["budget"]["count"]) if budget is None else int(budget),
                             labeled=recorded_labeled(manifest) if labeled is _RECORDED else labeled,
                             candidates=con["candidates"] if candidates is _RECORDED else candidates,
                             exclude=con["exclude"] if exclude is _RECORDED else exclude,
                             dedup=con["dedup"] if dedup is _RECORDED else dedup)
    same = indices_sha256(res.indices) == manifest.get("result", {}).get("indices_sha256")
    return res, same
