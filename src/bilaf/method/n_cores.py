"""Choosing K, the number of core samples, without labels (``n_cores="auto"``).

The paper fixes K per data set and shows (its Table 7) that the mean distance
from a sample to its nearest core falls with K at a shrinking rate of return.
``auto_n_cores`` measures that curve on the pool itself and stops adding cores
where the return flattens:

1. On a random subsample (at most 10,000 rows), order
   candidate cores by k-means++ seeding (D^2 sampling): after k seeds the
   mean distance to the nearest seed is ``D(k)``, a good proxy for the
   coverage of k well-placed cores.
2. The return of doubling the cores is ``r(k) = 1 - D(2k) / D(k)``. Clustered
   pools show a steep fall while cores still land in uncovered clusters,
   then a flat tail once every cluster holds one (within a cluster, D falls
   like ``k ** (-1 / d_eff)``, a few percent per doubling).
3. ``knee`` is where the last doubling with ``r >= return_threshold`` ends
   (about the number of natural clusters; 1 when no doubling pays, as on
   features without cluster structure at this scale).
   ``K = clip(cores_per_cluster * knee, min_core_share * budget, budget)``:
   when the budget is small against the number of clusters, every pick is a
   core (BiLAF becomes its core selector); when it is large, a fifth of it
   goes to cores and the rest to boundary samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch



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

    Computed on a random subsample of at most ``max_rows`` rows (numpy, float32);
    O(k_max * rows * d) time, O(rows) memory.
    """
    n = X.shape[0]
    rows = np.sort(rng.choice(n, size=max_rows, replace=False)) if n > max_rows else np.arange(n)
    S = X[torch.as_tensor(rows, device=X.device)].detach().to("cpu", torch.float32).numpy()
    m = S.shape[0]
    k_max = max(1, min(k_max, m))
    s_sq = np.einsum("ij,ij->i", S, S)

    def dist_to(i: int) -> np.ndarray:
        return np.sqrt(np.maximum(s_sq + s_sq[i] - 2.0 * (S @ S[i]), 0.0))

    min_d = dist_to(int(rng.integers(m)))
    curve = np.empty(k_max)
    curve[0] = float(min_d.mean())
    for k in range(1, k_max):
        cdf = np.cumsum(min_d.astype(np.float64) ** 2)
        nxt = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")) if cdf[-1] > 0 else int(rng.integers(m))
        np.minimum(min_d, dist_to(min(nxt, m - 1)), out=min_d)
        curve[k] = float(min_d.mean())
    return curve


def auto_n_cores(X: torch.Tensor, budget: int, rng: np.random.Generator, *, return_threshold: float = 0.1,
                 cores_per_cluster: float = 2.0, min_core_share: float = 0.2, max_rows: int = 10_000) -> AutoCores:
    """Choose K from the pool's coverage curve (see the module docstring).

    Parameters
    ----------
    X : torch.Tensor of shape (n, d)
    budget : int
    rng : numpy.random.Generator
    return_threshold : float, default=0.1
        A doubling of the cores that lowers the mean nearest-core distance by
        at least this share still pays; the last such doubling ends at ``knee``
        cores (1 when none pays: no cluster structure at this scale).
    cores_per_cluster : float, default=2.0
        K is at least ``cores_per_cluster * knee``.
    min_core_share : float, default=0.2
        K is at least this share of the budget (the paper's CIFAR-10 ratio at
        its smallest budget, 50 cores for 250 picks).
    max_rows : int, default=10,000
        Subsample size for the curve; the curve stops at ``max_rows / 20`` seeds.

    Returns
    -------
    AutoCores
    """
    n = X.shape[0]
    k_cap = max(1, min(budget, n, max_rows // 20))
    curve = coverage_curve(X, k_cap, rng, max_rows=max_rows)
    ks, returns = [], []
    knee = 1
    k = 1
    while 2 * k <= len(curve):
        r = 1.0 - curve[2 * k - 1] / curve[k - 1] if curve[k - 1] > 0 else 0.0
        ks.append(k)
        returns.append(float(r))
        if r >= return_threshold:
            knee = 2 * k
        k *= 2
    if knee >= k_cap and len(curve) >= 2:  # still paying at the end of the curve: structure beyond what we see
        knee = budget
    lo = max(1, int(math.ceil(min_core_share * budget)))
    K = int(min(budget, max(lo, round(cores_per_cluster * knee))))
    return AutoCores(n_cores=K, knee=int(knee), ks=ks, mean_distance=[float(curve[k - 1]) for k in ks],
                     returns=returns)
