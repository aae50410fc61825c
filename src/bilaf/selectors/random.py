"""Uniform random selection."""

from __future__ import annotations

import numpy as np
import torch

from ..result import SelectionResult
from .base import BaseSelector, Timer


class RandomSelector(BaseSelector):
    """Choose ``budget`` samples uniformly at random, without replacement."""

    name = "random"

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("select"):
            idx = rng.choice(X.shape[0], size=budget, replace=False).astype(np.int64)
        return SelectionResult(indices=idx)
