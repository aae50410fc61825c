"""Pieces of ProbCover's delta-ball graph: CSR assembly and the bfloat16 distance screen that keeps it exact.

:class:`_Screen` gives approximate squared distances from a bfloat16 copy of
the features with a proven error bound, so that only the candidate pairs near
the radius are recomputed exactly; :func:`_symmetric_csr` assembles the graph
from its upper-triangle pairs without an N x N matrix.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np
import torch

from ..kernels.distances import sq_norms
from ..validation import parse_memory_budget

__all__ = ["native_bf16"]

SCREEN_PAIR_BATCH = 4096  # pairs per exact recheck (gathered rows stay in cache)


def _gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated column indices of CSR ``rows``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=indices.dtype)
    offsets = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
    return indices[offsets]


def _symmetric_csr(n: int, src: List[np.ndarray], dst: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """CSR (indptr int64, indices int32) of the graph holding each pair (i, j) in both directions."""
    s = np.concatenate(src) if src else np.empty(0, dtype=np.int32)
    d = np.concatenate(dst) if dst else np.empty(0, dtype=np.int32)
    src.clear()
    dst.clear()
    counts = np.bincount(s, minlength=n) + np.bincount(d, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int32)
    # forward edges arrive sorted by source (chunks in order, nonzero() row-major): place them per row
    fill = indptr[:-1].copy()
    _scatter(indices, fill, s, d)
    _scatter(indices, fill, d, s)
    return indptr, indices


def _scatter(indices: np.ndarray, fill: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """Append ``cols`` to the CSR rows ``rows`` at the positions ``fill`` (advanced in place)."""
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    r = rows[order]
    counts = np.bincount(r, minlength=fill.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = fill[r] + (np.arange(r.shape[0]) - starts[r])
    indices[pos] = cols[order]
    fill += counts


class _Screen:
    """Approximate squared distances from a bfloat16 copy of ``X``, with a proven error bound.

    bfloat16 keeps 8 significant bits (unit roundoff ``u = 2**-8``); products
    are accumulated in float32 and rounded to bfloat16 once. For rows ``x, y``
    the computed dot product is then within
    ``(3u + u**2 + 1.01 * d * 2**-24) * |x| |y|`` of the true one (input
    rounding ``2u + u**2``, accumulation ``d`` float32 roundings, output
    rounding ``u``). ``margin`` is twice that for the largest row norm, plus
    float32 slack: every pair with true squared distance ``<= t`` has an
    approximate one ``<= t + margin``. Candidates are then recomputed exactly
    in the selector's precision, so the graph is the exact one.
    """

    def __init__(self, X: torch.Tensor, memory_budget: Any) -> None:
        self.X = X
        self.Xb = X.to(torch.bfloat16)
        self.x_sq = sq_norms(X)
        self.memory_budget = memory_budget
        u = 2.0 ** -8
        d = X.shape[1]
        m2 = float(self.x_sq.max()) if X.shape[0] else 0.0
        self.margin = 2.0 * (3.0 * u + u * u + 1.01 * d * 2.0 ** -24) * m2 + 16 * 2.0 ** -24 * m2 + 1e-12

    def approx_sq(self, rows: Any, cols: Any) -> torch.Tensor:
        """Approximate squared distances between ``X[rows]`` and ``X[cols]`` (``None`` = all rows)."""
        A, a_sq = self.Xb[rows], self.x_sq[rows]
        B, b_sq = (self.Xb, self.x_sq) if cols is None else (self.Xb[cols], self.x_sq[cols])
        D = torch.mm(A, B.T).to(self.X.dtype)
        D.mul_(-2.0).add_(a_sq[:, None]).add_(b_sq[None, :])
        return D

    def exact_sq(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Exact squared distances of the pairs ``(X[i], X[j])``, in batches bounded by the memory budget."""
        out = torch.empty(i.shape[0], dtype=self.X.dtype, device=self.X.device)
        step = max(1, min(SCREEN_PAIR_BATCH,
                          parse_memory_budget(self.memory_budget) // (3 * self.X.shape[1] * self.X.element_size())))
        for s in range(0, i.shape[0], step):
            ii, jj = i[s:s + step], j[s:s + step]
            dots = torch.einsum("nd,nd->n", self.X.index_select(0, ii), self.X.index_select(0, jj))
            out[s:s + step] = (self.x_sq[ii] + self.x_sq[jj] - 2.0 * dots).clamp_(min=0.0)
        return out


def native_bf16(device: torch.device) -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (avx512_bf16 or AMX), read from /proc/cpuinfo."""
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
