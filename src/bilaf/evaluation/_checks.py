"""Checks shared by the evaluation protocols: labeled train/test sets that fit together."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..errors import ValidationError, ValidationTypeError
from ..validation import check_features

__all__ = ["check_labels", "check_split"]


def check_labels(y: Any, n_rows: int, *, name: str = "labels", rows_name: str = "feature rows") -> np.ndarray:
    """Validate class labels for ``n_rows`` samples and return them as int64.

    Raises ``ValueError`` (one line) when labels are absent, of the wrong
    length, not integers, or marked missing (negative, the ``-1`` of
    :class:`~bilaf.features.FeatureSet`).
    """
    if y is None:
        raise ValidationError(f"{name} are missing: evaluation needs the true class of every sample")
    arr = np.asarray(y)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValidationTypeError(f"{name} must be integer class ids, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise ValidationError(f"{arr.shape[0]} {name} for {n_rows} {rows_name}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValidationTypeError(f"{name} must be integer class ids, got non-integer values")
    arr = arr.astype(np.int64)
    missing = int((arr < 0).sum())
    if missing:
        raise ValidationError(f"{name}: {missing} of {n_rows} samples have no label (negative class id); "
                         "label them or leave them out")
    return arr


def check_split(train_X: Any, train_y: Any, test_X: Any, test_y: Any) -> Tuple[Any, np.ndarray, Any, np.ndarray]:
    """Validate a labeled train set and test set of features (same width)."""
    train_X = check_features(train_X, min_samples=1, name="train_X")
    test_X = check_features(test_X, min_samples=1, name="test_X")
    train_y = check_labels(train_y, int(train_X.shape[0]), name="train_y", rows_name="train_X rows")
    test_y = check_labels(test_y, int(test_X.shape[0]), name="test_y", rows_name="test_X rows")
    if int(train_X.shape[1]) != int(test_X.shape[1]):
        raise ValidationError(f"train_X has {train_X.shape[1]} feature columns but test_X has {test_X.shape[1]}")
    return train_X, train_y, test_X, test_y


def l2_normalize(A: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.maximum(norms, 1e-12)
