"""Nearest neighbours of every row, searched in the features or in their top principal components.

Used by MaxHerding's nearest-neighbour gains (:mod:`bilaf.selectors.maxherding_gains`).
Memory grows with the rows and ``k`` (never N x N): distances are computed in
row chunks sized by ``memory_budget``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import pairwise_distances, sq_norms
from ..utils.progress import progress
from ..validation import parse_memory_budget

PAIR_STEP = 16  # rows per gather when the exact distances to the neighbours found are computed

__all__ = ["knn_graph"]


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
