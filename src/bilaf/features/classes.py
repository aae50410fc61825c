"""Class names: put the labels of two feature files (a pool and a test set) on one set of class ids.

A feature file made from a folder numbers its classes by the sub-folders it
saw, so a test folder that lacks one class numbers the others differently
from the pool. Comparing bare integers would then score a right prediction as
wrong. :func:`align_labels` maps both files' labels to the pool's class ids
by name whenever both files carry class names.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from ..errors import ValidationError

__all__ = ["LabelAlignment", "align_labels"]


class LabelAlignment(NamedTuple):
    """Labels of a pool and a test set on one numbering.

    Attributes
    ----------
    train_labels, test_labels : numpy.ndarray of int64
        The labels on the shared numbering (-1 stays -1: unknown).
    classes : list of str or None
        Name of each class id (the pool's names, then test-only names);
        None when the labels are compared as bare integers.
    test_only : list of str
        Classes of the test labels that the pool's class names lack. No model
        trained on the pool predicts them, so their test rows count as errors.
    """

    train_labels: np.ndarray
    test_labels: np.ndarray
    classes: Optional[List[str]]
    test_only: List[str]


def _checked_names(classes: Optional[Sequence[str]], labels: np.ndarray, what: str) -> Optional[List[str]]:
    if not classes:
        return None
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        dup = next(c for c in names if names.count(c) > 1)
        raise ValidationError(f"{what}: class name {dup!r} is listed twice")
    top = int(labels.max()) if labels.size else -1
    if top >= len(names):
        raise ValidationError(f"{what}: label {top} but only {len(names)} class names")
    return names


def align_labels(train_labels: np.ndarray, train_classes: Optional[Sequence[str]], test_labels: np.ndarray,
                 test_classes: Optional[Sequence[str]], *, train_what: str = "pool",
                 test_what: str = "test") -> LabelAlignment:
    """Put pool and test labels on the pool's class ids, by class name when both sides have names.

    Parameters
    ----------
    train_labels, test_labels : array-like of int, shape (n,) and (m,)
        Class ids (-1 = unknown), each indexing its own side's ``classes``.
    train_classes, test_classes : sequence of str or None
        Class name of each id. When either is None or empty, the labels are
        returned unchanged (compared as bare integers).
    train_what, test_what : str
        How the two sides are named in error messages.

    Returns
    -------
    LabelAlignment
        Test labels renumbered to the pool's ids; a test class the pool lacks
        gets a new id past the pool's (its rows cannot be predicted and count
        as errors) and is listed in ``test_only``.

    Raises
    ------
    ValueError
        When both sides have names but none of the test labels' classes is
        among the pool's (two different label sets: nothing can be matched),
        when a name is listed twice, or when a label has no name.
    """
    y = np.asarray(train_labels).astype(np.int64)
    ty = np.asarray(test_labels).astype(np.int64)
    names = _checked_names(train_classes, y, train_what)
    tnames = _checked_names(test_classes, ty, test_what)
    if names is None or tnames is None:
        return LabelAlignment(y, ty, None, [])
    used = sorted(set(int(v) for v in np.unique(ty) if v >= 0))
    known = {c: i for i, c in enumerate(names)}
    if used and not any(tnames[v] in known for v in used):
        raise ValidationError(f"the class names of {test_what} ({', '.join(repr(tnames[v]) for v in used[:3])}"
                         f"{', ...' if len(used) > 3 else ''}) match none of {train_what}'s "
                         f"({', '.join(repr(c) for c in names[:3])}{', ...' if len(names) > 3 else ''})")
    classes = list(names)
    test_only: List[str] = []
    for v in used:
        if tnames[v] not in known:
            known[tnames[v]] = len(classes)
            classes.append(tnames[v])
            test_only.append(tnames[v])
    lut = np.array([known.get(c, -1) for c in tnames] + [-1], dtype=np.int64)  # last entry: -1 stays -1
    return LabelAlignment(y, lut[ty], classes, test_only)
