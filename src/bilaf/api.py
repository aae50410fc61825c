"""The one-line entry point."""

from __future__ import annotations

from typing import Any

from .constraints import constrained_select
from .params import validate_params
from .result import SelectionResult
from .selectors import get_selector_class


def select(X: Any, budget: Any, method: str = "bilaf", random_state: Any = None, labeled: Any = None,
           candidates: Any = None, exclude: Any = None, dedup: Any = None, **params: Any) -> SelectionResult:
    """Choose ``budget`` samples of the pool ``X`` to label.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Features of the unlabeled pool (numpy array, memory map or tensor).
    budget : int or float
        How many to select: a count in ``[1, n_samples]``, or a fraction of the
        pool in ``(0, 1)``.
    method : str, default="bilaf"
        One of ``"bilaf"``, ``"activeft"``, ``"kmeans"``, ``"kcenter"``,
        ``"typiclust"``, ``"probcover"``, ``"maxherding"``, ``"random"``.
    random_state : None, int or numpy.random.Generator
        Seed for every random choice.
    labeled : array-like of int or None
        Warm start: pool indices already labeled; they count towards the
        budget and come first in the result.
    candidates, exclude : array-like of int or None
        Only ``candidates`` (default: all) minus ``exclude`` may be picked
        (see :func:`bilaf.constraints.constrained_select`).
    dedup : float in (0, 1] or None
        Drop near-duplicates (cosine similarity >= ``dedup``) before
        selecting; ``result.params["constraints"]`` lists the dropped samples.
    **params
        Hyper-parameters of the chosen selector's constructor (e.g. ``n_cores``
        for BiLAF). Unknown names raise ``TypeError``.

    Returns
    -------
    SelectionResult

    Examples
    --------
    >>> import numpy as np, bilaf
    >>> X = np.random.default_rng(0).normal(size=(500, 16)).astype("float32")
    >>> res = bilaf.select(X, 20, method="kmeans", random_state=0)
    >>> len(res.indices)
    20
    """
    cls = get_selector_class(method)
    validate_params(cls, params, owner=f"method {method!r}", exclude=("random_state",))
    selector = cls(random_state=random_state, **params)
    return constrained_select(selector, X, budget, labeled=labeled, candidates=candidates, exclude=exclude,
                              dedup=dedup)
