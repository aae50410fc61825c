"""Prototype: float32 matrix products through oneDNN instead of MKL on the CPU.

Not part of the library: a measured proposal for ``bilaf.kernels`` and
``bilaf.selectors.activeft``. On this machine's AMD EPYC, torch's default
float32 ``A @ B.T`` (MKL) runs at about 70 GFLOP/s per core, while the same
product through oneDNN (``torch.nn.functional.linear`` on ``to_mkldnn()``
tensors, in row blocks of 8,192) runs at about 140 GFLOP/s, with results equal
to float32 rounding. :func:`scores` is the drop-in; :func:`patched` swaps it
into ``bilaf`` for a measurement (ActiveFT's nearest-centroid pass and the
kernels' distance blocks).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator
from unittest import mock

import torch

BLOCK = 8192


def available() -> bool:
    return torch.backends.mkldnn.is_available()


def scores(A: torch.Tensor, B: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``A @ B.T`` for float32 CPU tensors through oneDNN (row blocks); other inputs go to ``@``."""
    if A.device.type != "cpu" or A.dtype != torch.float32 or B.dtype != torch.float32 or A.requires_grad \
            or B.requires_grad or not available():
        return A @ B.T
    Bm = B.contiguous().to_mkldnn()
    out = torch.empty((A.shape[0], B.shape[0]), dtype=A.dtype)
    for s in range(0, A.shape[0], block):
        out[s:s + block] = torch.nn.functional.linear(A[s:s + block].contiguous().to_mkldnn(), Bm).to_dense()
    return out


@contextmanager
def patched() -> Iterator[None]:
    """Route bilaf's big float32 products through :func:`scores` (ActiveFT's argmax, the kernels)."""
    from bilaf import kernels
    from bilaf.selectors import activeft

    def pairwise_distances(A, B, *, a_sq=None, b_sq=None, squared=False):
        if a_sq is None:
            a_sq = kernels.sq_norms(A)
        if b_sq is None:
            b_sq = kernels.sq_norms(B)
        d = a_sq[:, None] + b_sq[None, :] - 2.0 * scores(A, B)
        d.clamp_(min=0.0)
        return d if squared else d.sqrt_()

    def _loss(self, Fb, theta, tau):  # the library's surrogate loss, with the product through scores()
        th = torch.nn.functional.normalize(theta, dim=1)
        C = torch.exp(th.detach() @ th.T / tau).sum(dim=0)
        n, K = Fb.shape[0], th.shape[0]
        A = torch.zeros((K, Fb.shape[1]), dtype=Fb.dtype, device=Fb.device)
        b = torch.zeros(K, dtype=Fb.dtype, device=Fb.device)
        with torch.no_grad():
            thd, Cd = th.detach(), C.detach()
            for sl in kernels.row_chunks(n, K, self.memory_budget, itemsize=Fb.element_size(), temporaries=2):
                S = scores(Fb[sl], thd)
                s, pos = torch.max(S, dim=1)
                s = s / tau
                denom = torch.exp(s) + Cd[pos]
                A.index_add_(0, pos, Fb[sl] * (-(Cd[pos] / denom) / n)[:, None])
                b.index_add_(0, pos, (1.0 / denom) / n)
        return (th * A).sum() / tau + (b * C).sum()

    with mock.patch.object(kernels, "pairwise_distances", pairwise_distances), \
            mock.patch.object(activeft.ActiveFT, "_loss", _loss):
        yield
