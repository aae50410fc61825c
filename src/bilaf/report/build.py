"""The content of a selection report: summary, map, picks, pseudo-classes, removed noise.

Everything here works on arrays and the manifest; it knows nothing of HTML or
of where the images are (see :mod:`bilaf.report.samples` and
:mod:`bilaf.report.html`).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ValidationError
from ..result import SelectionResult

__all__ = ["ROLES", "load_selection", "as_result", "build_report_data"]

ROLES = ("core", "boundary", "labeled", "selected")
MAP_SCALE = 1000  # map coordinates are stored as integers in [0, MAP_SCALE]

SCORE_NAMES = {
    "bilaf": ("boundary score", "lower = nearer the boundary between two pseudo-classes"),
    "typiclust": ("typicality", "higher = more typical of its cluster"),
}


# -- reading a selection back into a SelectionResult --------------------------------------------

def load_selection(features: Any, selection_path: Union[str, Path], manifest_path: Union[str, Path, None] = None,
                   *, check_hash: bool = True) -> Tuple[SelectionResult, Optional[Dict[str, Any]]]:
    """Read a selection file and its manifest back into a :class:`~bilaf.result.SelectionResult`.

    Parameters
    ----------
    features : FeatureSet
        The features the selection was made from (ids turn paths into indices).
    selection_path : path
        Any selection file :func:`bilaf.writers.read_selection` reads.
    manifest_path : path, optional
        Default: ``<selection>.manifest.json`` beside it, when present.
    check_hash : bool, default=True
        Refuse features whose hash differs from the manifest's.

    Returns
    -------
    result : SelectionResult
        Roles, pseudo-classes, scores and opponents as far as the file and the
        manifest record them.
    manifest : dict or None
    """
    from ..manifest import decode_labels, features_sha256, find_manifest, read_manifest
    from ..validation import check_indices
    from ..writers import read_selection

    n = len(features)
    has_ids = features.ids != [str(i) for i in range(n)]
    sel = read_selection(selection_path, ids=features.ids if has_ids else None)
    idx = check_indices(sel["indices"], n, name=f"selection {Path(selection_path).name}")
    man_path = Path(manifest_path) if manifest_path is not None else find_manifest(selection_path)
    man = read_manifest(man_path) if man_path is not None else None
    pseudo = None
    cores = np.empty(0, np.int64)
    labeled = np.empty(0, np.int64)
    if man is not None:
        if int(man["pool_size"]) != n:
            raise ValidationError(f"the manifest {man_path.name} is for a pool of {man['pool_size']}, "
                             f"the features hold {n}")
        if check_hash and features_sha256(features.features) != man["features"]["sha256"]:
            raise ValidationError(f"the features differ from those the manifest {man_path.name} records")
        pseudo = decode_labels(man.get("pseudo_labels"))
        cores = np.asarray(man.get("result", {}).get("core_indices", []), dtype=np.int64)
        if man.get("labeled"):
            labeled = np.asarray(man["labeled"]["indices"], dtype=np.int64)
    roles = sel.get("roles")
    if roles is not None:
        roles = np.asarray(roles, dtype=object)
        cores = idx[roles == "core"]
        boundary = idx[roles == "boundary"]
        labeled = idx[roles == "labeled"]
    else:
        boundary = idx[~np.isin(idx, cores) & ~np.isin(idx, labeled)] if len(cores) and man is not None \
            and man.get("method") == "bilaf" else np.empty(0, np.int64)
    b = len(idx)
    pick_classes = sel.get("pseudo_class")
    if pick_classes is None and pseudo is not None:
        pick_classes = pseudo[idx]
    params = dict(man.get("params", {})) if man is not None else {}
    if len(labeled):
        params["labeled_indices"] = labeled
    res = SelectionResult(
        indices=idx, method=str(man.get("method", "")) if man is not None else "", core_indices=cores,
        boundary_indices=boundary, pseudo_labels=pseudo, scores=sel.get("score"),
        opponents=sel.get("opponent_class"), pick_classes=pick_classes, n_samples=n, params=params,
        timings=man.get("timings", {}) if man is not None else {},
        notes=list(man.get("result", {}).get("notes", [])) if man is not None else [])
    if res.scores.shape != (b,) or res.opponents.shape != (b,) or res.pick_classes.shape != (b,):
        raise ValidationError(f"{Path(selection_path).name}: its columns do not match its {b} rows")
    return res, man


def as_result(selection: Any, n: int) -> SelectionResult:
    """A :class:`~bilaf.result.SelectionResult` as it is, or plain indices made into one."""
    from ..validation import check_indices

    if isinstance(selection, SelectionResult):
        if selection.n_samples and selection.n_samples != n:
            raise ValidationError(f"the selection is for a pool of {selection.n_samples}, the features hold {n}")
        check_indices(selection.indices, n, name="selection")
        return selection
    return SelectionResult(indices=check_indices(selection, n, name="selection"), n_samples=n)


# -- the report's content -----------------------------------------------------------------------

def _palette(k: int, random_state: int) -> List[str]:
    """``k`` distinct colours as ``#rrggbb``: bilaf.plot's palette, or spread hues without matplotlib."""
    try:
        from ..plot import class_colors

        rgb = class_colors(k, random_state)
    except ValueError:  # matplotlib missing
        phi = 0.618033988749895
        rgb = np.asarray([colorsys.hls_to_rgb((i * phi) % 1.0, 0.45, 0.75) for i in range(k)]).reshape(-1, 3)
    return ["#%02x%02x%02x" % tuple(int(round(255 * float(v))) for v in c) for c in rgb]


def _quantize(xy: np.ndarray) -> Tuple[List[int], List[int]]:
    lo = xy.min(axis=0)
    span = np.maximum(xy.max(axis=0) - lo, 1e-12)
    q = np.rint((xy - lo) / span * MAP_SCALE).astype(np.int64)
    return q[:, 0].tolist(), (MAP_SCALE - q[:, 1]).tolist()  # y grows downwards on screen


def _flat_timings(t: Any, prefix: str = "") -> List[Tuple[str, float]]:
    out: List[Tuple[str, float]] = []
    if isinstance(t, dict):
        for k, v in t.items():
            if isinstance(v, dict):
                out.extend(_flat_timings(v, f"{prefix}{k} / "))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append((f"{prefix}{k}", float(v)))
    return out


def _majority(pseudo: np.ndarray, truth: np.ndarray, k: int) -> Tuple[List[int], List[float]]:
    """Per pseudo-class, the most common known true label and its share (-1, 0 when none)."""
    ok = (pseudo >= 0) & (truth >= 0)
    top = [-1] * k
    share = [0.0] * k
    if not ok.any():
        return top, share
    n_lab = int(truth[ok].max()) + 1
    keys, counts = np.unique(pseudo[ok] * n_lab + truth[ok], return_counts=True)
    cls, lab = keys // n_lab, keys % n_lab
    totals = np.bincount(pseudo[ok], minlength=k)
    order = np.lexsort((-counts, cls))  # by class, largest count first
    seen = set()
    for j in order:
        c = int(cls[j])
        if c in seen:
            continue
        seen.add(c)
        top[c] = int(lab[j])
        share[c] = round(float(counts[j]) / float(totals[c]), 3)
    return top, share


def _num(v: float) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else float(np.format_float_positional(v, 5, trim="-"))


def build_report_data(X: Any, result: SelectionResult, *, ids: Optional[Sequence[str]] = None,
                      labels: Optional[np.ndarray] = None, class_names: Optional[Sequence[str]] = None,
                      manifest: Optional[Dict[str, Any]] = None, projection: str = "pca",
                      max_points: Optional[int] = 5000, n_removed: int = 48, random_state: int = 0,
                      title: Optional[str] = None) -> Dict[str, Any]:
    """Everything the report shows, as a JSON-ready dict (no thumbnails yet).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Pool features (for the map and the hash).
    result : SelectionResult
    ids : sequence of str, optional
        Row ids (default: row numbers).
    labels : array of int, optional
        True labels (-1 = unknown), shown only as an optional benchmark view.
    class_names : sequence of str, optional
        Names of the true labels.
    manifest : dict, optional
        The selection's manifest (:func:`bilaf.manifest.read_manifest`).
    projection : {"pca", "tsne", "umap"}
        See :func:`bilaf.plot.project_2d`.
    max_points : int or None, default=5000
        Most pool samples drawn on the map besides the picks.
    n_removed : int, default=48
        Most samples removed as noise that are shown (a random sample).
    random_state : int, default=0
        Seeds the map's subsample, its projection and the removed sample.
    title : str, optional

    Returns
    -------
    dict
        With ``"rows"``: the pool rows whose thumbnail or text the page needs.
    """
    from ..manifest import features_sha256, indices_sha256
    from ..plot import _draw_rows, project_2d
    from ..kernels.tensors import to_numpy
    from ..validation import check_features

    X = to_numpy(check_features(X, name="features"))
    n = int(X.shape[0])
    if isinstance(n_removed, bool) or int(n_removed) < 0:
        raise ValidationError(f"n_removed must be a non-negative integer, got {n_removed!r}")
    idx = result.indices
    b = len(idx)
    roles = result.roles
    role_code = np.asarray([ROLES.index(r) if r in ROLES else 3 for r in roles], dtype=np.int64)
    pseudo = result.pseudo_labels
    if pseudo is not None:
        pseudo = np.asarray(pseudo, dtype=np.int64)
        if pseudo.shape != (n,):
            raise ValidationError(f"pseudo_labels must hold one value per pool sample ({n}), got shape {pseudo.shape}")
    pick_cls = np.asarray(result.pick_classes, dtype=np.int64)
    if pseudo is not None and (pick_cls < 0).all() and len(pick_cls):
        pick_cls = pseudo[idx]
    truth = None
    if labels is not None:
        truth = np.asarray(labels, dtype=np.int64)
        if truth.shape != (n,):
            raise ValidationError(f"labels must hold one value per pool sample ({n}), got shape {truth.shape}")
        if not (truth >= 0).any():
            truth = None
    rng = np.random.default_rng(random_state)
    man = manifest or {}

    # pseudo-classes: size, core, picks, majority true label
    k = 0
    if pseudo is not None and (pseudo >= 0).any():
        k = int(max(pseudo.max(), pick_cls.max() if b else -1)) + 1
    classes = None
    if k:
        sizes = np.bincount(pseudo[pseudo >= 0], minlength=k)
        core_of = np.full(k, -1, dtype=np.int64)
        for c_idx in result.core_indices:
            c = int(pseudo[int(c_idx)])
            if c >= 0 and core_of[c] < 0:
                core_of[c] = int(c_idx)
        n_picks = np.bincount(pick_cls[pick_cls >= 0], minlength=k)[:k]
        classes = {"n": k, "colors": _palette(k, random_state), "size": sizes.tolist(), "core": core_of.tolist(),
                   "picks": n_picks.tolist(), "without": np.flatnonzero(n_picks == 0).tolist()}
        if truth is not None:
            top, share = _majority(pseudo, truth, k)
            classes["top"], classes["share"] = top, share

    truth_info = None
    if truth is not None:
        n_lab = int(truth.max()) + 1
        names = [str(c) for c in class_names] if class_names is not None else []
        names = names + [str(c) for c in range(len(names), n_lab)]
        pick_truth = truth[idx]
        truth_info = {"names": names[:n_lab], "colors": _palette(n_lab, random_state),
                      "pool": np.bincount(truth[truth >= 0], minlength=n_lab).tolist(),
                      "picks": np.bincount(pick_truth[pick_truth >= 0], minlength=n_lab).tolist()}

    # the map
    rows = _draw_rows(n, idx, max_points, rng)
    xy = project_2d(np.asarray(X[rows], dtype=np.float32), projection, random_state=random_state)
    qx, qy = _quantize(xy)
    n_pool = len(rows) - b
    pool_rows = rows[:n_pool]
    pos = {int(r): i for i, r in enumerate(rows)}
    pick_pos = [pos[int(i)] for i in idx]
    mp: Dict[str, Any] = {"projection": projection, "n_pool": n - b, "drawn": n_pool,
                          "px": qx[:n_pool], "py": qy[:n_pool],
                          "kx": [qx[j] for j in pick_pos], "ky": [qy[j] for j in pick_pos]}
    if pseudo is not None:
        mp["pc"] = pseudo[pool_rows].tolist()
    if truth is not None:
        mp["pt"] = truth[pool_rows].tolist()

    # removed as noise: a random sample
    removed_all = np.flatnonzero(pseudo < 0) if pseudo is not None else np.empty(0, np.int64)
    shown = removed_all
    if len(removed_all) > n_removed:
        shown = np.sort(rng.choice(removed_all, size=int(n_removed), replace=False))

    picks: Dict[str, Any] = {"i": idx.tolist(), "r": role_code.tolist(), "c": pick_cls.tolist(),
                             "s": [_num(v) for v in result.scores], "o": result.opponents.tolist()}
    if truth is not None:
        picks["y"] = truth[idx].tolist()

    # summary
    params = man.get("params") or {k_: v for k_, v in result.params.items() if k_ != "labeled_indices"}
    derived = (man.get("result") or {}).get("derived") or {}
    method = result.method or str(man.get("method") or "") or "–"
    counts = {r: int((roles == r).sum()) for r in ROLES if (roles == r).any()}
    budget = man.get("budget", {}).get("requested")
    n_k = derived.get("n_cores_used") or params.get("n_cores") or (k or None)
    seed = man.get("seed", result.params.get("random_state"))
    feat_hash = (man.get("features") or {}).get("sha256") or features_sha256(X)
    man_hash = None
    if man.get("_path") and Path(man["_path"]).exists():
        man_hash = hashlib.sha256(Path(man["_path"]).read_bytes()).hexdigest()
    timings = _flat_timings(man.get("timings") or result.timings)
    summary = {
        "method": method, "pool": n, "n_picks": b, "budget": budget if budget is not None else b,
        "k": n_k, "seed": seed, "roles": counts, "n_removed": int(len(removed_all)),
        "timings": [[name, round(v, 4)] for name, v in timings],
        "hashes": [["features (sha256)", feat_hash], ["selected indices (sha256)", indices_sha256(idx)]]
        + ([["manifest file (sha256)", man_hash]] if man_hash else []),
        "params": {str(k_): v for k_, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None},
        "derived": {str(k_): v for k_, v in derived.items() if isinstance(v, (str, int, float, bool))},
        "created": man.get("created"), "command": man.get("command"), "versions": man.get("versions"),
        "notes": list(result.notes), "manifest": Path(man["_path"]).name if man.get("_path") else None,
    }
    score_name, score_hint = SCORE_NAMES.get(method, ("score", ""))
    wanted = set(idx.tolist()) | set(shown.tolist())
    if classes is not None:
        wanted |= {c for c in classes["core"] if c >= 0}
    id_list = list(ids) if ids is not None else None
    rows_needed = sorted(wanted)
    return {
        "title": title or (f"{method}: " if method != "–" else "") + f"{b:,} of {n:,} samples selected",
        "summary": summary, "score": {"name": score_name, "hint": score_hint}, "roles": list(ROLES),
        "classes": classes, "truth": truth_info, "picks": picks, "map": mp,
        "removed": {"n": int(len(removed_all)), "i": shown.tolist()},
        "ids": {str(r): (id_list[r] if id_list is not None else str(r)) for r in rows_needed},
        "rows": rows_needed,
    }
