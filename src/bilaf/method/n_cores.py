"""Choosing K, the number of core samples, without labels (``n_cores="auto"``).

The paper fixes K per data set and shows (its Table 7) that the mean distance
from a sample to its nearest core falls with K at a shrinking rate of return.
``auto_n_cores`` measures that curve on the pool itself and stops adding cores
where the return flattens:

1. On a random subsample (at most ``max(20,000, 10 * budget)`` rows), order
   candidate cores by k-means++ seeding (D^2 sampling): after k seeds the
   mean distance to the nearest seed is ``D(k)``, a good proxy for the
   coverage of k well-placed cores.
2. The return of doubling the cores is ``r(k) = 1 - D(2k) / D(k)``. Clustered
   pools show a steep fall while cores still land in uncovered clusters,
   then a flat tail once every cluster holds one (within a cluster, D falls
   like ``k ** (-1 / d_eff)``, a few percent per doubling).
3. ``K = `` the smallest k with ``r(k) < return_threshold``, scaled by
   ``cores_per_cluster`` (so each natural cluster gets several pseudo-class
   centres), and clipped to ``[budget * min_core_share, budget]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List

import numpy as np
import torch

from ..kernels import distances_to_point, sq_norms


@dataclass
class AutoCores:
    """The decision and the curve behind it."""

    n_cores: int
    knee: int
    ks: List[int] = field(default_factory=list)
    mean_distance: List[float] = field(default_factory=list)
    returns: List[float] = field(default_factory=list)


def coverage_curve(X: torch.Tensor, k_max: int, rng: np.random.Generator, *, max_rows: int = 20_000) -> np.ndarray:
    """``D(k)`` for ``k = 1..k_max``: mean distance to the nearest of the first k k-means++ seeds.

    Computed on a random subsample of at most ``max_rows`` rows; O(k_max * rows * d) time, O(rows) memory.
    """
    n = X.shape[0]
    if n > max_rows:
        rows = np.sort(rng.choice(n, size=max_rows, replace=False))
        S = X[torch.as_tensor(rows, device=X.device)]
    else:
        S = X
    S = S.to(torch.float64) if S.dtype == torch.float64 else S.to(torch.float32)
    m = S.shape[0]
    k_max = max(1, min(k_max, m))
    s_sq = sq_norms(S)
    first = int(rng.integers(m))
    min_d = distances_to_point(S, S[first], X_sq=s_sq)
    curve = np.empty(k_max)
    curve[0] = float(min_d.mean())
    for k in range(1, k_max):
        w = (min_d.double() ** 2).cpu().numpy()
        total = w.sum()
        nxt = int(rng.choice(m, p=w / total)) if total > 0 else int(rng.integers(m))
        torch.minimum(min_d, distances_to_point(S, S[nxt], X_sq=s_sq), out=min_d)
        curve[k] = float(min_d.mean())
    return curve


def auto_n_cores(X: torch.Tensor, budget: int, rng: np.random.Generator, *, return_threshold: float = 0.1,
                 cores_per_cluster: float = 2.0, min_core_share: float = 0.1) -> AutoCores:
    """Choose K from the pool's coverage curve (see the module docstring).

    Parameters
    ----------
    X : torch.Tensor of shape (n, d)
    budget : int
    rng : numpy.random.Generator
    return_threshold : float, default=0.1
        A doubling of the cores that lowers the mean nearest-core distance by
        less than this share counts as a flat return.
    cores_per_cluster : float, default=2.0
        Cores per detected cluster.
    min_core_share : float, default=0.1
        K is at least this share of the budget.

    Returns
    -------
    AutoCores
    """
    n = X.shape[0]
    k_max = max(1, min(budget, n))
    max_rows = max(20_000, 10 * k_max)
    curve = coverage_curve(X, k_max, rng, max_rows=max_rows)
    k_top = len(curve)
    ks, returns = [], []
    knee = k_top
    k = 1
    while 2 * k <= k_top:
        r = 1.0 - curve[2 * k - 1] / curve[k - 1] if curve[k - 1] > 0 else 0.0
        ks.append(k)
        returns.append(float(r))
        if r < return_threshold and knee == k_top:
            knee = k
        k *= 2
    lo = max(1, int(math.ceil(min_core_share * budget)))
    K = int(min(budget, max(lo, round(cores_per_cluster * knee))))
    return AutoCores(n_cores=K, knee=int(knee), ks=ks, mean_distance=[float(curve[k - 1]) for k in ks],
                     returns=returns)
