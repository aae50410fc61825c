"""K-Means: the pool sample nearest each of ``budget`` centroids."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..kernels import nearest_distinct_samples
from ..result import SelectionResult
from .base import BaseSelector, Timer

MINIBATCH_ABOVE = 100_000


class KMeansSelector(BaseSelector):
    """Cluster the pool into ``budget`` groups and take the sample nearest each centroid.

    Parameters
    ----------
    algorithm : {"auto", "full", "minibatch", "faiss"}
        ``auto``: scikit-learn's ``KMeans`` up to 100,000 samples, else
        ``MiniBatchKMeans``. ``faiss`` uses ``faiss.Kmeans`` (``pip install bilaf[faiss]``).
    n_init : int, default=1
    max_iter : int, default=100
    """

    name = "kmeans"

    def __init__(self, *, algorithm: str = "auto", n_init: int = 1, max_iter: int = 100, random_state: Any = None,
                 normalize: bool = False, dtype: str = "float32", device: str = "cpu", memory_budget: Any = "1GB",
                 verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.algorithm = algorithm
        self.n_init = n_init
        self.max_iter = max_iter

    def _check_params(self, n_samples: int, budget: int) -> None:
        from ..validation import check_choice, check_positive_int

        check_choice(self.algorithm, "algorithm", ("auto", "full", "minibatch", "faiss"))
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.max_iter, "max_iter")
        if self.algorithm == "faiss":
            try:
                import faiss  # noqa: F401
            except ImportError:
                raise ValueError("algorithm='faiss' needs faiss: pip install 'bilaf[faiss]'") from None

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("kmeans"):
            centers = kmeans_centers(X, budget, rng, algorithm=self.algorithm, n_init=self.n_init,
                                     max_iter=self.max_iter, verbose=self.verbose)
        with timer.stage("nearest samples"):
            idx = nearest_distinct_samples(X, torch.as_tensor(centers, device=X.device), metric="euclidean",
                                           dtype=self._tdtype, memory_budget=self.memory_budget)
        return SelectionResult(indices=idx)


def kmeans_centers(X: torch.Tensor, k: int, rng: np.random.Generator, *, algorithm: str = "auto", n_init: int = 1,
                   max_iter: int = 100, verbose: bool = False) -> np.ndarray:
    """``k`` centroids of the rows of ``X`` (numpy float32, shape (k, d))."""
    A = X.detach().to("cpu", torch.float32).numpy()
    seed = int(rng.integers(0, 2**31 - 1))
    n = A.shape[0]
    if algorithm == "faiss":
        import faiss

        km = faiss.Kmeans(A.shape[1], k, niter=max_iter, nredo=n_init, seed=seed, verbose=verbose,
                          max_points_per_centroid=max(256, (n + k - 1) // k))
        km.train(np.ascontiguousarray(A))
        return km.centroids
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates: fewer distinct points than clusters
        if algorithm == "minibatch" or (algorithm == "auto" and n > MINIBATCH_ABOVE):
            km = MiniBatchKMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed,
                                 batch_size=max(4096, 3 * k), compute_labels=False)
        else:
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
        km.fit(A)
    return km.cluster_centers_.astype(np.float32)
