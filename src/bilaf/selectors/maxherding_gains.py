"""MaxHerding's gains, two ways: the exact kernel between the distinct rows, or the kernel truncated to neighbours.

Both answer what :func:`bilaf.selectors.maxherding._lazy_greedy` asks of a
kernel (:class:`_Kernel`): the candidates and their gains, the gain of one
candidate now, a commit, and the zero-gain fill. :class:`_DenseKernel` is the
exact path for pools of few distinct rows; :class:`_KnnKernel` the path for
large pools (gains from each row's nearest neighbours, exact coverage).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from ..kernels.chunks import row_chunks
from ..kernels.distances import pairwise_distances, sq_norms
from ..validation import parse_memory_budget
from .neighbors import _SearchSpace, knn_graph

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
