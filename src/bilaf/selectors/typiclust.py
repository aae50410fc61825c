"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022, "Active Learning on a Budget"), cold start."""

from __future__ import annotations

import heapq
import numbers
from typing import Any, List, Optional, Sequence

import numpy as np
import torch

from ..algorithms.kmeans import MINIBATCH_ABOVE, check_faiss, kmeans_centers
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..kernels.distances import knn_distances_within, nearest_centers
from ..params import Interval, Options, Param
from ..result import SelectionResult
from ..utils.progress import progress
from ..validation import parse_memory_budget
from .base import BaseSelector, Timer

# "auto" K-Means: scikit-learn's Lloyd up to this many samples x clusters x features, else faiss / MiniBatch
FULL_KMEANS_MAX_WORK = 100_000_000
FAISS_MAX_ITER = 20


class TypiClust(BaseSelector):
    """TypiClust: the most *typical* sample of each of ``budget`` K-Means clusters.

    Cold start (no labels), in the paper's words (TPC-RP):

    1. Cluster the pool into ``K = min(budget, max_clusters)`` clusters with
       K-Means (centroids from :func:`~bilaf.algorithms.kmeans.kmeans_centers`;
       each sample then goes to its nearest centroid, in a chunked pass).
       The paper's text uses ``K = budget``; the authors' code caps it at
       500, as ``max_clusters`` does by default, because clustering into
       thousands of groups dominates the run time and adds little.
    2. Within each cluster, the typicality of a sample is the inverse of its
       mean Euclidean distance to its ``k = min(k_neighbors, size - 1)``
       nearest neighbours *in the same cluster*::

           typicality(x) = 1 / mean_{x' in kNN(x)} ||x - x'||

    3. Clusters are visited largest first; each visit takes the most typical
       sample of the cluster not taken yet.

    Exactly ``budget`` distinct samples always come back. The order of visits
    is a priority queue on ``(small, picks so far, -size, cluster id)``:
    clusters with fewer than ``min_cluster_size`` samples ("small": likely
    outliers, skipped by the paper) are used only once every larger cluster
    has run out of samples; a cluster gets a second pick (its next most
    typical sample) only once every cluster of its kind has one. With
    ``K = budget`` and no small or empty clusters this is exactly one pick
    per cluster, as in the paper. K-Means may leave clusters empty when the
    pool has fewer distinct rows than ``K`` (duplicates); they are ignored.

    Ties (equal typicality, e.g. duplicate rows) go to the lower pool index,
    so the result is a function of the features and ``random_state`` (which
    seeds K-Means) only.

    Parameters
    ----------
    k_neighbors : int, default=20
        Neighbours in the typicality estimate (the paper's 20).
    min_cluster_size : int, default=5
        Clusters smaller than this are visited last (the paper skips them).
    max_clusters : int or None, default=500
        Cap on the number of clusters (the authors' code's value); budgets
        above it take several typical samples per cluster, round-robin.
        ``None`` = always ``budget`` clusters (the paper's text).
    algorithm : {"auto", "lloyd", "full", "minibatch", "faiss"}, default="auto"
        K-Means flavour (see :class:`~bilaf.selectors.kmeans.KMeansSelector`).
        ``auto``: bilaf's Lloyd K-Means (``lloyd``) while
        ``n_samples x n_clusters x n_features <= 1e8``; above that faiss
        when it is installed (``pip install 'bilaf[faiss]'``), else ``lloyd``
        up to 100,000 samples, else scikit-learn's ``MiniBatchKMeans``. The flavour
        used is recorded in ``result.params["kmeans_algorithm"]``; pin it for
        results that do not depend on what is installed.
    n_init : int, default=1
        K-Means restarts.
    max_iter : int or None, default=None
        K-Means iterations (epochs for MiniBatch); ``None``: 20 with faiss,
        100 with scikit-learn.
    random_state, normalize, dtype, device, memory_budget, verbose
        See :class:`~bilaf.selectors.base.BaseSelector`. ``normalize``
        defaults to True here: clustering and typicality on L2-normalised
        features, as ProbCover does; on the CIFAR-10 features of
        ``shared/data`` this gave 63.8% vs 62.1% linear-probe accuracy at
        100 labels (docs/baselines.md).

    Attributes
    ----------
    cluster_labels_ : numpy.ndarray of int64, shape (n_samples,)
        Cluster of each pool sample (also ``result.pseudo_labels``).
    typicality_ : numpy.ndarray of float64, shape (n_samples,)
        Typicality of each pool sample within its cluster (``inf`` for a
        sample with an exact duplicate among its neighbours only, ``nan`` for
        a sample alone in its cluster).

    The result's ``scores`` hold the typicality of each pick and
    ``pick_classes`` its cluster.
    """

    name = "typiclust"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "k_neighbors": Param(Interval(numbers.Integral, 1, None), help="neighbours in the typicality estimate"),
        "min_cluster_size": Param(Interval(numbers.Integral, 1, None),
                                  help="clusters smaller than this are visited last"),
        "max_clusters": Param(Interval(numbers.Integral, 1, None), None,
                              help="cap on the number of clusters (none: as many clusters as picks)"),
        "algorithm": Param(Options(("auto", "lloyd", "full", "minibatch", "faiss")),
                           help="k-means flavour (see --algorithm of kmeans; auto also takes faiss when installed "
                                "and the pool is large)"),
        "n_init": Param(Interval(numbers.Integral, 1, None),
                        help="number of k-means runs with different seeds (the best is kept)"),
        "max_iter": Param(Interval(numbers.Integral, 1, None), None,
                          help="most k-means iterations per run (default: 20 with faiss, 100 otherwise)"),
    }

    def __init__(self, *, k_neighbors: int = 20, min_cluster_size: int = 5, max_clusters: Optional[int] = 500,
                 algorithm: str = "auto", n_init: int = 1, max_iter: Optional[int] = None, random_state: Any = None,
                 normalize: bool = True, dtype: str = "float32", device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.k_neighbors = k_neighbors
        self.min_cluster_size = min_cluster_size
        self.max_clusters = max_clusters
        self.algorithm = algorithm
        self.n_init = n_init
        self.max_iter = max_iter

    def _check_params(self, n_samples: int, budget: int) -> None:
        check_faiss(self.algorithm)

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        K = min(budget, self.max_clusters) if self.max_clusters is not None else budget
        with timer.stage("kmeans"):
            labels, algorithm = kmeans_labels(X, K, rng, algorithm=self.algorithm, n_init=self.n_init,
                                              max_iter=self.max_iter, dtype=self._tdtype,
                                              memory_budget=self.memory_budget, verbose=self.verbose)
        with timer.stage("typicality"):
            sizes = np.bincount(labels, minlength=K)
            order = np.argsort(labels, kind="stable")  # members of each cluster, by pool index
            starts = np.concatenate([[0], np.cumsum(sizes)])
            members = [order[starts[c]:starts[c + 1]] for c in range(K)]
            mean_d = mean_knn_distances(X, members, self.k_neighbors, dtype=self._tdtype,
                                        memory_budget=self.memory_budget, verbose=self.verbose)
            with np.errstate(divide="ignore"):
                typicality = 1.0 / mean_d
            # most typical = smallest mean distance; ties to the lower pool index (members are sorted)
            ranked = [m[np.argsort(mean_d[m], kind="stable")] for m in members]
        with timer.stage("select"):
            picks, pick_cls, notes = self._visit(ranked, sizes, budget)
        self.cluster_labels_ = labels
        self.typicality_ = typicality
        picks = np.asarray(picks, dtype=np.int64)
        n_empty = int((sizes == 0).sum())
        if n_empty:
            notes.insert(0, f"K-Means left {n_empty} of {K} clusters empty (duplicate rows?)")
        return SelectionResult(indices=picks, pseudo_labels=labels, scores=typicality[picks],
                               pick_classes=np.asarray(pick_cls, dtype=np.int64), notes=notes,
                               params={"n_clusters_used": int(K), "kmeans_algorithm": algorithm})

    def _visit(self, ranked: List[np.ndarray], sizes: np.ndarray, budget: int):
        """Round-robin over clusters, largest first, small clusters last; returns picks, their clusters, notes."""
        small_limit = int(self.min_cluster_size)
        heap = [(int(s < small_limit), 0, -int(s), c) for c, s in enumerate(sizes) if s > 0]
        heapq.heapify(heap)
        picks: List[int] = []
        pick_cls: List[int] = []
        n_small_used = 0
        n_repeat = 0
        while len(picks) < budget:
            small, taken, neg_size, c = heapq.heappop(heap)
            picks.append(int(ranked[c][taken]))
            pick_cls.append(c)
            n_small_used += small and taken == 0
            n_repeat += taken > 0
            if taken + 1 < -neg_size:
                heapq.heappush(heap, (small, taken + 1, neg_size, c))
        notes = []
        n_small = int(((sizes > 0) & (sizes < small_limit)).sum())
        if n_small:
            notes.append(f"{n_small} clusters had fewer than {small_limit} samples; "
                         f"{n_small_used} of them were used to fill the budget")
        if n_repeat:
            notes.append(f"{n_repeat} picks are a cluster's second or later most typical sample")
        return picks, pick_cls, notes


def resolve_kmeans_algorithm(algorithm: str, n: int, k: int, d: int) -> str:
    """``"auto"``: bilaf's Lloyd K-Means for small problems, else faiss if installed, else bilaf's Lloyd up to
    100,000 rows, else scikit-learn's MiniBatchKMeans."""
    if algorithm != "auto":
        return algorithm
    if n * k * d <= FULL_KMEANS_MAX_WORK:
        return "lloyd"
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "lloyd" if n <= MINIBATCH_ABOVE else "minibatch"
    return "faiss"


def kmeans_labels(X: torch.Tensor, k: int, rng: np.random.Generator, *, algorithm: str = "auto", n_init: int = 1,
                  max_iter: Optional[int] = None, dtype: torch.dtype = torch.float32, memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                  verbose: bool = False):
    """Cluster the rows of ``X`` into ``k`` groups: K-Means centroids, then each row to its nearest centroid.

    ``max_iter=None`` means 20 iterations with faiss (its Lloyd passes are
    cheap and few suffice here) and 100 with scikit-learn.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n,)
    algorithm : str
        The K-Means flavour used.
    """
    n, d = X.shape
    algorithm = resolve_kmeans_algorithm(algorithm, n, k, d)
    if max_iter is None:
        max_iter = FAISS_MAX_ITER if algorithm == "faiss" else 100
    centers = kmeans_centers(X, k, rng, algorithm=algorithm, n_init=n_init, max_iter=max_iter, verbose=verbose,
                             memory_budget=memory_budget)
    _, idx = nearest_centers(X, torch.as_tensor(centers, device=X.device), dtype=dtype, memory_budget=memory_budget,
                             show_progress=verbose, desc="assign clusters")
    return idx[:, 0].cpu().numpy().astype(np.int64), algorithm


def mean_knn_distances(X: torch.Tensor, groups: Sequence[np.ndarray], k: int, *, dtype: torch.dtype = torch.float32,
                       memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> np.ndarray:
    """For every row of ``X`` in one of ``groups``, the mean distance to its ``min(k, size - 1)`` nearest
    other rows *of the same group* (NaN for a group of one; rows in no group stay NaN).

    Groups small enough are stacked (padded to a common size, similar sizes
    together) and processed with one batched matrix product per stack, which
    keeps the number of torch calls low when there are thousands of small
    clusters; a group too large for ``memory_budget`` goes through
    :func:`~bilaf.kernels.distances.knn_distances_within`, which chunks its rows.
    """
    out = np.full(X.shape[0], np.nan)
    budget = parse_memory_budget(memory_budget)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    per_cell = itemsize * 4  # distance block + a few temporaries, per (row, column) of a group
    cand = [c for c in np.argsort(sizes, kind="stable") if sizes[c] >= 2]
    stack: List[int] = []
    stacks: List[List[int]] = []
    for c in cand:  # ascending size: consecutive groups pad to similar sizes
        s = int(sizes[c])
        if s * s * per_cell + s * X.shape[1] * itemsize > budget:
            stacks.append([c])  # alone, through the chunked kernel
            continue
        if stack and (len(stack) + 1) * s * (s * per_cell + X.shape[1] * itemsize) > budget:
            stacks.append(stack)
            stack = []
        stack.append(c)
    if stack:
        stacks.append(stack)
    for st in progress(stacks, desc="typicality", enabled=verbose and len(stacks) > 1, unit="stack"):
        s_max = int(sizes[st[-1]])
        if len(st) == 1:
            m = groups[st[0]]
            G = X[torch.as_tensor(m, device=X.device)].to(dtype)
            knn = knn_distances_within(G, min(k, len(m) - 1), memory_budget=memory_budget)
            out[m] = knn.mean(dim=1).cpu().numpy()
            continue
        idx = np.zeros((len(st), s_max), dtype=np.int64)
        valid = np.zeros((len(st), s_max), dtype=bool)
        for row, c in enumerate(st):
            idx[row, : sizes[c]] = groups[c]
            valid[row, : sizes[c]] = True
        vt = torch.as_tensor(valid, device=X.device)
        G = X[torch.as_tensor(idx, device=X.device)].to(dtype)  # (g, s, d)
        sq = (G * G).sum(dim=2)
        D = sq[:, :, None] + sq[:, None, :] - 2.0 * torch.bmm(G, G.transpose(1, 2))
        D.clamp_(min=0.0).sqrt_()
        D.masked_fill_(~vt[:, None, :], float("inf"))
        D.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        kk = min(k, s_max - 1)
        vals = torch.topk(D, kk, dim=2, largest=False, sorted=True).values.cumsum_(dim=2)  # (g, s, kk)
        k_row = torch.as_tensor(np.minimum(k, sizes[st] - 1), device=X.device)  # per group
        mean = torch.gather(vals, 2, (k_row - 1)[:, None, None].expand(-1, s_max, 1))[:, :, 0] / k_row[:, None]
        mean = mean.cpu().numpy()
        out[idx[valid]] = mean[valid]
    return out
