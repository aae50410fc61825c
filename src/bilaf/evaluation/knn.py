"""Weighted cosine kNN on frozen features (the DINO kNN protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.tensors import resolve_device
from ..threads import thread_limited
from ..validation import check_positive_int, check_positive_number
from ._checks import check_split

__all__ = ["knn", "KNN_DEFAULTS"]

KNN_DEFAULTS = {"k": 20, "temperature": 0.07}


def _as_tensor(A: Any, device: torch.device) -> torch.Tensor:
    if isinstance(A, torch.Tensor):
        return A.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(A, dtype=np.float32), device=device)


@thread_limited
def knn(train_X: Any, train_y: Any, test_X: Any, test_y: Any, *, k: int = KNN_DEFAULTS["k"],
        temperature: float = KNN_DEFAULTS["temperature"], device: str = "cpu",
        memory_budget: Any = DEFAULT_MEMORY_BUDGET, random_state: Any = None, return_predictions: bool = False):
    """Accuracy of a weighted k-nearest-neighbour vote in cosine similarity.

    The protocol of DINO (Caron et al., 2021) that the BiLAF paper reports
    (Table 10): features are L2-normalised; each test sample takes its ``k``
    most cosine-similar training samples, each voting for its class with weight
    ``exp(similarity / temperature)``; the class with the largest total wins.

    Parameters
    ----------
    train_X : array-like of shape (n_train, d)
        Features of the labeled (selected) samples.
    train_y : array-like of int, shape (n_train,)
    test_X : array-like of shape (n_test, d)
    test_y : array-like of int, shape (n_test,)
    k : int, default=20
        Neighbours per test sample (at most ``n_train`` are used).
    temperature : float, default=0.07
        Softness of the vote weights.
    device : {"cpu", "cuda", "auto"}, default="cpu"
    memory_budget : str or int, default="1GB"
        Bound on the test x train similarity block computed at a time.
    random_state : ignored
        The protocol is deterministic (ties in similarity go to the lower
        training index, ties in votes to the lower class id).
    return_predictions : bool, default=False
        Also return the predicted class of each test sample.

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly, in [0, 1].
    predictions : numpy.ndarray of int64, shape (n_test,)
        Only when ``return_predictions``.
    """
    train_X, train_y, test_X, test_y = check_split(train_X, train_y, test_X, test_y)
    k = check_positive_int(k, "k")
    check_positive_number(temperature, "temperature")
    dev = resolve_device(device)
    A = torch.nn.functional.normalize(_as_tensor(train_X, dev), dim=1)
    n_train = A.shape[0]
    k = min(k, n_train)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    ya = torch.as_tensor(train_y, device=dev)
    n_test = int(test_X.shape[0])
    pred = np.empty(n_test, dtype=np.int64)
    for sl in row_chunks(n_test, n_train + n_classes, memory_budget, itemsize=4, temporaries=3):
        B = torch.nn.functional.normalize(_as_tensor(test_X[sl], dev), dim=1)
        sim = B @ A.T
        top_sim, top_idx = torch.topk(sim, k, dim=1, sorted=True)
        weights = torch.exp(top_sim / float(temperature))
        votes = torch.zeros(B.shape[0], n_classes, device=dev, dtype=weights.dtype)
        votes.scatter_add_(1, ya[top_idx], weights)
        pred[sl] = torch.argmax(votes, dim=1).cpu().numpy()
    acc = float((pred == test_y).mean())
    return (acc, pred) if return_predictions else acc
