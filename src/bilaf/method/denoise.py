"""Stage 2, step 2: remove noisy members of each pseudo-class.

``"idc"`` is the paper's Iterative Density-based Clustering; ``"distance"``
(DG) and ``"density"`` (DB) are the paper's ablations (Table 4); ``"none"``
keeps everything. Every variant keeps the core.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import (distances_to_point, knn_distances_within, mean_distances_within,
                                 pairwise_distances, sq_norms, within_distance_matrix)

DENOISE_METHODS = ("idc", "density", "distance", "none")
MIN_CLUSTER_FOR_DENOISING = 10


def _stable_smallest(values: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` smallest values, ascending; ties by lower position."""
    return np.argsort(values, kind="stable")[:m]


def _block_reader(G: torch.Tensor, D: Optional[np.ndarray], memory_budget: Any):
    """``block(rows, cols)``: the distances between members ``rows`` and ``cols`` as numpy.

    Read from the class's distance matrix ``D`` when there is one, else
    computed in row chunks bounded by ``memory_budget``.
    """
    if D is not None:  # symmetric: gather the few rows of ``cols``, then the columns ``rows``
        return lambda rows, cols: D[cols][:, rows].T
    g_sq = sq_norms(G)

    def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), len(cols)), dtype=np.float64 if G.dtype == torch.float64 else np.float32)
        cols_t = torch.as_tensor(cols, device=G.device)
        for sl in row_chunks(len(rows), len(cols), memory_budget, itemsize=G.element_size()):
            r = torch.as_tensor(rows[sl], device=G.device)
            out[sl] = pairwise_distances(G[r], G[cols_t], a_sq=g_sq[r], b_sq=g_sq[cols_t]).cpu().numpy()
        return out

    return block


def idc_order(G: torch.Tensor, core_pos: int, *, k: int, cycle_fraction: float, memory_budget: Any,
              D: Optional[np.ndarray] = None) -> np.ndarray:
    """Rank members by Iterative Density-based Clustering.

    Ring 1 is the ``m = max(1, floor(cycle_fraction * n))`` members nearest the
    core (the core first). Each later ring takes the ``m`` untaken members whose
    density distance (mean of the ``k`` smallest distances to the members
    already taken) is smallest. ``floor(n / m)`` rings are formed; members left
    over are never ranked.

    Parameters
    ----------
    D : numpy.ndarray of shape (n, n) or None
        The members' (symmetric) distance matrix (:func:`bilaf.kernels.within_distance_matrix`);
        None computes the needed blocks in memory-bounded chunks.

    Returns
    -------
    numpy.ndarray of int64
        Member positions in order of joining.
    """
    n = G.shape[0]
    m = max(1, int(n * cycle_fraction))
    n_rings = n // m
    block = _block_reader(G, D, memory_budget)
    d_core = block(np.arange(n), np.array([core_pos]))[:, 0]
    d_core[core_pos] = -1.0  # the core first, even among exact duplicates
    ring = _stable_smallest(d_core, m)
    taken = np.zeros(n, dtype=bool)
    taken[ring] = True
    order = [ring]
    kk = max(1, k)
    # per member: its kk smallest distances to the taken members so far (inf-padded), ascending
    best = np.full((n, kk), np.inf, dtype=d_core.dtype)
    new = ring
    n_taken = len(ring)
    for _ in range(1, n_rings):
        cand = np.flatnonzero(~taken)
        merged = np.concatenate([best[cand], block(cand, new)], axis=1)
        merged.sort(axis=1)
        best_c = merged[:, :kk]
        best[cand] = best_c
        cnt = min(kk, n_taken)
        density = best_c[:, :cnt].sum(axis=1) / cnt
        pick = cand[_stable_smallest(density, m)]
        taken[pick] = True
        n_taken += len(pick)
        order.append(pick)
        new = pick
    return np.concatenate(order).astype(np.int64)


def denoise(G: torch.Tensor, core_pos: int, *, method: str = "idc", k: int = 10, cycle_fraction: float = 0.1,
            remove_fraction: float = 0.1, memory_budget: Any = DEFAULT_MEMORY_BUDGET, D: Optional[np.ndarray] = None) -> np.ndarray:
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
    D : numpy.ndarray of shape (n, n) or None
        The members' distance matrix, if already computed (``idc`` reads it).

    Returns
    -------
    numpy.ndarray of int64
        Kept member positions, ascending (pool order). Always holds ``core_pos``.
    """
    n = G.shape[0]
    if method == "none" or n < MIN_CLUSTER_FOR_DENOISING:
        return np.arange(n, dtype=np.int64)
    if method == "idc":
        ranked = idc_order(G, core_pos, k=k, cycle_fraction=cycle_fraction, memory_budget=memory_budget, D=D)
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


def denoise_with_intra(G: torch.Tensor, core_pos: int, *, method: str = "idc", k: int = 10,
                       cycle_fraction: float = 0.1, remove_fraction: float = 0.1,
                       memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`denoise`, and the mean intra-class distance of each kept member.

    The pseudo-class's distance matrix is computed once when it fits
    ``memory_budget`` and serves both the IDC rings and ``d_intra``;
    otherwise both are computed in memory-bounded chunks.

    Returns
    -------
    keep : numpy.ndarray of int64
        As :func:`denoise`.
    d_intra : numpy.ndarray of shape (len(keep),)
        For each kept member, its mean distance to all kept members (itself
        included), in ``G``'s precision.
    """
    D = within_distance_matrix(G, memory_budget=memory_budget)
    keep = denoise(G, core_pos, method=method, k=k, cycle_fraction=cycle_fraction,
                   remove_fraction=remove_fraction, memory_budget=memory_budget, D=D)
    if D is not None:
        d_intra = D[keep][:, keep].mean(axis=1)
    else:
        d_intra = mean_distances_within(G[torch.as_tensor(keep, device=G.device)],
                                        memory_budget=memory_budget).cpu().numpy()
    return keep, d_intra
