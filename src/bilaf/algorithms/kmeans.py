"""K-Means for selection: Lloyd's in torch with a pruned assignment, a two-level variant for large ``k``,
k-means++ seeding, and scikit-learn's and faiss' k-means behind one call (:func:`kmeans_centers`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..errors import ValidationError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..kernels.distances import nearest_centers, nearest_distinct_samples
from ..kernels.scatter import scatter_rows
from ..utils.progress import progress
from .tracked_argmax import TrackedArgmax

__all__ = [
    "ALGORITHMS",
    "MINIBATCH_ABOVE",
    "TWO_LEVEL_FROM",
    "check_faiss",
    "kmeans_centers",
    "resolve_algorithm",
    "TwoLevel",
    "allocate_proportional",
    "two_level_kmeans",
    "lloyd_centers",
    "kmeans_plusplus",
]

#: Up to this many samples, ``algorithm="auto"`` runs flat Lloyd's (:func:`lloyd_centers`)
MINIBATCH_ABOVE = 100_000
#: Above ``MINIBATCH_ABOVE`` samples, ``algorithm="auto"`` runs the two-level k-means from this many clusters on
#: (scikit-learn's MiniBatchKMeans below): at N = 200,000 it was faster than MiniBatchKMeans and closer to flat
#: Lloyd's from 1,000 clusters on; at 300-500 clusters its inertia was 5-6% above MiniBatchKMeans' (docs/scale.md)
TWO_LEVEL_FROM = 1_000
#: The coarse level of the two-level k-means is fitted on a random subsample of
#: ``max(COARSE_MIN_ROWS, COARSE_ROWS_PER_CLUSTER * n_coarse)`` rows (every row when the pool is smaller)
COARSE_MIN_ROWS = 100_000
COARSE_ROWS_PER_CLUSTER = 500
#: The k-means flavours :func:`kmeans_centers` runs
ALGORITHMS = ("auto", "lloyd", "twolevel", "full", "minibatch", "faiss")


def check_faiss(algorithm: str) -> None:
    """``algorithm="faiss"`` needs faiss installed: say how to get it."""
    if algorithm == "faiss":
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise ValidationError("{setting} needs faiss: pip install 'bilaf[faiss]'",
                                  setting=("algorithm", "faiss")) from None


def kmeans_centers(X: torch.Tensor, k: int, rng: np.random.Generator, *, algorithm: str = "auto", n_init: int = 1,
                   max_iter: int = 100, verbose: bool = False, memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """``k`` centroids of the rows of ``X`` (numpy float32, shape (k, d)).

    ``algorithm`` is one of :data:`ALGORITHMS`: ``"lloyd"`` (:func:`lloyd_centers`), ``"twolevel"``
    (:func:`two_level_kmeans`), ``"full"`` and ``"minibatch"`` (scikit-learn's ``KMeans`` and
    ``MiniBatchKMeans``, ``n_init`` restarts), ``"faiss"`` (``faiss.Kmeans``), or ``"auto"``
    (:func:`resolve_algorithm`). One seed for the chosen algorithm is drawn from ``rng``.
    """
    seed = int(rng.integers(0, 2**31 - 1))
    n = X.shape[0]
    algorithm = resolve_algorithm(algorithm, n, k)
    if algorithm == "lloyd":
        return lloyd_centers(X, k, seed, max_iter=max_iter, memory_budget=memory_budget, verbose=verbose)
    if algorithm == "twolevel":
        return two_level_kmeans(X, k, seed, max_iter=max_iter, memory_budget=memory_budget, verbose=verbose).centers
    A = X.detach().to("cpu", torch.float32).numpy()
    if algorithm == "faiss":
        import faiss

        km = faiss.Kmeans(A.shape[1], k, niter=max_iter, nredo=n_init, seed=seed, verbose=verbose,
                          max_points_per_centroid=max(256, (n + k - 1) // k))
        km.train(np.ascontiguousarray(A))
        return km.centroids
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates: fewer distinct points than clusters
        if algorithm == "minibatch":
            km = MiniBatchKMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed,
                                 batch_size=max(4096, 3 * k), compute_labels=False)
        else:
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
        km.fit(A)
    return km.cluster_centers_.astype(np.float32)


def resolve_algorithm(algorithm: str, n: int, k: int) -> str:
    """``"auto"`` resolved: ``"lloyd"`` up to 100,000 samples, else ``"twolevel"`` for ``k >= 1000``, else
    ``"minibatch"``."""
    if algorithm != "auto":
        return algorithm
    if n <= MINIBATCH_ABOVE:
        return "lloyd"
    return "twolevel" if k >= TWO_LEVEL_FROM else "minibatch"


@dataclass
class TwoLevel:
    """A two-level k-means: ``centers`` (k, d), the coarse cluster of each centre and of each row."""

    centers: np.ndarray
    center_group: np.ndarray
    row_group: np.ndarray

    def nearest_members(self, X: torch.Tensor, *, dtype: torch.dtype = torch.float32,
                        memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
        """For each centre, the nearest row of its own coarse cluster not taken by an earlier centre of it."""
        out = np.empty(len(self.centers), dtype=np.int64)
        order = np.argsort(self.row_group, kind="stable")
        bounds = np.searchsorted(self.row_group[order], np.arange(int(self.center_group.max(initial=-1)) + 2))
        for g in np.unique(self.center_group):
            rows = order[bounds[g]:bounds[g + 1]]
            which = np.flatnonzero(self.center_group == g)
            sub = X[torch.as_tensor(rows, device=X.device)]
            pos = nearest_distinct_samples(sub, torch.as_tensor(self.centers[which], device=X.device),
                                           metric="euclidean", dtype=dtype, memory_budget=memory_budget)
            out[which] = rows[pos]
        return out


def allocate_proportional(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` into integer shares proportional to ``sizes`` (largest remainder, ties to the lower index),
    each share at most its size and at least 1 where the size is positive (when ``k`` allows).

    Not :func:`bilaf.method.budget.split_budget`, BiLAF's split of its budget among pseudo-classes: that is the
    published rule (leftovers to the smallest allocation, which favours small pseudo-classes) and assumes no
    empty class; here the shares should follow the sizes as closely as integers allow.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if k > int(sizes.sum()):
        raise ValueError(f"cannot split {k} among groups holding {int(sizes.sum())} rows")
    share = np.zeros(len(sizes), dtype=np.int64)
    pos = np.flatnonzero(sizes > 0)
    if k >= len(pos):
        share[pos] = 1
    left = k - int(share.sum())
    while left > 0:
        room = sizes - share
        open_ = room > 0
        quota = np.where(open_, sizes, 0).astype(np.float64)
        exact = quota / quota.sum() * left
        add = np.minimum(np.floor(exact).astype(np.int64), room)
        if add.sum() == 0:  # hand out one each by the largest remainder
            rem = np.where(open_, exact - np.floor(exact), -1.0)
            top = np.lexsort((np.arange(len(sizes)), -rem))[:left]
            add = np.zeros_like(share)
            add[top[open_[top]]] = 1
        share += add
        left = k - int(share.sum())
    return share


def two_level_kmeans(X: torch.Tensor, k: int, seed: int, *, n_coarse: Optional[int] = None, max_iter: int = 100,
                     memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> TwoLevel:
    """K-Means in two levels, for ``k`` too large for flat Lloyd's on the whole pool.

    Lloyd's (:func:`lloyd_centers`) first finds ``n_coarse`` coarse centres
    (default ``ceil(sqrt(k))``) on a random subsample of
    ``max(100,000, 500 n_coarse)`` rows (the whole pool when smaller); each
    row of the pool goes to its nearest coarse centre. Each coarse cluster
    then gets a share of the ``k`` centres proportional to its size
    (:func:`allocate_proportional`: largest remainder, at least one each, at
    most its size) and Lloyd's runs on its rows alone. One iteration costs about ``N * (n_coarse + k / n_coarse)``
    distance evaluations, ``2 N sqrt(k)`` at the default, against ``N * k``
    for flat Lloyd's; the price is that a centre only sees its own coarse
    cluster's rows.

    Returns
    -------
    TwoLevel
    """
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    k1 = int(n_coarse) if n_coarse is not None else int(math.ceil(math.sqrt(k)))
    k1 = max(1, min(k1, k, n))
    A = X.detach().to(torch.float32)
    m = min(n, max(COARSE_MIN_ROWS, COARSE_ROWS_PER_CLUSTER * k1))
    sub = np.sort(rng.choice(n, size=m, replace=False)) if m < n else None
    S = A if sub is None else A[torch.as_tensor(sub, device=A.device)]
    coarse = torch.as_tensor(lloyd_centers(S, k1, int(rng.integers(0, 2**31 - 1)), max_iter=max_iter,
                                           memory_budget=memory_budget, verbose=verbose), device=A.device)
    del S
    row_group = nearest_centers(A, coarse, memory_budget=memory_budget)[1][:, 0].cpu().numpy()
    sizes = np.bincount(row_group, minlength=k1)
    share = allocate_proportional(sizes, k)
    order = np.argsort(row_group, kind="stable")
    bounds = np.searchsorted(row_group[order], np.arange(k1 + 1))
    centers = np.empty((k, A.shape[1]), dtype=np.float32)
    center_group = np.empty(k, dtype=np.int64)
    at = 0
    groups = [g for g in range(k1) if share[g] > 0]
    for g in progress(groups, desc="k-means (fine)", enabled=verbose and len(groups) > 1, unit="cluster"):
        rows = order[bounds[g]:bounds[g + 1]]
        sub = A[torch.as_tensor(rows, device=A.device)]
        centers[at:at + share[g]] = lloyd_centers(sub, int(share[g]), int(rng.integers(0, 2**31 - 1)),
                                                  max_iter=max_iter, memory_budget=memory_budget)
        center_group[at:at + share[g]] = g
        at += int(share[g])
    return TwoLevel(centers=centers, center_group=center_group, row_group=row_group)


def lloyd_centers(X: torch.Tensor, k: int, seed: int, *, max_iter: int = 100, tol: float = 1e-4,
                  init_size: Optional[int] = None, memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> np.ndarray:
    """K-Means by Lloyd's iterations in torch, from a k-means++ start.

    The start is greedy k-means++ (:func:`kmeans_plusplus`) on a random
    subsample of ``init_size`` rows (default ``max(20,000, 20 k)``; the whole
    pool when smaller). Each iteration assigns every row to its
    nearest centre, as the largest ``x.c - |c|^2 / 2`` (rows centred on the
    pool mean), through :class:`~bilaf.algorithms.tracked_argmax.TrackedArgmax`: only rows
    whose answer the centres' movement could have changed are recomputed,
    which makes late iterations cheap. Centres then move to their members'
    mean (an empty cluster keeps its centre). Stops when no row changes
    cluster, when the centres moved by at most ``tol`` times the pool's mean
    per-feature variance in total squared distance (scikit-learn's rule), or
    after ``max_iter`` iterations.

    Returns
    -------
    numpy.ndarray of float32, shape (k, d)
    """
    rng = np.random.default_rng(seed)
    A = X.detach().to(torch.float32)
    n = A.shape[0]
    mu = A.mean(dim=0)
    Z = A - mu
    tol_abs = float(tol) * float(torch.linalg.vector_norm(Z)) ** 2 / max(1, Z.numel())  # no float64 copy of Z
    m = min(n, max(20_000, 20 * k) if init_size is None else int(init_size))
    sub = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    S = Z[torch.as_tensor(sub, device=Z.device)]
    C = S[torch.as_tensor(kmeans_plusplus(S, k, rng), device=Z.device)].clone()
    Zx = torch.cat([Z, torch.ones((n, 1), dtype=Z.dtype, device=Z.device)], dim=1)
    del Z
    tracker = TrackedArgmax(Zx, memory_budget=memory_budget)
    ones = torch.ones(n, dtype=torch.float32, device=Zx.device)
    prev: Optional[torch.Tensor] = None
    bar = progress(range(max_iter), desc="k-means", enabled=verbose, unit="iter")
    for _ in bar:
        _, pos = tracker(torch.cat([C, -0.5 * (C * C).sum(dim=1, keepdim=True)], dim=1))
        if prev is not None and torch.equal(pos, prev):
            break
        prev = pos
        sums = scatter_rows(pos, ones, Zx, k)  # last column: the counts
        counts = sums[:, -1]
        filled = counts > 0
        new = C.clone()
        new[filled] = sums[filled, :-1] / counts[filled, None]
        shift = float(((new - C).double() ** 2).sum())
        C = new
        if verbose:
            bar.set_postfix_str(f"shift {shift / max(tol_abs, 1e-300):.3g} x tol")
        if shift <= tol_abs:
            break
    bar.close()
    return (C + mu).cpu().numpy().astype(np.float32)


def kmeans_plusplus(X: torch.Tensor, k: int, rng: np.random.Generator, n_trials: Optional[int] = None) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii 2007; the greedy form scikit-learn uses).

    The first seed is uniform; each next one is the best, by the resulting
    sum of squared distances to the nearest seed, of ``n_trials`` rows drawn
    with probability proportional to that squared distance (default
    ``2 + ln k``). Returns the row indices of the ``k`` seeds (distinct
    unless the rows hold fewer than ``k`` distinct points).
    """
    n = X.shape[0]
    t = int(n_trials) if n_trials is not None else 2 + int(np.log(max(k, 1)))
    Xd = X.to(torch.float32)
    x_sq = (Xd * Xd).sum(dim=1)
    seeds = [int(rng.integers(n))]
    D2 = (x_sq - 2.0 * (Xd @ Xd[seeds[0]]) + x_sq[seeds[0]]).clamp_(min=0.0)
    D2[seeds[0]] = 0.0  # exact: the expansion leaves a rounding residue that could draw a seed twice
    for _ in range(1, k):
        p = D2.double().cpu().numpy()
        total = p.sum()
        if not total > 0:  # every row sits on a seed: take any row not taken
            free = np.setdiff1d(np.arange(n), seeds)
            cand = np.array([int(rng.choice(free))]) if len(free) else np.array([int(rng.integers(n))])
        else:
            cand = np.unique(np.searchsorted(np.cumsum(p), rng.random(t) * total, side="right").clip(0, n - 1))
        ct = torch.as_tensor(cand, device=Xd.device)
        Dc = (x_sq[:, None] - 2.0 * (Xd @ Xd[ct].T) + x_sq[ct][None, :]).clamp_(min=0.0)
        Dc = torch.minimum(Dc, D2[:, None])
        best = int(torch.argmin(Dc.double().sum(dim=0)))
        seeds.append(int(cand[best]))
        D2 = Dc[:, best].contiguous()
        D2[seeds[-1]] = 0.0
    return np.asarray(seeds, dtype=np.int64)
