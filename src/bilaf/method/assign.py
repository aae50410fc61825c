"""Stage 2, step 1: every sample joins the pseudo-class of its nearest core."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import torch

from ..kernels.distances import nearest_centers


def assign_to_cores(X: torch.Tensor, core_indices: np.ndarray, *, dtype: torch.dtype, memory_budget: Any,
                    show_progress: bool = False) -> Tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Assign each sample to its nearest core, and find its nearest *other* core.

    Parameters
    ----------
    X : torch.Tensor of shape (n, d)
    core_indices : numpy.ndarray of int64, shape (K,)
        Pool indices of the cores; position k numbers pseudo-class k.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n,)
        ``c(j) = argmin_k D(f_j, f_core_k)`` (ties: lower k). A core always
        joins its own pseudo-class, even when another core has identical
        features.
    d_inter : torch.Tensor of shape (n,)
        ``min_{l != c(j)} D(f_j, f_core_l)``; ``inf`` when K = 1.
    opponent : torch.Tensor of int64, shape (n,)
        The ``l`` attaining ``d_inter`` (-1 when K = 1).
    """
    n = X.shape[0]
    K = len(core_indices)
    C = X[torch.as_tensor(core_indices, device=X.device)]
    dist, idx = nearest_centers(X, C, k=2, dtype=dtype, memory_budget=memory_budget,
                                show_progress=show_progress, desc="assign to cores")
    labels_t = idx[:, 0].clone()
    core_t = torch.as_tensor(core_indices, device=X.device)
    labels_t[core_t] = torch.arange(K, device=X.device)
    if K == 1:
        d_inter = torch.full((n,), float("inf"), dtype=dist.dtype, device=X.device)
        opponent = torch.full((n,), -1, dtype=torch.int64, device=X.device)
        return labels_t.cpu().numpy(), d_inter, opponent
    # Nearest other core: the second candidate when the first is the own class; otherwise the
    # first (only a core whose features equal an earlier core's is not its own first candidate).
    own_first = idx[:, 0] == labels_t
    d_inter = torch.where(own_first, dist[:, 1], dist[:, 0])
    opponent = torch.where(own_first, idx[:, 1], idx[:, 0])
    return labels_t.cpu().numpy(), d_inter, opponent
