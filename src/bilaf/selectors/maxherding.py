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
from ..validation import parse_memory_budget
from .base import BaseSelector, Timer

BANDWIDTH_NEIGHBOR = 20  # the default bandwidth is the median distance to the 20th nearest other row ...
BANDWIDTH_SAMPLES = 1000  # ... over this many rows drawn at random (all rows of smaller pools)
TIE_TOL = 1e-9  # gains within TIE_TOL * (largest gain + 1) of the largest count as ties (the lowest index wins)
PAIR_STEP = 16  # rows per gather when the exact distances to the neighbours found are computed


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


class _Kernel:
    """What the greedy needs of a kernel: candidates, gains, commits, and the zero-gain fill."""

    kind = ""
    n_candidates = 0

    def start(self, labeled: np.ndarray) -> None:
        raise NotImplementedError

    def candidates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def gain(self, c: int) -> float:
        raise NotImplementedError

    def commit(self, c: int) -> int:
        raise NotImplementedError

    def fill(self, count: int) -> List[int]:
        raise NotImplementedError


class _DenseKernel(_Kernel):
    """The exact kernel between the distinct rows, each weighted by its number of copies."""

    kind = "exact"

    def __init__(self, K: torch.Tensor, inverse: np.ndarray, memory_budget: Any) -> None:
        self.memory_budget = memory_budget
        self.K = K  # K[c, x] = k(x, c) between distinct rows (c: candidate, x: covered row)
        self.inverse = inverse  # pool row -> distinct row
        self.n = inverse.shape[0]
        self.n_candidates = K.shape[0]
        self.w = torch.as_tensor(np.bincount(inverse, minlength=K.shape[0]), dtype=K.dtype, device=K.device)

    @classmethod
    def build(cls, X: torch.Tensor, gamma: float, max_exact: int, memory_budget: Any) -> Optional["_DenseKernel"]:
        """The dense kernel, or None when the distinct rows are too many or it does not fit the budget."""
        Xn = X.cpu().numpy()
        uniq, inverse = np.unique(Xn, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
        nu = uniq.shape[0]
        if nu > max_exact or 2 * nu * nu * X.element_size() > parse_memory_budget(memory_budget):
            return None
        U = torch.as_tensor(uniq, device=X.device)
        u_sq = sq_norms(U)
        K = torch.empty((nu, nu), dtype=X.dtype, device=X.device)
        for sl in row_chunks(nu, nu, memory_budget, itemsize=X.element_size(), temporaries=2):
            D = pairwise_distances(U[sl], U, a_sq=u_sq[sl], b_sq=u_sq, squared=True)
            idx = torch.arange(sl.stop - sl.start, device=X.device)
            D[idx, idx + sl.start] = 0.0  # a row is at distance 0 from itself, exactly
            K[sl] = torch.exp(D.mul_(-gamma))
        return cls(K, inverse, memory_budget)

    def start(self, labeled: np.ndarray) -> None:
        nu = self.n_candidates
        self.m = torch.zeros(nu, dtype=self.K.dtype, device=self.K.device)
        for u in np.unique(self.inverse[labeled]):
            torch.maximum(self.m, self.K[int(u)], out=self.m)
        self.taken = np.zeros(self.n, dtype=bool)
        self.taken[labeled] = True
        # a distinct row's key is its lowest pool index not labeled; rows with every copy labeled are no candidate
        free = np.flatnonzero(~self.taken)
        key = np.full(nu, self.n, dtype=np.int64)
        np.minimum.at(key, self.inverse[free], free)
        self.key = key

    def candidates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        cand = np.flatnonzero(self.key < self.n)
        g = np.empty(len(cand), dtype=np.float64)
        ct = torch.as_tensor(cand, device=self.K.device)
        for sl in row_chunks(len(cand), self.n_candidates, self.memory_budget, itemsize=self.K.element_size(),
                             temporaries=2):
            g[sl] = ((self.K[ct[sl]] - self.m).clamp_(min=0.0) @ self.w).double().cpu().numpy()
        return cand, self.key[cand], g

    def gain(self, c: int) -> float:
        return float((self.K[c] - self.m).clamp_(min=0.0) @ self.w)

    def commit(self, c: int) -> int:
        torch.maximum(self.m, self.K[c], out=self.m)
        row = int(self.key[c])
        self.taken[row] = True
        return row

    def fill(self, count: int) -> List[int]:
        out = []
        m_rows = self.m.double().cpu().numpy()
        for _ in range(count):
            cov = np.where(self.taken, np.inf, m_rows[self.inverse])
            row = int(np.argmin(cov))  # the first index among ties
            out.append(row)
            self.taken[row] = True
            torch.maximum(self.m, self.K[int(self.inverse[row])], out=self.m)
            m_rows = self.m.double().cpu().numpy()
        return out


class _KnnKernel(_Kernel):
    """Gains from the kernel truncated to each row's neighbours; exact coverage ``m`` (one screened pass a pick).

    Candidate ``c`` covers the rows ``x`` that list it among their nearest
    neighbours, and itself (CSR by candidate). The coverage ``m(x)`` is the
    exact largest kernel value to the picks: after each pick, rows that can
    gain are found with a lower bound on their distance to it (the distance
    in the principal-component space plus the difference of the residual
    norms; exact when the features were not reduced), and only those get an
    exact distance.
    """

    kind = "knn"

    def __init__(self, indptr: np.ndarray, rows: np.ndarray, vals: np.ndarray, k: int, space: "_SearchSpace",
                 X: torch.Tensor, gamma: float) -> None:
        self.indptr, self.rows, self.vals = indptr, rows, vals  # candidate c covers rows[indptr[c]:indptr[c+1]]
        self.n = self.n_candidates = indptr.shape[0] - 1
        self.k = k
        self.space = space
        self.search_dims_used = space.dims
        self.X, self.x_sq, self.gamma = X, sq_norms(X), gamma

    @classmethod
    def build(cls, X: torch.Tensor, gamma: float, k: int, search_dims: Optional[int], memory_budget: Any,
              verbose: bool = False) -> "_KnnKernel":
        n = X.shape[0]
        space = _SearchSpace(X, search_dims, memory_budget)
        nbr, d2 = knn_graph(X, k, space=space, memory_budget=memory_budget, verbose=verbose)
        # row x is covered by candidate nbr[x, j] with value k(x, nbr[x, j]); and by itself with value 1
        cand = np.concatenate([nbr.reshape(-1), np.arange(n, dtype=np.int64)])
        covered = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), nbr.shape[1]), np.arange(n)])
        vals = np.concatenate([np.exp(-gamma * d2.reshape(-1)), np.ones(n)])
        order = np.argsort(cand, kind="stable")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(cand, minlength=n), out=indptr[1:])
        return cls(indptr, covered[order], vals[order], k, space, X, gamma)

    def start(self, labeled: np.ndarray) -> None:
        self.m = np.zeros(self.n, dtype=np.float64)
        self.r2 = np.full(self.n, np.inf)  # squared distance to the nearest pick: -log(m) / gamma
        self.taken = np.zeros(self.n, dtype=bool)
        for c in labeled:
            self._cover(int(c))

    def _cover(self, c: int) -> None:
        rows = self.space.maybe_within(c, self.r2)
        if rows is None:  # every row
            d2 = (self.x_sq + self.x_sq[c] - 2.0 * (self.X @ self.X[c])).clamp_(min=0.0)
            sel = np.arange(self.n)
        else:
            r = torch.as_tensor(rows, device=self.X.device)
            d2 = (self.x_sq[r] + self.x_sq[c] - 2.0 * (self.X[r] @ self.X[c])).clamp_(min=0.0)
            sel = rows
        d2 = d2.double().cpu().numpy()
        d2[sel == c] = 0.0
        closer = d2 < self.r2[sel]
        upd = sel[closer]
        self.r2[upd] = d2[closer]
        self.m[upd] = np.exp(-self.gamma * d2[closer])
        self.taken[c] = True

    def candidates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        cand = np.flatnonzero(~self.taken)
        contrib = np.maximum(self.vals - self.m[self.rows], 0.0)
        owner = np.repeat(np.arange(self.n), np.diff(self.indptr))
        g = np.bincount(owner, weights=contrib, minlength=self.n)
        return cand, cand, g[cand]

    def gain(self, c: int) -> float:
        s, e = self.indptr[c], self.indptr[c + 1]
        return float(np.maximum(self.vals[s:e] - self.m[self.rows[s:e]], 0.0).sum())

    def commit(self, c: int) -> int:
        self._cover(c)
        return c

    def fill(self, count: int) -> List[int]:
        out = []
        for _ in range(count):
            row = int(np.argmin(np.where(self.taken, np.inf, self.m)))
            out.append(row)
            self._cover(row)
        return out


# -- neighbours and coverage ---------------------------------------------------------------------

class _SearchSpace:
    """Where neighbours are searched: the features, or their top ``dims`` principal components.

    With ``Z`` the centred rows projected on the components and ``rho`` the
    norm of what the projection leaves out (the residual), the squared
    distance is ``|Z_x - Z_y|^2 + |R_x - R_y|^2``: the search ranks rows by
    ``|Z_x - Z_y|^2 + rho_y^2`` (the residuals taken as orthogonal), and
    ``|Z_x - Z_y|^2 + (rho_x - rho_y)^2`` is a lower bound.
    """

    SLACK = 1e-3  # relative: float32 rounding of the bound never hides a row that gains

    def __init__(self, X: torch.Tensor, dims: Optional[int], memory_budget: Any) -> None:
        n, d = X.shape
        self.dims = int(dims) if dims is not None and d > dims else None
        if self.dims is None:
            self.Z, self.rho = X, None
        else:
            self.Z, self.rho = _pca(X, self.dims, memory_budget)
        self.z_sq = sq_norms(self.Z)

    def maybe_within(self, c: int, r2: np.ndarray) -> Optional[np.ndarray]:
        """Rows whose squared distance to row ``c`` may be below ``r2`` (None: all rows, or no cheaper test)."""
        if self.dims is None or not np.isfinite(r2).any():
            return None
        lb = (self.z_sq + self.z_sq[c] - 2.0 * (self.Z @ self.Z[c])).clamp_(min=0.0)
        lb.add_((self.rho - self.rho[c]) ** 2)
        lb = lb.double().cpu().numpy()
        scale = float(self.z_sq[c]) + float(self.rho[c]) ** 2 + 1e-30
        return np.flatnonzero(lb * (1.0 - self.SLACK) - self.SLACK * scale <= r2)


def knn_graph(X: torch.Tensor, k: int, *, space: Optional[_SearchSpace] = None, search_dims: Optional[int] = 128,
              memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row (found in ``space``) and their exact squared distances.

    On features with more than ``search_dims`` columns the neighbours are the
    ``k`` rows ranked nearest in the space of the top ``search_dims``
    principal components (see :class:`_SearchSpace`); otherwise the search is
    exact. Either way the distances returned are exact, in chunks.

    Returns
    -------
    neighbors : numpy.ndarray of int64, shape (n, k)
    sq_dist : numpy.ndarray of float64, shape (n, k)
    """
    n = X.shape[0]
    if space is None:
        space = _SearchSpace(X, search_dims, memory_budget)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0))
    Z, z_sq = space.Z, space.z_sq
    col = z_sq if space.rho is None else z_sq + space.rho ** 2
    x_sq = sq_norms(X)
    nbr = np.empty((n, k), dtype=np.int64)
    d2 = np.empty((n, k), dtype=np.float64)
    chunks = list(row_chunks(n, n, memory_budget, itemsize=Z.element_size(), temporaries=3))
    for sl in progress(chunks, desc="neighbours", enabled=verbose and len(chunks) > 1, unit="chunk"):
        D = pairwise_distances(Z[sl], Z, a_sq=z_sq[sl], b_sq=col, squared=True)
        idx = torch.arange(sl.stop - sl.start, device=X.device)
        D[idx, idx + sl.start] = float("inf")
        v, i = torch.topk(D, k, dim=1, largest=False, sorted=True)
        del D
        if space.dims is not None:  # exact distances of the neighbours found
            v = _pair_sq_dists(X, x_sq, sl, i, memory_budget)
        nbr[sl] = i.cpu().numpy()
        d2[sl] = v.clamp(min=0.0).double().cpu().numpy()
    return nbr, d2


def _pca(X: torch.Tensor, dims: int, memory_budget: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """The centred rows on their top ``dims`` principal components, and the norms of the residuals."""
    n, d = X.shape
    mean = X.mean(dim=0, dtype=torch.float64)
    cov = torch.zeros((d, d), dtype=torch.float64, device=X.device)
    for sl in row_chunks(n, d, memory_budget, itemsize=X.element_size(), temporaries=2):
        B = X[sl] - mean.to(X.dtype)
        cov += (B.T @ B).double()
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    V = vecs[:, -dims:].flip(1).to(X.dtype)
    Z = torch.empty((n, dims), dtype=X.dtype, device=X.device)
    rho = torch.empty(n, dtype=X.dtype, device=X.device)
    for sl in row_chunks(n, d, memory_budget, itemsize=X.element_size(), temporaries=2):
        B = X[sl] - mean.to(X.dtype)
        Z[sl] = B @ V
        rho[sl] = (sq_norms(B) - sq_norms(Z[sl])).clamp_(min=0.0).sqrt_()
    return Z, rho


def _pair_sq_dists(X: torch.Tensor, x_sq: torch.Tensor, sl: slice, cand: torch.Tensor,
                   memory_budget: Any) -> torch.Tensor:
    """Exact squared distances between rows ``sl`` of ``X`` and their candidate rows ``cand`` (rows x kc)."""
    rows, kc = cand.shape
    out = torch.empty((rows, kc), dtype=X.dtype, device=X.device)
    # small steps: the gathered rows stay in cache (much faster than one large gather)
    step = max(1, min(PAIR_STEP, parse_memory_budget(memory_budget) // (2 * kc * X.shape[1] * X.element_size())))
    for s in range(0, rows, step):
        c = cand[s:s + step]
        A = X[sl.start + s:sl.start + s + c.shape[0]]
        G = X.index_select(0, c.reshape(-1)).reshape(c.shape[0], kc, -1)
        dots = torch.bmm(G, A[:, :, None])[:, :, 0]
        out[s:s + c.shape[0]] = x_sq[sl.start + s:sl.start + s + c.shape[0], None] + x_sq[c] - 2.0 * dots
    return out


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
