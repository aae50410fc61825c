"""Choosing K, the number of core samples, without labels (``n_cores="auto"``).

The paper fixes K per data set and shows (its Table 7) that the mean distance
from a sample to its nearest core falls with K at a shrinking rate of return.
``auto_n_cores`` measures that curve on the pool itself:

1. On a random subsample (at most 10,000 rows), order
   candidate cores by k-means++ seeding (D^2 sampling): after k seeds the
   mean distance to the nearest seed is ``D(k)``, a good proxy for the
   coverage of k well-placed cores. ``D`` is the mean of three such curves
   (one seeding's returns wander by about 0.1).
2. The return of doubling the cores is ``r(k) = 1 - D(2k) / D(k)``. Pools made
   of separated clusters show a steep fall while cores still land in
   uncovered clusters (returns of 0.3 to 0.6 per doubling), then a flat tail
   once every cluster holds one (within a cluster, D falls like
   ``k ** (-1 / d_eff)``, a few percent per doubling).
3. **No clear cluster structure** (no doubling returns ``structure_threshold``
   = 0.3 or more): ``K = budget``, every pick is a core and BiLAF returns its
   core selection (by default spherical k-means: ``core_selector="auto"``).
   Every real pool benchmarked (CIFAR-10 EfficientNet features, TREC-6 and
   SST-2 MiniLM features) and the overlapping 100- and 500-class mixtures
   are of this kind: small returns at every scale, and at 0.5-10% budgets
   accuracy rose with the share of the budget spent on cores (the
   benchmarks and the rule they replaced: ``docs/results.md``,
   ``docs/history.md``).
4. **Clear structure**: ``knee`` is where the last doubling that returns at
   least half the largest return ends (about the number of clusters), and
   ``K = clip(cores_per_cluster * knee, min_core_share * budget, budget)``:
   every cluster gets cores first, the rest of the budget goes to boundary
   samples, as in the paper's setting (ten well-separated CIFAR-10 classes
   under DINO features, K = 0.1% of the pool). When the curve still pays at
   its end (more clusters than it can see), ``K = budget``.
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
    structured: bool = False
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


def auto_n_cores(X: torch.Tensor, budget: int, rng: np.random.Generator, *, structure_threshold: float = 0.3,
                 knee_share: float = 0.5, n_curves: int = 3, cores_per_cluster: float = 2.0, min_core_share: float = 0.2,
                 max_rows: int = 10_000) -> AutoCores:
    """Choose K from the pool's coverage curve (see the module docstring).

    Parameters
    ----------
    X : torch.Tensor of shape (n, d)
    budget : int
    rng : numpy.random.Generator
    structure_threshold : float, default=0.3
        The pool counts as clustered when some doubling of the cores lowers the
        mean nearest-core distance by at least this share; otherwise
        ``K = budget`` (all cores, no boundary samples).
    knee_share : float, default=0.5
        On a structured pool, ``knee`` is where the last doubling returning at
        least ``knee_share`` times the largest return ends.
    n_curves : int, default=3
        Coverage curves (k-means++ seedings, each on its own subsample) averaged
        before the returns are read.
    cores_per_cluster : float, default=2.0
        On a structured pool, K is at least ``cores_per_cluster * knee``.
    min_core_share : float, default=0.2
        On a structured pool, K is at least this share of the budget (the
        paper's CIFAR-10 ratio at its smallest budget, 50 cores for 250 picks).
    max_rows : int, default=10,000
        Subsample size for the curve; the curve stops at ``max_rows / 20`` seeds.

    Returns
    -------
    AutoCores
        ``n_cores`` (K), ``knee`` (0 on a pool without structure),
        ``structured``, and the curve: ``ks``, ``mean_distance`` (D(k)),
        ``returns`` (r(k)).
    """
    n = X.shape[0]
    k_cap = max(1, min(budget, n, max_rows // 20))
    # the mean of a few seedings: one k-means++ run's returns wander by +-0.1 from doubling to doubling
    curve = np.mean([coverage_curve(X, k_cap, rng, max_rows=max_rows) for _ in range(n_curves)], axis=0)
    ks, returns = [], []
    k = 1
    while 2 * k <= len(curve):
        r = 1.0 - curve[2 * k - 1] / curve[k - 1] if curve[k - 1] > 0 else 0.0
        ks.append(k)
        returns.append(float(r))
        k *= 2
    curve_info = dict(ks=ks, mean_distance=[float(curve[k - 1]) for k in ks], returns=returns)
    structured = bool(returns) and max(returns) >= structure_threshold
    if not structured:
        return AutoCores(n_cores=int(budget), knee=0, structured=False, **curve_info)
    knee = 2 * max(k for k, r in zip(ks, returns) if r >= knee_share * max(returns))
    if knee >= k_cap:  # still paying at the end of the curve: more clusters than it can see
        knee = budget
    lo = max(1, int(math.ceil(min_core_share * budget)))
    K = int(min(budget, max(lo, round(cores_per_cluster * knee))))
    return AutoCores(n_cores=K, knee=int(knee), structured=True, **curve_info)
