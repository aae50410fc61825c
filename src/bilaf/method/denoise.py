"""Stage 2, step 2: remove noisy members of each pseudo-class.

``"idc"`` is the paper's Iterative Density-based Clustering; ``"distance"``
(DG) and ``"density"`` (DB) are the paper's ablations (Table 4); ``"none"``
keeps everything. Every variant keeps the core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..kernels import distances_to_point, knn_distances_within, pairwise_distances, row_chunks, sq_norms

DENOISE_METHODS = ("idc", "density", "distance", "none")
MIN_CLUSTER_FOR_DENOISING = 10


def _stable_smallest(values: torch.Tensor, m: int) -> torch.Tensor:
    """Positions of the ``m`` smallest values, ascending; ties by lower position."""
    order = torch.sort(values, stable=True).indices
    return order[:m]


def idc_order(G: torch.Tensor, core_pos: int, *, k: int, cycle_fraction: float, memory_budget: Any) -> np.ndarray:
    """Rank members by Iterative Density-based Clustering.

    Ring 1 is the ``m = max(1, floor(cycle_fraction * n))`` members nearest the
    core (the core first). Each later ring takes the ``m`` untaken members whose
    density distance (mean of the ``k`` smallest distances to the members
    already taken) is smallest. ``floor(n / m)`` rings are formed; members left
    over are never ranked.

    Returns
    -------
    numpy.ndarray of int64
        Member positions in order of joining.
    """
    n = G.shape[0]
    m = max(1, int(n * cycle_fraction))
    n_rings = n // m
    d_core = distances_to_point(G, G[core_pos])
    d_core[core_pos] = -1.0  # the core first, even among exact duplicates
    ring = _stable_smallest(d_core, m)
    taken = torch.zeros(n, dtype=torch.bool, device=G.device)
    taken[ring] = True
    order = [ring]
    g_sq = sq_norms(G)
    kk = max(1, k)
    # per member: its kk smallest distances to the taken members so far (inf-padded)
    best = torch.full((n, kk), float("inf"), dtype=G.dtype, device=G.device)
    new = ring
    for _ in range(1, n_rings):
        cand = torch.nonzero(~taken).squeeze(1)
        for sl in row_chunks(cand.shape[0], new.shape[0] + kk, memory_budget, itemsize=G.element_size()):
            rows = cand[sl]
            D = pairwise_distances(G[rows], G[new], a_sq=g_sq[rows], b_sq=g_sq[new])
            merged = torch.cat([best[rows], D], dim=1)
            best[rows] = torch.topk(merged, kk, dim=1, largest=False, sorted=True).values
        n_taken = int(taken.sum())
        cnt = min(kk, n_taken)
        density = best[cand, :cnt].sum(dim=1) / cnt
        pick = cand[_stable_smallest(density, m)]
        taken[pick] = True
        order.append(pick)
        new = pick
    return torch.cat(order).cpu().numpy().astype(np.int64)


def denoise(G: torch.Tensor, core_pos: int, *, method: str = "idc", k: int = 10, cycle_fraction: float = 0.1,
            remove_fraction: float = 0.1, memory_budget: Any = "1GB") -> np.ndarray:
    """The members of one pseudo-class that survive denoising.

    Parameters
    ----------
    G : torch.Tensor of shape (n, d)
        Features of the members, in pool order.
    core_pos : int
        Position of the core among the members.
    method : {"idc", "density", "distance", "none"}
        ``idc``: keep the first ``floor(|ranked| * (1 - remove_fraction))``
        members in IDC order. ``distance`` (DG): drop the ``remove_fraction``
        farthest from the core. ``density`` (DB): drop the ``remove_fraction``
        with the largest mean distance to their ``k`` nearest members.
        Pseudo-classes with fewer than 10 members are kept whole.

    Returns
    -------
    numpy.ndarray of int64
        Kept member positions, ascending (pool order). Always holds ``core_pos``.
    """
    n = G.shape[0]
    if method == "none" or n < MIN_CLUSTER_FOR_DENOISING:
        return np.arange(n, dtype=np.int64)
    if method == "idc":
        ranked = idc_order(G, core_pos, k=k, cycle_fraction=cycle_fraction, memory_budget=memory_budget)
        keep = ranked[: int(len(ranked) * (1 - remove_fraction))]
    else:
        n_keep = int(n * (1 - remove_fraction))
        if method == "distance":
            badness = distances_to_point(G, G[core_pos])
        elif method == "density":
            badness = knn_distances_within(G, k, memory_budget=memory_budget).mean(dim=1)
        else:  # pragma: no cover - validated at the edge
            raise ValueError(f"unknown denoise method {method!r}")
        badness[core_pos] = -1.0
        keep = torch.sort(badness, stable=True).indices[:n_keep].cpu().numpy()
    keep = np.sort(np.asarray(keep, dtype=np.int64))
    if core_pos not in keep:  # only possible with remove_fraction ~ 1
        keep = np.sort(np.append(keep, core_pos))
    return keep
