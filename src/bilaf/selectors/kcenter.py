"""Greedy k-centre (FDS in the BiLAF paper; CoreSet, Sener & Savarese 2018)."""

from __future__ import annotations

import numpy as np
import torch

from ..kernels import distances_to_point, progress, sq_norms
from ..result import SelectionResult
from .base import BaseSelector, Timer


class KCenterGreedy(BaseSelector):
    """Greedy k-centre: repeatedly take the sample farthest from those chosen.

    Deterministic: it starts from the sample nearest the pool mean, and ties
    go to the lower index. Memory is O(N): one vector of distances to the
    nearest chosen sample is kept and lowered after each pick.
    """

    name = "kcenter"

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("kcenter"):
            x_sq = sq_norms(X)
            first = int(torch.argmin(distances_to_point(X, X.mean(dim=0), X_sq=x_sq)))
            chosen = [first]
            min_d = distances_to_point(X, X[first], X_sq=x_sq)
            min_d[first] = -1.0
            for _ in progress(range(budget - 1), desc="k-centre", enabled=self.verbose and budget > 200):
                nxt = int(torch.argmax(min_d))  # first index among ties
                chosen.append(nxt)
                torch.minimum(min_d, distances_to_point(X, X[nxt], X_sq=x_sq), out=min_d)
                min_d[nxt] = -1.0  # chosen samples are never taken again
        return SelectionResult(indices=np.asarray(chosen, dtype=np.int64))
