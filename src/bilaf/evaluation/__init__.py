"""Evaluation of a selection: accuracy of a model trained on the selected, labeled samples.

Three protocols, all returning test accuracy in [0, 1]:

- :func:`linear_probe` -- logistic regression on frozen features;
- :func:`knn` -- weighted cosine kNN on frozen features (the DINO protocol, k=20);
- :func:`finetune` -- full finetuning of a torch backbone on the selected images (for a GPU);
- :class:`CachedFinetuner` -- finetuning of the backbone's top blocks + a new head from cached activations
  of the frozen bottom (CPU-feasible; the ``finetune`` protocol of ``bilaf bench``).

:func:`evaluate_features` runs a frozen-feature protocol by name on the rows
``indices`` of a labeled pool.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..threads import thread_limited
from ..errors import ValidationError
from ..validation import check_choice, check_indices
from ._checks import check_labels, check_split
from .cached_finetune import RECIPES, CachedFinetuner, FinetuneRecipe, finetuner_for
from .finetune import FINETUNE_DEFAULTS, as_image_tensor, finetune, random_resized_crop_flip
from .knn import KNN_DEFAULTS, knn
from .linear import LINEAR_DEFAULTS, linear_probe

__all__ = ["linear_probe", "knn", "finetune", "evaluate_features", "FEATURE_PROTOCOLS", "PROTOCOLS",
           "check_labels", "check_split", "as_image_tensor", "random_resized_crop_flip",
           "LINEAR_DEFAULTS", "KNN_DEFAULTS", "FINETUNE_DEFAULTS", "CachedFinetuner", "FinetuneRecipe",
           "RECIPES", "finetuner_for"]

FEATURE_PROTOCOLS = {"linear": linear_probe, "knn": knn}
PROTOCOLS = ("linear", "knn", "finetune")


@thread_limited
def evaluate_features(protocol: str, X: Any, y: Any, indices: Any, test_X: Any, test_y: Any, *,
                      random_state: Any = None, params: Optional[Dict[str, Any]] = None) -> float:
    """Accuracy on ``(test_X, test_y)`` of ``protocol`` trained on the pool rows ``indices``.

    Parameters
    ----------
    protocol : {"linear", "knn"}
    X : array-like of shape (n_pool, d)
        Pool features (a memory map is fine: only the selected rows are read).
    y : array-like of int, shape (n_pool,)
        Pool labels; only those at ``indices`` are used, and they must be known
        (``-1`` elsewhere is fine).
    indices : array-like of int
        The selected pool rows.
    test_X, test_y
        The labeled test set.
    random_state : None or int
        Passed to the protocol.
    params : dict or None
        Extra keyword arguments of the protocol (e.g. ``{"k": 10}``).
    """
    check_choice(protocol, "protocol", tuple(FEATURE_PROTOCOLS))
    n = int(X.shape[0])
    idx = check_indices(indices, n, name="selection")
    if y is None:
        raise ValidationError("labels are missing: evaluation needs the true class of every selected sample")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValidationError(f"{y.shape[0] if y.ndim else 0} labels for {n} feature rows")
    sel_y = y[idx]
    if (sel_y < 0).any():
        raise ValidationError(f"{int((sel_y < 0).sum())} of the {len(idx)} selected samples have no label")
    train_X = np.asarray(X[np.sort(idx)])[np.argsort(np.argsort(idx))]  # sorted read from a memory map
    return FEATURE_PROTOCOLS[protocol](train_X, sel_y, test_X, test_y, random_state=random_state, **(params or {}))
