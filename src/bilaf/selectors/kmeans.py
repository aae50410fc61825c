"""K-Means: the pool sample nearest each of ``budget`` centroids (the algorithms: :mod:`bilaf.algorithms.kmeans`)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from ..algorithms.kmeans import ALGORITHMS, check_faiss, kmeans_centers, resolve_algorithm, two_level_kmeans
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..kernels.distances import nearest_distinct_samples
from ..params import Interval, Options, Param
from ..result import SelectionResult
from .base import BaseSelector, Timer


class KMeansSelector(BaseSelector):
    """Cluster the pool into ``budget`` groups and take the sample nearest each centroid.

    Parameters
    ----------
    algorithm : {"auto", "lloyd", "twolevel", "full", "minibatch", "faiss"}
        ``lloyd``: Lloyd's iterations in torch from a k-means++ start
        (:func:`~bilaf.algorithms.kmeans.lloyd_centers`; each iteration's assignment pruned with a
        movement bound, so late iterations cost little). ``twolevel``:
        :func:`~bilaf.algorithms.kmeans.two_level_kmeans`, Lloyd's on about sqrt(budget) coarse
        clusters, then within each coarse cluster on its share of the
        budget; each pick is the member of its coarse cluster nearest its
        centroid. Its time grows with N sqrt(budget), not N x budget.
        ``full``: scikit-learn's ``KMeans``. ``minibatch``: scikit-learn's
        ``MiniBatchKMeans``. ``faiss``: ``faiss.Kmeans`` (``pip install bilaf[faiss]``).
        ``auto``: ``lloyd`` up to 100,000 samples; above that ``twolevel``
        for budgets of 1,000 or more, else ``minibatch``.
    n_init : int, default=1
        Restarts (the best inertia is kept); ``lloyd`` and ``twolevel`` run one.
    max_iter : int, default=100
    """

    name = "kmeans"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "algorithm": Param(Options(ALGORITHMS),
                           help="k-means flavour: lloyd (bilaf's, in torch), twolevel (coarse then fine clusters, "
                                "for large budgets), full or minibatch (scikit-learn), faiss; auto: lloyd up to "
                                "100,000 samples, then twolevel for budgets of 1,000 or more, else minibatch"),
        "n_init": Param(Interval(numbers.Integral, 1, None),
                        help="number of k-means runs with different seeds (the best is kept)"),
        "max_iter": Param(Interval(numbers.Integral, 1, None), help="most k-means iterations per run"),
    }

    def __init__(self, *, algorithm: str = "auto", n_init: int = 1, max_iter: int = 100, random_state: Any = None,
                 normalize: bool = False, dtype: str = "float32", device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.algorithm = algorithm
        self.n_init = n_init
        self.max_iter = max_iter

    def _check_params(self, n_samples: int, budget: int) -> None:
        check_faiss(self.algorithm)

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        if resolve_algorithm(self.algorithm, X.shape[0], budget) == "twolevel":
            with timer.stage("kmeans"):
                seed = int(rng.integers(0, 2**31 - 1))
                tl = two_level_kmeans(X, budget, seed, max_iter=self.max_iter, memory_budget=self.memory_budget,
                                      verbose=self.verbose)
            with timer.stage("nearest samples"):
                idx = tl.nearest_members(X, dtype=self._tdtype, memory_budget=self.memory_budget)
            return SelectionResult(indices=idx)
        with timer.stage("kmeans"):
            centers = kmeans_centers(X, budget, rng, algorithm=self.algorithm, n_init=self.n_init,
                                     max_iter=self.max_iter, verbose=self.verbose, memory_budget=self.memory_budget)
        with timer.stage("nearest samples"):
            idx = nearest_distinct_samples(X, torch.as_tensor(centers, device=X.device), metric="euclidean",
                                           dtype=self._tdtype, memory_budget=self.memory_budget)
        return SelectionResult(indices=idx)
