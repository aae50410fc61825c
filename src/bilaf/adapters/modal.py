"""modAL query-strategy functions backed by a bilaf selector."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ..api import select
from ..errors import ValidationError

__all__ = ["bilaf_query", "make_query_strategy"]


def _training_rows(learner: Any) -> Optional[np.ndarray]:
    """The rows the learner already has labels for (modAL's ``X_training``), or None."""
    X_train = getattr(learner, "X_training", None)
    if X_train is None:
        return None
    X_train = np.asarray(X_train)
    return X_train if X_train.ndim == 2 and len(X_train) else None


def bilaf_query(classifier: Any, X_pool: Any, n_instances: int = 1, *, method: str = "bilaf",
                random_state: Any = None, **params: Any) -> Tuple[np.ndarray, Any]:
    """Choose ``n_instances`` rows of ``X_pool`` with bilaf: a modAL query strategy.

    Parameters
    ----------
    classifier : modAL learner
        The learner (``ActiveLearner``) asking; bilaf does not use its
        predictions. Its ``X_training`` rows, when it has any, are the warm
        start: they count as chosen and the new picks are made around them.
    X_pool : array-like of shape (n_pool, n_features)
        The unlabeled pool.
    n_instances : int, default=1
        How many rows to choose.
    method : str, default="bilaf"
        The bilaf method (see :func:`bilaf.select`).
    random_state : None, int or numpy.random.Generator
        Seed for every random choice.
    **params
        Options of :func:`bilaf.select` (the method's hyper-parameters,
        ``candidates``, ``exclude``, ``dedup``).

    Returns
    -------
    indices : numpy.ndarray of int64, shape (n_instances,)
        Rows of ``X_pool``, in bilaf's selection order.
    instances : array-like
        ``X_pool[indices]``.

    Examples
    --------
    >>> from functools import partial
    >>> # ActiveLearner(estimator=..., query_strategy=partial(bilaf_query, random_state=0))
    """
    X_pool_arr = np.asarray(X_pool)
    if X_pool_arr.ndim != 2:
        raise ValidationError(f"X_pool must be a 2-d array of features, got shape {X_pool_arr.shape}")
    n_instances = int(n_instances)
    if not 1 <= n_instances <= len(X_pool_arr):
        raise ValidationError(f"n_instances must be between 1 and the pool size {len(X_pool_arr)}, got {n_instances}")
    X_train = _training_rows(classifier)
    if X_train is None:
        res = select(X_pool_arr, n_instances, method=method, random_state=random_state, **params)
        idx = res.indices
    else:
        if X_train.shape[1] != X_pool_arr.shape[1]:
            raise ValidationError(f"the learner's training data has {X_train.shape[1]} features, X_pool "
                             f"{X_pool_arr.shape[1]}")
        n_lab = len(X_train)
        X = np.concatenate([X_train.astype(X_pool_arr.dtype, copy=False), X_pool_arr])
        for key in ("candidates", "exclude"):  # rows of X_pool -> rows of the joint pool
            if params.get(key) is not None:
                params[key] = np.asarray(params[key], dtype=np.int64) + n_lab
        res = select(X, n_lab + n_instances, method=method, random_state=random_state,
                     labeled=np.arange(n_lab), **params)
        idx = res.indices[n_lab:] - n_lab
    idx = np.asarray(idx, dtype=np.int64)
    return idx, X_pool[idx]


def make_query_strategy(method: str = "bilaf", random_state: Any = None, **params: Any) -> Callable[..., Any]:
    """A modAL query strategy ``(classifier, X_pool, n_instances=1)`` running ``method`` with these options.

    See :func:`bilaf_query` for the parameters.
    """
    strategy = functools.partial(bilaf_query, method=method, random_state=random_state, **params)
    functools.update_wrapper(strategy, bilaf_query)
    return strategy
