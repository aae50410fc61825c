"""The exact row-wise argmax of ``F @ C.T`` across calls whose centres move a little: ActiveFT's and Lloyd's
assignment step, pruned by a movement bound."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks

__all__ = ["TrackedArgmax"]


class TrackedArgmax:
    """Exact row-wise max and argmax of ``F @ C.T`` for centres ``C`` that move a little each call.

    ActiveFT asks, at every one of its hundreds of steps, which centroid each
    pool sample is most similar to. The centroids move slowly, so most
    samples keep their answer. This class keeps, per sample, its ``L`` most
    similar centres (the candidates, found by one full pass) and the
    similarity ``g`` of the best centre outside them at that time. A later
    call computes only the ``N x L`` candidate similarities (a sampled sparse
    product) and bounds every other centre: centre ``j`` moved by at most
    ``delta`` since the row's candidates were found, so its similarity with
    ``f`` grew by at most ``|f| * delta`` (Cauchy-Schwarz). Where the best
    candidate beats ``g + |f| * delta`` the answer is proven; the other rows
    get a full row pass (and new candidates), and when more than
    ``refresh_fraction`` of the rows fail, every row does.

    The result equals the full computation's (ties go to the lower centre
    index, as ``torch.max`` does) except that the candidate similarities are
    summed in a different order than a matrix product, so two centres whose
    similarities differ by a rounding error may swap. ``delta`` is the sum of
    the largest per-call movement since the row's refresh (a safe upper bound
    of the real movement).

    Parameters
    ----------
    F : torch.Tensor of shape (n, d)
        The rows (fixed across calls).
    n_candidates : int, default=4
        ``L``, candidates kept per row.
    refresh_fraction : float, default=0.5
        Fraction of failing rows above which all rows are recomputed.
    memory_budget : str or int
        Bound on the temporaries of the full passes.

    Attributes
    ----------
    n_full_ : int
        Full passes made.
    n_rows_recomputed_ : int
        Rows recomputed outside full passes.
    """

    def __init__(self, F: torch.Tensor, *, n_candidates: int = 4, refresh_fraction: float = 0.5,
                 memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> None:
        self.F = F
        self.L = int(n_candidates)
        self.refresh_fraction = float(refresh_fraction)
        self.memory_budget = memory_budget
        self.norms = F.norm(dim=1).to(torch.float64)
        eps = torch.finfo(F.dtype).eps
        # slack for the different summation order of the sparse and dense products
        self.slack = 64.0 * eps * float(self.norms.max()) * max(1.0, float(F.shape[1]) ** 0.5)
        self.n_full_ = 0
        self.n_rows_recomputed_ = 0
        self._cand: Optional[torch.Tensor] = None
        self._prev: Optional[torch.Tensor] = None

    def _row_pass(self, rows: Optional[torch.Tensor], C: torch.Tensor, s: torch.Tensor, pos: torch.Tensor,
                  out: Optional[torch.Tensor] = None) -> None:
        """Full similarity rows for ``rows`` of ``F`` (all when None): exact max, new candidates and ``g``.

        Answers go to ``s[out]``, ``pos[out]`` (``out`` defaults to ``rows``)."""
        n = self.F.shape[0] if rows is None else rows.numel()
        K = C.shape[0]
        for sl in row_chunks(n, K, self.memory_budget, itemsize=self.F.element_size(), temporaries=2):
            idx = slice(sl.start, sl.stop) if rows is None else rows[sl]
            dst = idx if out is None else out[sl]
            S = self.F[idx] @ C.T
            v, i = torch.max(S, dim=1)  # the answer: torch.max gives the first index among ties
            s[dst] = v
            pos[dst] = i
            picks = [i]
            for _ in range(self.L):  # the next best, one max pass each (cheaper than topk on the CPU)
                S.scatter_(1, picks[-1][:, None], float("-inf"))
                v, i = torch.max(S, dim=1)
                picks.append(i)
            cand, _ = torch.sort(torch.stack(picks[: self.L], dim=1), dim=1)
            self._cand[idx] = cand
            self._g[idx] = v.to(torch.float64)  # the best similarity outside the candidates
            self._at[idx] = self._cum

    def __call__(self, C: torch.Tensor, rows: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Max similarity and its centre index, against the rows of ``C``, for every row of ``F``
        (or for ``F[rows]``, in the order of ``rows``: mini-batches)."""
        N, K = self.F.shape[0], C.shape[0]
        n = N if rows is None else rows.numel()
        C = C.detach()
        s = torch.empty(n, dtype=self.F.dtype, device=self.F.device)
        pos = torch.empty(n, dtype=torch.int64, device=self.F.device)
        if K <= self.L + 1:  # nothing to prune
            for sl in row_chunks(n, K, self.memory_budget, itemsize=self.F.element_size(), temporaries=2):
                idx = sl if rows is None else rows[sl]
                s[sl], pos[sl] = torch.max(self.F[idx] @ C.T, dim=1)
            self.n_full_ += 1
            return s, pos
        if self._cand is None or self._prev is None or self._prev.shape != C.shape:
            # no row has candidates yet: an "at" of -inf makes every bound infinite
            self._cand = torch.arange(self.L, device=self.F.device).repeat(N, 1)
            self._g = torch.zeros(N, dtype=torch.float64, device=self.F.device)
            self._at = torch.full((N,), float("-inf"), dtype=torch.float64, device=self.F.device)
            self._cum = 0.0
        else:
            self._cum += float((C - self._prev).norm(dim=1).max())
        self._prev = C.clone()
        at = self._at if rows is None else self._at[rows]
        if bool(torch.isinf(at).all()):
            fail = None  # nothing to prove from: every row in full
        else:
            cand = self._cand if rows is None else self._cand[rows]
            Fr = self.F if rows is None else self.F[rows]
            crow = torch.arange(0, n * self.L + 1, self.L, device=self.F.device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                pattern = torch.sparse_csr_tensor(crow, cand.reshape(-1),
                                                  torch.zeros(n * self.L, dtype=C.dtype, device=C.device),
                                                  size=(n, K), check_invariants=False)
                vals = torch.sparse.sampled_addmm(pattern, Fr, C.T, beta=0.0).values().view(n, self.L)
            best, j = torch.max(vals, dim=1)
            s.copy_(best)
            pos.copy_(cand.gather(1, j[:, None])[:, 0])
            g = self._g if rows is None else self._g[rows]
            norms = self.norms if rows is None else self.norms[rows]
            bound = g + (self._cum - at) * norms + self.slack
            fail = torch.nonzero(best.to(torch.float64) <= bound)[:, 0]
        if fail is None or fail.numel() > self.refresh_fraction * n:
            self._row_pass(rows, C, s, pos, out=None if rows is None else torch.arange(n, device=self.F.device))
            self.n_full_ += 1
        elif fail.numel():
            self._row_pass(fail if rows is None else rows[fail], C, s, pos, out=fail)
            self.n_rows_recomputed_ += int(fail.numel())
        return s, pos
