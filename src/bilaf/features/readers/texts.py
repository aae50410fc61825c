"""Texts with ids and optional labels, as the text readers give them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ValidationError

__all__ = ["TextSamples"]


@dataclass
class TextSamples:
    """Texts with ids and optional labels.

    Attributes
    ----------
    texts : list of str
    ids : list of str
        ``"<file name>:<line number>"`` (1-based) for files, else the row number.
    labels : numpy.ndarray of int64 or None
    classes : list of str or None
    description : str
    """

    texts: List[str]
    ids: List[str]
    labels: Optional[np.ndarray] = None
    classes: Optional[List[str]] = None
    description: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> Dict[str, Any]:
        import hashlib

        h = hashlib.sha1()
        for t in self.texts:
            h.update(t.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return {"description": self.description, "n": len(self.texts), "texts_sha1": h.hexdigest()}


def _labels_from_tokens(tokens: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
    try:
        ints = [int(t) for t in tokens]
    except ValueError:
        classes = sorted(set(tokens))
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[t] for t in tokens], dtype=np.int64), classes
    if min(ints) < 0:
        raise ValidationError(f"integer labels must be >= 0, got {min(ints)}")
    return np.asarray(ints, dtype=np.int64), [str(c) for c in range(max(ints) + 1)]
