"""Sums of weighted rows by group: a sparse product on the CPU, ``index_add_`` on a GPU."""

from __future__ import annotations

import warnings

import torch

__all__ = ["scatter_rows"]


def scatter_rows(pos: torch.Tensor, weights: torch.Tensor, F: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``out[k] = sum_{i: pos[i] = k} weights[i] * F[i]``, shape (n_groups, d).

    On the CPU this is a sparse (n_groups x n) by dense product, several
    times faster than ``index_add_`` there; on a GPU it is ``index_add_``.
    """
    n = F.shape[0]
    if F.device.type != "cpu":
        out = torch.zeros((n_groups, F.shape[1]), dtype=F.dtype, device=F.device)
        return out.index_add_(0, pos, F * weights.to(F.dtype)[:, None])
    order = torch.argsort(pos, stable=True)  # CSR of the (n_groups x n) one-hot matrix, built directly
    crow = torch.zeros(n_groups + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(pos, minlength=n_groups), dim=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        M = torch.sparse_csr_tensor(crow, order, weights.to(F.dtype)[order], size=(n_groups, n),
                                    check_invariants=False)
        return M @ F
