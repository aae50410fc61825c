"""Greedy k-centre (FDS in the BiLAF paper; CoreSet, Sener & Savarese 2018)."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import ValidationError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..kernels.distances import distances_to_point, sq_norms
from ..params import Interval, Options, Param
from ..result import SelectionResult
from ..utils.progress import progress
from .base import BaseSelector, Timer


class KCenterGreedy(BaseSelector):
    """Greedy k-centre: repeatedly take the sample farthest from those chosen.

    The first centre is a pool row drawn from ``random_state`` (the random
    start of the published CoreSet code), unless ``start`` names it; every
    later pick is deterministic, ties going to the lower index. Memory is
    O(N): one vector of distances to the nearest chosen sample is kept and
    lowered after each pick.

    Parameters
    ----------
    start : int, "mean" or None
        The first centre: a pool row, or ``"mean"`` for the row nearest the
        pool mean (no randomness at all). Default: a row drawn at random
        from the seed (``random_state``).
    """

    name = "kcenter"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "start": Param(Interval(numbers.Integral, 0, None), Options(("mean",)), None,
                       what="none, a pool row or 'mean'",
                       help="the first centre: a pool row, or mean for the row nearest the pool mean (default: a "
                            "row drawn from the seed)"),
    }

    def __init__(self, *, start: Optional[Union[int, str]] = None, random_state: Any = None,
                 normalize: bool = False, dtype: str = "float32", device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.start = start
        self._start_row: Optional[int] = None  # ``start`` as a row of the (sub-)pool _select sees

    def _select_warm(self, X: torch.Tensor, budget: int, labeled: np.ndarray, rng: np.random.Generator,
                     timer: Timer) -> SelectionResult:
        if self.start is None or self.start == "mean":
            return super()._select_warm(X, budget, labeled, rng, timer)
        if int(self.start) in set(labeled.tolist()):
            raise ValidationError("{setting} is one of the already-labeled samples", setting=("start", int(self.start)))
        rest = np.setdiff1d(np.arange(X.shape[0]), labeled)
        self._start_row = int(np.searchsorted(rest, int(self.start)))
        try:
            return super()._select_warm(X, budget, labeled, rng, timer)
        finally:
            self._start_row = None

    def _check_params(self, n_samples: int, budget: int) -> None:
        super()._check_params(n_samples, budget)
        s = self.start
        if s is None or (isinstance(s, str) and s == "mean"):
            return
        if not 0 <= int(s) < n_samples:
            raise ValidationError(f"{{setting}} is not a row of a pool of {n_samples}", setting=("start", int(s)))

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("kcenter"):
            x_sq = sq_norms(X)
            if self.start is None:
                first = int(rng.integers(X.shape[0]))
            elif self.start == "mean":
                first = int(torch.argmin(distances_to_point(X, X.mean(dim=0), X_sq=x_sq)))
            else:
                first = int(self.start) if self._start_row is None else self._start_row
            chosen = [first]
            min_d = distances_to_point(X, X[first], X_sq=x_sq)
            min_d[first] = -1.0
            for _ in progress(range(budget - 1), desc="k-centre", enabled=self.verbose and budget > 200):
                nxt = int(torch.argmax(min_d))  # first index among ties
                chosen.append(nxt)
                torch.minimum(min_d, distances_to_point(X, X[nxt], X_sq=x_sq), out=min_d)
                min_d[nxt] = -1.0  # chosen samples are never taken again
        return SelectionResult(indices=np.asarray(chosen, dtype=np.int64))
