"""MaxHerding (Bae, Noh & Sutherland, ECCV 2024, "Generalized Coverage for More Robust Low-Budget Active Learning")."""

from __future__ import annotations

import heapq
import numbers
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import pairwise_distances, sq_norms
from ..params import Interval, Param
from ..result import SelectionResult
from ..utils.progress import progress
from .base import BaseSelector, Timer
from .maxherding_gains import _DenseKernel, _Kernel, _KnnKernel
from .neighbors import knn_graph

BANDWIDTH_NEIGHBOR = 20  # the default bandwidth is the median distance to the 20th nearest other row ...
BANDWIDTH_SAMPLES = 1000  # ... over this many rows drawn at random (all rows of smaller pools)
TIE_TOL = 1e-9  # gains within TIE_TOL * (largest gain + 1) of the largest count as ties (the lowest index wins)


class MaxHerding(BaseSelector):
    """MaxHerding: greedy maximisation of the generalized (kernel) coverage of the pool.

    With the Gaussian kernel ``k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2))``
    on the features (L2-normalised first when ``normalize=True``, the
    default), the *generalized coverage* of a set ``L`` of picks is::

        C(L) = mean over pool rows x of max over l in L of k(x, l)

    Starting from no picks (or from the ``labeled`` rows, see below), each
    step adds the row ``c`` with the largest gain
    ``sum_x max(k(x, c) - m(x), 0)``, where ``m(x)`` is the largest kernel
    value from ``x`` to the picks so far (0 before the first); ties go to the
    lower pool index (gains within ``1e-9 * (largest gain + 1)`` of the
    largest count as tied, so that rounding does not decide ties such as two
    mutually nearest rows that nothing else gains from). This is the paper's
    Algorithm 1 (ProbCover is the same
    greedy with a 0/1 ball kernel). The gains never grow as picks are added
    (the objective is submodular), so the greedy is run *lazily*: a
    candidate's stored gain is an upper bound and only the top of a priority
    queue is re-evaluated; this returns exactly the picks of the plain greedy.

    Two ways to hold the kernel:

    * **Exact** (pools with at most ``max_exact_samples`` distinct rows whose
      dense kernel, twice, fits in ``memory_budget``): the kernel between the
      distinct rows (exact duplicates are merged and weighted by their count,
      which makes duplicates tie exactly) is kept as a dense matrix, and the
      greedy is exactly the one defined above.
    * **k-nearest-neighbour gains** (larger pools): no N x N matrix. A
      candidate's gain counts only the rows that have it among their
      ``n_neighbors`` nearest rows (and itself): the kernel is taken as 0
      between a row and the candidates outside its neighbourhood when gains
      are computed. The coverage ``m(x)`` stays exact: after each pick, the
      rows it may cover better are found with a cheap lower bound on their
      distance to it, and only those get an exact kernel value. The greedy
      above then runs exactly (lazily) on these gains. Memory is
      O(N * n_neighbors). Neighbours are found in one chunked pass bounded
      by ``memory_budget``; on features with more than ``search_dims``
      columns, in the space of their top ``search_dims`` principal components
      (rows ranked by the distance there plus the squared norm of what the
      projection leaves out), and the kernel values of the neighbours found
      are exact. The loss against the exact greedy (coverage ratio and pick
      overlap) is measured in ``benchmarks/results/maxherding_approx.md``;
      ``coverage_`` always reports the exact ``C(L)`` of the picks.

    Choosing ``bandwidth`` (``bandwidth=None``)
        The median, over ``min(N, 1000)`` rows drawn with ``random_state``
        (all rows of smaller pools, then nothing random happens), of the
        Euclidean distance to the 20th nearest *other* row of the pool
        (exact, one chunked pass; the ``N - 1``-th on pools of 21 rows or
        fewer). The paper's code fixes the kernel ``exp(-||x - y||^2 / h^2)``
        with ``h = 1`` on L2-normalised self-supervised features, i.e.
        ``bandwidth = 1/sqrt(2) ~ 0.71``; that number depends on the feature
        scale, this rule does not, and on L2-normalised CIFAR-10
        EfficientNet-Lite0 features it gives about 0.75. If that median is 0
        (many duplicates) the median of the positive distances is used, and
        1.0 when every row is the same.

    When every gain is 0
        Only rows whose kernel value to some pick is exactly 1 (duplicates of
        picks, or a bandwidth so large that the kernel rounds to 1) have zero
        gain. The rest of the budget then goes to the least-covered rows, one
        at a time: the row with the smallest ``m(x)`` (ties: the lower index),
        after which ``m`` is updated as for a greedy pick. A note says so.

    Warm start (``labeled``)
        ``m(x)`` starts from the kernel values to the labeled rows, which are
        never picked again; the result starts with them.

    Parameters
    ----------
    bandwidth : float or None, default=None
        sigma of the Gaussian kernel, in the units of the (by default
        normalised) features. ``None``: chosen from the data (the median
        distance to the 20th nearest row; see "Choosing ``bandwidth``").
    n_neighbors : int, default=50
        Neighbours per row in the k-nearest-neighbour gains of large pools.
    max_exact_samples : int, default=5000
        Pools with at most this many distinct rows use the exact dense kernel
        (when it fits in ``memory_budget``); 0 always uses the
        k-nearest-neighbour gains.
    search_dims : int or None, default=128
        Principal components used to search for neighbours when the features
        have more columns; ``None`` (``none`` on the command line) searches
        in the full feature space (exact neighbours; slower on wide features).
    random_state, normalize, dtype, device, memory_budget, verbose
        See :class:`~bilaf.selectors.base.BaseSelector`; ``normalize``
        defaults to True here (the paper's features are L2-normalised).

    Attributes
    ----------
    bandwidth_ : float
        The bandwidth used.
    coverage_ : float
        The exact generalized coverage ``C(L)`` of the picks (labeled rows
        included), in [0, 1].
    kernel_ : str
        ``"exact"`` or ``"knn"``: the exact greedy, or k-nearest-neighbour gains.

    The result's ``scores`` hold, per pick, its gain divided by the pool
    size: the exact increase of ``C(L)`` with the exact kernel, the
    neighbours' share of it with kNN gains; 0 for picks made once every gain
    was 0, NaN for labeled rows.
    """

    name = "maxherding"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "bandwidth": Param(Interval(numbers.Real, 0, None, closed="neither"), None,
                           help="sigma of the Gaussian kernel (none: the median distance to the 20th nearest row)"),
        "n_neighbors": Param(Interval(numbers.Integral, 1, None),
                             help="neighbours per row in the nearest-neighbour gains of large pools"),
        "max_exact_samples": Param(Interval(numbers.Integral, 0, None),
                                   help="pools with at most this many distinct rows use the exact kernel (0: "
                                        "always the nearest-neighbour gains)"),
        "search_dims": Param(Interval(numbers.Integral, 1, None), None,
                             help="principal components used to search for neighbours of wider features (none: "
                                  "every column, exact neighbours)"),
    }

    def __init__(self, *, bandwidth: Optional[float] = None, n_neighbors: int = 50, max_exact_samples: int = 5000,
                 search_dims: Optional[int] = 128, random_state: Any = None, normalize: bool = True,
                 dtype: str = "float32", device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.bandwidth = bandwidth
        self.n_neighbors = n_neighbors
        self.max_exact_samples = max_exact_samples
        self.search_dims = search_dims

    # -- the method --------------------------------------------------------------
    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        return self._run(X, budget, np.empty(0, dtype=np.int64), rng, timer)

    def _select_warm(self, X: torch.Tensor, budget: int, labeled: np.ndarray, rng: np.random.Generator,
                     timer: Timer) -> SelectionResult:
        return self._run(X, budget, np.asarray(labeled, dtype=np.int64), rng, timer)

    def _run(self, X: torch.Tensor, budget: int, labeled: np.ndarray, rng: np.random.Generator,
             timer: Timer) -> SelectionResult:
        n = int(X.shape[0])
        X = X.to(self._tdtype)
        notes: List[str] = []
        with timer.stage("bandwidth"):
            sigma = float(self.bandwidth) if self.bandwidth is not None else self._auto_bandwidth(X, rng)
        gamma = 1.0 / (2.0 * sigma * sigma)
        n_new = budget - len(labeled)
        with timer.stage("kernel"):
            kernel = None
            if n <= self.max_exact_samples:
                kernel = _DenseKernel.build(X, gamma, self.max_exact_samples, self.memory_budget)
            if kernel is None:
                k = min(int(self.n_neighbors), n - 1)
                kernel = _KnnKernel.build(X, gamma, k, self.search_dims, self.memory_budget, self.verbose)
        kernel.start(labeled)
        with timer.stage("greedy"):
            picks, gains = _lazy_greedy(kernel, n_new, self.verbose)
        if len(picks) < n_new:
            with timer.stage("fill"):
                extra = kernel.fill(n_new - len(picks))
            notes.append(f"after {len(picks)} greedy picks every gain was 0 (the other rows have a kernel value "
                         f"of 1 to a pick: duplicates, or a bandwidth too large); the other {len(extra)} went to "
                         "the least-covered rows")
            picks = picks + extra
            gains = gains + [0.0] * len(extra)
        indices = np.concatenate([labeled, np.asarray(picks, dtype=np.int64)])
        with timer.stage("coverage"):
            coverage = generalized_coverage(X, indices, sigma, memory_budget=self.memory_budget)
        self.bandwidth_ = sigma
        self.coverage_ = coverage
        self.kernel_ = kernel.kind
        scores = np.concatenate([np.full(len(labeled), np.nan), np.asarray(gains, dtype=np.float64) / n])
        params = {"bandwidth_used": sigma, "kernel": kernel.kind, "coverage": coverage}
        if kernel.kind == "knn":
            params.update(n_neighbors_used=kernel.k, search_dims_used=kernel.search_dims_used)
        return SelectionResult(indices=indices, scores=scores, notes=notes, params=params)

    def _auto_bandwidth(self, X: torch.Tensor, rng: np.random.Generator) -> float:
        """The median distance to the 20th nearest other row, over a seeded sample of rows (see the class doc)."""
        n = X.shape[0]
        kk = min(BANDWIDTH_NEIGHBOR, n - 1)
        m = min(n, BANDWIDTH_SAMPLES)
        rows = np.arange(n) if m == n else np.sort(rng.choice(n, size=m, replace=False))
        rows_t = torch.as_tensor(rows, device=X.device)
        x_sq = sq_norms(X)
        out = torch.empty(m, dtype=X.dtype, device=X.device)
        for sl in row_chunks(m, n, self.memory_budget, itemsize=X.element_size(), temporaries=3):
            r = rows_t[sl]
            D = pairwise_distances(X[r], X, a_sq=x_sq[r], b_sq=x_sq, squared=True)
            D[torch.arange(r.shape[0], device=X.device), r] = float("inf")  # the row itself
            out[sl] = torch.kthvalue(D, kk, dim=1).values
        d = out.clamp_(min=0.0).sqrt_().double().cpu().numpy()
        sigma = float(np.median(d))
        if sigma <= 0.0:
            pos = d[d > 0]
            sigma = float(np.median(pos)) if pos.size else 1.0
        return sigma


# -- the greedy ----------------------------------------------------------------------------------

def _lazy_greedy(kernel: "_Kernel", n_picks: int, verbose: bool = False) -> Tuple[List[int], List[float]]:
    """Greedy picks by largest gain, ties (within :data:`TIE_TOL`) to the lower key, evaluated lazily.

    A candidate's stored gain is an upper bound of its current gain (gains
    never grow). An entry evaluated at the current step that reaches the top
    of the queue holds the largest gain ``G``; every entry whose bound reaches
    ``G - TIE_TOL * (G + 1)`` is then evaluated too, and the lowest key among
    those within the tolerance is picked. Stops early when every gain is 0.
    """
    cand, keys, gains0 = kernel.candidates()
    heap = [(-float(g), int(k), int(c)) for c, k, g in zip(cand, keys, gains0)]
    heapq.heapify(heap)
    fresh = np.full(kernel.n_candidates, -1, dtype=np.int64)
    fresh[cand] = 0  # the initial gains are exact at step 0
    picks: List[int] = []
    gains: List[float] = []
    step = 0
    bar = progress(total=n_picks, desc="maxherding", enabled=verbose and n_picks > 200, unit="pick")
    while len(picks) < n_picks and heap:
        neg, key, c = heap[0]
        if fresh[c] != step:
            fresh[c] = step
            heapq.heapreplace(heap, (-kernel.gain(c), key, c))
            continue
        best = -neg
        if best <= 0.0:
            break
        low = best - TIE_TOL * (best + 1.0)
        near = [heapq.heappop(heap)]
        while heap and -heap[0][0] >= low:  # every candidate that may tie with the best
            neg2, key2, c2 = heapq.heappop(heap)
            if fresh[c2] != step:
                fresh[c2] = step
                neg2 = -kernel.gain(c2)
            near.append((neg2, key2, c2))
        chosen = min((e for e in near if -e[0] >= low), key=lambda e: e[1])
        for e in near:
            if e is not chosen:
                heapq.heappush(heap, e)
        picks.append(kernel.commit(chosen[2]))
        gains.append(-chosen[0])
        step += 1
        bar.update()
    bar.close()
    return picks, gains


def generalized_coverage(X: Any, picks: Any, bandwidth: float, *, memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> float:
    """``C(L)``: the mean over the rows of ``X`` of the largest Gaussian kernel value to the rows ``picks``.

    Exact, in chunks (memory grows with the rows and the picks, never N x N).
    ``X`` is used as given (normalise it first to match ``normalize=True``).
    """
    T = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    picks = np.asarray(picks, dtype=np.int64)
    if picks.size == 0:
        return 0.0
    gamma = 1.0 / (2.0 * float(bandwidth) ** 2)
    P = T[torch.as_tensor(picks, device=T.device)]
    p_sq = sq_norms(P)
    x_sq = sq_norms(T)
    total = 0.0
    for sl in row_chunks(T.shape[0], P.shape[0], memory_budget, itemsize=T.element_size(), temporaries=3):
        D = pairwise_distances(T[sl], P, a_sq=x_sq[sl], b_sq=p_sq, squared=True)
        total += float(torch.exp(D.min(dim=1).values.double().mul_(-gamma)).sum())
    return total / T.shape[0]


__all__ = ["MaxHerding", "generalized_coverage", "knn_graph"]
