"""K-Means: the pool sample nearest each of ``budget`` centroids."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np
import torch

from ..kernels import TrackedArgmax, nearest_distinct_samples, progress, scatter_rows
from ..result import SelectionResult
from .base import BaseSelector, Timer

MINIBATCH_ABOVE = 100_000


class KMeansSelector(BaseSelector):
    """Cluster the pool into ``budget`` groups and take the sample nearest each centroid.

    Parameters
    ----------
    algorithm : {"auto", "lloyd", "full", "minibatch", "faiss"}
        ``lloyd``: Lloyd's iterations in torch from a k-means++ start
        (:func:`lloyd_centers`; each iteration's assignment pruned with a
        movement bound, so late iterations cost little). ``full``:
        scikit-learn's ``KMeans``. ``minibatch``: scikit-learn's
        ``MiniBatchKMeans``. ``faiss``: ``faiss.Kmeans`` (``pip install bilaf[faiss]``).
        ``auto``: ``lloyd`` up to 100,000 samples, else ``minibatch``.
    n_init : int, default=1
        Restarts (the best inertia is kept); ``lloyd`` runs one.
    max_iter : int, default=100
    """

    name = "kmeans"

    def __init__(self, *, algorithm: str = "auto", n_init: int = 1, max_iter: int = 100, random_state: Any = None,
                 normalize: bool = False, dtype: str = "float32", device: str = "cpu", memory_budget: Any = "1GB",
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.algorithm = algorithm
        self.n_init = n_init
        self.max_iter = max_iter

    def _check_params(self, n_samples: int, budget: int) -> None:
        from ..validation import check_choice, check_positive_int

        check_choice(self.algorithm, "algorithm", ("auto", "lloyd", "full", "minibatch", "faiss"))
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.max_iter, "max_iter")
        if self.algorithm == "faiss":
            try:
                import faiss  # noqa: F401
            except ImportError:
                raise ValueError("algorithm='faiss' needs faiss: pip install 'bilaf[faiss]'") from None

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("kmeans"):
            centers = kmeans_centers(X, budget, rng, algorithm=self.algorithm, n_init=self.n_init,
                                     max_iter=self.max_iter, verbose=self.verbose, memory_budget=self.memory_budget)
        with timer.stage("nearest samples"):
            idx = nearest_distinct_samples(X, torch.as_tensor(centers, device=X.device), metric="euclidean",
                                           dtype=self._tdtype, memory_budget=self.memory_budget)
        return SelectionResult(indices=idx)


def kmeans_centers(X: torch.Tensor, k: int, rng: np.random.Generator, *, algorithm: str = "auto", n_init: int = 1,
                   max_iter: int = 100, verbose: bool = False, memory_budget: Any = "1GB") -> np.ndarray:
    """``k`` centroids of the rows of ``X`` (numpy float32, shape (k, d))."""
    seed = int(rng.integers(0, 2**31 - 1))
    n = X.shape[0]
    if algorithm == "lloyd" or (algorithm == "auto" and n <= MINIBATCH_ABOVE):
        return lloyd_centers(X, k, seed, max_iter=max_iter, memory_budget=memory_budget, verbose=verbose)
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
        if algorithm == "minibatch" or (algorithm == "auto" and n > MINIBATCH_ABOVE):
            km = MiniBatchKMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed,
                                 batch_size=max(4096, 3 * k), compute_labels=False)
        else:
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
        km.fit(A)
    return km.cluster_centers_.astype(np.float32)


def lloyd_centers(X: torch.Tensor, k: int, seed: int, *, max_iter: int = 100, tol: float = 1e-4,
                  init_size: Optional[int] = None, memory_budget: Any = "1GB", verbose: bool = False) -> np.ndarray:
    """K-Means by Lloyd's iterations in torch, from a k-means++ start.

    The start is greedy k-means++ (:func:`kmeans_plusplus`) on a random
    subsample of ``init_size`` rows (default ``max(20,000, 20 k)``; the whole
    pool when smaller). Each iteration assigns every row to its
    nearest centre, as the largest ``x.c - |c|^2 / 2`` (rows centred on the
    pool mean), through :class:`~bilaf.kernels.TrackedArgmax`: only rows
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
    return np.asarray(seeds, dtype=np.int64)
