"""Selection constraints: which samples may be picked, and near-duplicate removal, for every method.

:func:`constrained_select` wraps any selector: it restricts the pool to the
allowed samples (``candidates`` minus ``exclude``, then minus near-duplicates
when ``dedup`` is set), runs the selector on that sub-pool, and maps every
index of the result back to the full pool. Already-labeled samples (warm
start) always stay in the sub-pool: they count as chosen whatever the
constraints say, and the method picks the rest of the budget around them.

:func:`near_duplicates` finds the near-duplicates in one chunked pass whose
temporaries are bounded by a memory budget (no ``N x N`` matrix).
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Tuple

import numpy as np
import torch

from .errors import ValidationError, ValidationTypeError
from .kernels.chunks import DEFAULT_MEMORY_BUDGET
from .kernels.tensors import resolve_device, to_tensor
from .result import SelectionResult
from .validation import check_budget, check_features, check_indices, parse_memory_budget

__all__ = ["constrained_select", "near_duplicates", "allowed_pool"]

# similarities are float32: this much below the threshold still counts as reaching it (so 1.0 catches exact copies)
SIMILARITY_TOLERANCE = 1e-6
# selector parameters that hold pool indices (remapped to the sub-pool)
_INDEX_PARAMS = ("core_selector", "cores", "init")


def _check_dedup(dedup: Any) -> Optional[float]:
    if dedup is None or dedup is False:
        return None
    if isinstance(dedup, (bool, np.bool_)) or not isinstance(dedup, (int, float, np.floating, np.integer)):
        raise ValidationTypeError(f"dedup must be a cosine-similarity threshold in (0, 1], got {dedup!r}")
    t = float(dedup)
    if not np.isfinite(t) or t <= 0.0 or t > 1.0:
        raise ValidationError(f"dedup must be a cosine-similarity threshold in (0, 1], got {dedup!r}")
    return t


def near_duplicates(X: Any, threshold: float, *, order: Optional[Any] = None,
                    memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                    block_rows: Optional[int] = None, device: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """Near-duplicates of ``X`` by cosine similarity, greedily in a given order.

    Rows are visited in ``order``; a row is dropped when its cosine
    similarity to a row kept before it is at least ``threshold`` (computed in
    float32; within :data:`SIMILARITY_TOLERANCE` below counts, so 1.0 catches
    exact copies); otherwise it is kept. The result does not depend on the
    memory budget, except for similarities within float32 rounding of that
    limit.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    threshold : float in (0, 1]
        Cosine similarity at or above which two rows are duplicates (1.0:
        same direction only, up to float32 rounding).
    order : array-like of int, optional
        Row numbers of ``X`` in priority order (a permutation of a subset of
        the rows; default: all rows, in order). Rows not listed are ignored.
    memory_budget : str or int, default="1GB"
        Bound on the similarity blocks of each step.
    block_rows : int, optional
        Rows per block (default: the most that ``memory_budget`` allows).
    device : {"cpu", "cuda", "auto"} or None
        Where the similarities are computed (default: ``X``'s device for a
        tensor, else the CPU).

    Returns
    -------
    dropped : numpy.ndarray of int64
        Row numbers of the dropped rows, in visiting order.
    duplicate_of : numpy.ndarray of int64
        For each dropped row, the kept row it duplicates (the earliest kept
        row, in visiting order, at or above the threshold).

    Notes
    -----
    Memory: the kept rows (normalised, float32) plus blocks of
    ``memory_budget``. Time grows with ``n_samples x n_kept x n_features``.
    Zero rows have no direction: they are compared as they are (similarity 0
    to everything), so they are never dropped.
    """
    t = _check_dedup(threshold)
    if t is None:
        raise ValidationError("near_duplicates needs a threshold")
    X = check_features(X, min_samples=1, name="X")
    n, d = int(X.shape[0]), int(X.shape[1])
    order = np.arange(n, dtype=np.int64) if order is None else check_indices(order, n, name="order", allow_empty=True)
    budget = parse_memory_budget(memory_budget)
    if device is None:
        device = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    else:
        device = resolve_device(device)
    # block sizes: a chunk of rows against a piece of kept rows, float32
    step = max(1, int(np.sqrt(budget / 4 / 3)))
    step = min(step, max(1, budget // (4 * 3 * max(d, 1))))
    if block_rows is not None:
        step = int(block_rows)
        if step < 1:
            raise ValidationError(f"block_rows must be at least 1, got {block_rows!r}")
    kept_rows: list = []  # normalised float32 tensors, one per chunk
    kept_ids: list = []
    dropped, dup_of = [], []
    for start in range(0, len(order), step):
        rows = order[start:start + step]
        C = _unit_rows(X, rows, device)
        # the earliest kept row (in visiting order) at or above the threshold
        found = torch.zeros(len(rows), dtype=torch.bool, device=device)
        arg = torch.full((len(rows),), -1, dtype=torch.int64, device=device)
        for P, pid in zip(kept_rows, kept_ids):
            for s in range(0, P.shape[0], step):
                hit = (C @ P[s:s + step].T) >= t - SIMILARITY_TOLERANCE
                any_hit = hit.any(dim=1) & ~found
                first = hit.to(torch.uint8).argmax(dim=1)  # first True along the row
                arg = torch.where(any_hit, pid[s:s + step][first], arg)
                found |= any_hit
        is_dup = found.cpu().numpy()
        arg_np = arg.cpu().numpy()
        # within the chunk: greedy, in order, among the rows not yet dropped
        alive = np.flatnonzero(~is_dup)
        keep_local = np.zeros(len(rows), dtype=bool)
        if len(alive):
            S = (C[torch.as_tensor(alive, device=device)] @ C[torch.as_tensor(alive, device=device)].T).cpu().numpy()
            gone = np.zeros(len(alive), dtype=bool)
            for i in range(len(alive)):
                if gone[i]:
                    continue
                keep_local[alive[i]] = True
                later = np.flatnonzero((S[i, i + 1:] >= t - SIMILARITY_TOLERANCE) & ~gone[i + 1:]) + i + 1
                for j in later:
                    gone[j] = True
                    arg_np[alive[j]] = rows[alive[i]]
            is_dup = ~keep_local
        for k in np.flatnonzero(is_dup):
            dropped.append(int(rows[k]))
            dup_of.append(int(arg_np[k]))
        if keep_local.any():
            kept_rows.append(C[torch.as_tensor(np.flatnonzero(keep_local), device=device)])
            kept_ids.append(torch.as_tensor(rows[keep_local], device=device))
    # visiting order of the dropped rows
    pos = {int(r): i for i, r in enumerate(order)}
    srt = np.argsort([pos[r] for r in dropped], kind="stable") if dropped else np.empty(0, np.int64)
    return (np.asarray(dropped, dtype=np.int64)[srt] if dropped else np.empty(0, np.int64),
            np.asarray(dup_of, dtype=np.int64)[srt] if dropped else np.empty(0, np.int64))


def _unit_rows(X: Any, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        block = X[torch.as_tensor(rows, device=X.device)]
    else:
        block = np.asarray(X[rows])
    T = to_tensor(block, device, torch.float32)
    return torch.nn.functional.normalize(T, dim=1)


def allowed_pool(n_samples: int, *, candidates: Any = None, exclude: Any = None,
                 labeled: Any = None) -> np.ndarray:
    """The sorted pool indices that may be picked: ``candidates`` (default all) minus ``exclude``, plus ``labeled``."""
    if candidates is None:
        allowed = np.ones(n_samples, dtype=bool)
    else:
        cand = check_indices(candidates, n_samples, name="candidates", allow_empty=True)
        allowed = np.zeros(n_samples, dtype=bool)
        allowed[cand] = True
    if exclude is not None:
        allowed[check_indices(exclude, n_samples, name="exclude", allow_empty=True)] = False
    if labeled is not None:
        allowed[np.asarray(labeled, dtype=np.int64)] = True
    return np.flatnonzero(allowed).astype(np.int64)


def constrained_select(selector: Any, X: Any, budget: Any, *, labeled: Any = None, candidates: Any = None,
                       exclude: Any = None, dedup: Any = None,
                       memory_budget: Any = None) -> SelectionResult:
    """Run ``selector.select`` on the allowed part of the pool and map the result back.

    Parameters
    ----------
    selector : BaseSelector
        Any selector (or an object with ``select(X, budget, labeled=)``).
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        The whole pool.
    budget : int or float
        A count, or a fraction of the whole pool; already-labeled samples
        count towards it.
    labeled : array-like of int, optional
        Warm start: pool indices already labeled. They stay in the pool
        whatever ``candidates``, ``exclude`` and ``dedup`` say, and come first
        in the result.
    candidates : array-like of int, optional
        Only these pool indices may be picked (default: all).
    exclude : array-like of int, optional
        These pool indices are never picked.
    dedup : float in (0, 1], optional
        Before selecting, drop near-duplicates: a sample whose cosine
        similarity to an earlier kept sample (labeled samples first, then in
        pool order) is at least ``dedup``.
    memory_budget : str or int, optional
        Bound on the near-duplicate pass's blocks (default: the selector's
        ``memory_budget``, else 1GB). The pass runs on the selector's
        ``device``.

    Returns
    -------
    SelectionResult
        Indices into the whole pool. When any constraint is given,
        ``params["constraints"]`` records the pool sizes and, with ``dedup``,
        ``dedup_dropped`` and ``dedup_duplicate_of`` (pool indices); a note
        says how many samples were dropped.

    Raises
    ------
    ValueError
        When the budget exceeds the samples left to pick from.
    """
    t = _check_dedup(dedup)
    if candidates is None and exclude is None and t is None:
        return selector.select(X, budget, labeled=labeled)
    X = check_features(X, name="X")
    n = int(X.shape[0])
    count = check_budget(budget, n)
    lab = None
    if labeled is not None:
        lab = check_indices(labeled, n, name="labeled", allow_empty=True)
        if len(lab) == 0:
            lab = None
    pool = allowed_pool(n, candidates=candidates, exclude=exclude, labeled=lab)
    info: dict = {"pool_size": n, "allowed": int(len(pool))}
    notes = []
    if candidates is not None or exclude is not None:
        notes.append(f"constraints: {len(pool)} of {n} samples may be picked"
                     + (" (labeled samples included)" if lab is not None else ""))
    if t is not None:
        mb = memory_budget if memory_budget is not None else getattr(selector, "memory_budget", DEFAULT_MEMORY_BUDGET)
        # labeled samples first: they are kept, their duplicates dropped
        if lab is not None:
            order = np.concatenate([lab, pool[~np.isin(pool, lab)]])
        else:
            order = pool
        dev = getattr(selector, "device", None)
        dropped, dup_of = near_duplicates(X, t, order=order, memory_budget=mb,
                                          device=dev if isinstance(dev, (str, torch.device)) else None)
        if len(dropped):
            pool = np.setdiff1d(pool, dropped)
        info.update(dedup=t, dedup_dropped=dropped.tolist(), dedup_duplicate_of=dup_of.tolist())
        notes.append(f"dedup: dropped {len(dropped)} near-duplicate(s) (cosine similarity >= {t:g}) "
                     "before selecting")
    info["selected_from"] = int(len(pool))
    if count > len(pool):
        raise ValidationError(f"budget {count} exceeds the {len(pool)} samples left to pick from after the "
                         "candidates/exclude/dedup constraints")
    pos = np.full(n, -1, dtype=np.int64)
    pos[pool] = np.arange(len(pool))
    sub_lab = pos[lab] if lab is not None else None
    sel = _remap_index_params(selector, pos)
    if isinstance(X, torch.Tensor):
        Xs = X[torch.as_tensor(pool, device=X.device)]
    else:
        Xs = np.asarray(X[pool])
    if len(pool) < 2:
        raise ValidationError(f"only {len(pool)} sample(s) left to pick from after the candidates/exclude/dedup "
                         "constraints")
    sub = sel.select(Xs, count, labeled=sub_lab)
    if sel is not selector:
        for attr in ("result_", "indices_"):
            if hasattr(sel, attr):
                setattr(selector, attr, getattr(sel, attr))
    return _map_back(sub, pool, n, info, notes)


def _remap_index_params(selector: Any, pos: np.ndarray) -> Any:
    """A copy of ``selector`` whose index-valued parameters point into the sub-pool."""
    if not hasattr(selector, "get_params") or not hasattr(selector, "set_params"):
        return selector
    params = selector.get_params()
    change = {}
    for name in _INDEX_PARAMS:
        v = params.get(name)
        if v is None or isinstance(v, str):
            continue
        idx = check_indices(v, len(pos), name=name)
        p = pos[idx]
        if (p < 0).any():
            raise ValidationError(f"{name} holds pool index {int(idx[p < 0][0])}, which the candidates/exclude/dedup "
                             "constraints leave out")
        change[name] = p.tolist()
    if not change:
        return selector
    sel = copy.copy(selector)
    sel.set_params(**change)
    return sel


def _map_back(sub: SelectionResult, pool: np.ndarray, n: int, info: dict, notes: list) -> SelectionResult:
    m = lambda a: pool[np.asarray(a, dtype=np.int64)]  # noqa: E731 - sub-pool index -> pool index
    pseudo = None
    if sub.pseudo_labels is not None:
        pseudo = np.full(n, -1, dtype=np.int64)
        pseudo[pool] = sub.pseudo_labels
    params = dict(sub.params)
    if params.get("labeled_indices") is not None:
        params["labeled_indices"] = m(params["labeled_indices"]).tolist()
    for name in _INDEX_PARAMS:
        v = params.get(name)
        if v is not None and not isinstance(v, str):
            params[name] = m(v).tolist()
    params["constraints"] = info
    return SelectionResult(indices=m(sub.indices), method=sub.method, core_indices=m(sub.core_indices),
                           boundary_indices=m(sub.boundary_indices), pseudo_labels=pseudo, scores=sub.scores,
                           opponents=sub.opponents, pick_classes=sub.pick_classes, n_samples=n, params=params,
                           timings=dict(sub.timings), notes=list(sub.notes) + notes)
