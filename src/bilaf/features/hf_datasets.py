"""Hugging Face ``datasets``: an image column as an image source, a text column as texts.

Duck-typed: nothing here imports ``datasets`` unless a dataset is given
(``pip install 'bilaf[datasets]'``).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError, ValidationTypeError
from .readers import ImageSource, TextSamples
from .readers.texts import _labels_from_tokens
from .sources import _read

__all__ = ["DatasetSource", "texts_from_dataset", "is_dataset"]

_CHUNK = 256


def is_dataset(source: Any) -> bool:
    """Whether ``source`` looks like a ``datasets.Dataset`` (duck-typed: features, column names, rows).

    A streaming ``IterableDataset`` (no length, no random access) is refused with one line saying how to
    materialise it.
    """
    if isinstance(source, (str, bytes, dict)) or not (hasattr(source, "features") and hasattr(source, "column_names")):
        return False
    if not hasattr(source, "__getitem__") or not hasattr(source, "__len__"):
        raise ValidationTypeError("a streaming (iterable) dataset cannot be embedded as it is; materialise it, e.g. "
                        "datasets.Dataset.from_list(list(ds.take(n)))")
    return True


def _feature_type(feature: Any) -> str:
    return type(feature).__name__


def _pick(dataset: Any, given: Optional[str], want: str, names: Sequence[str], test: Any) -> Optional[str]:
    cols = list(dataset.column_names)
    if given is not None:
        if given not in cols:
            raise ValidationError(f"dataset has no column {given!r} (columns: {', '.join(cols)})")
        return given
    typed = [c for c in cols if test(dataset.features[c])]
    if len(typed) == 1:
        return typed[0]
    named = [c for c in (typed or cols) if c.lower() in names]
    if named:
        return named[0]
    if len(typed) > 1:
        raise ValidationError(f"dataset has several {want} columns ({', '.join(typed)}); name one, e.g. "
                         f"DatasetSource(ds, image_column=...) or ds.select_columns([...])")
    return None


def _dataset_labels(dataset: Any, label_column: Optional[str]) -> Tuple[Optional[np.ndarray], Optional[List[str]]]:
    if label_column == "none":
        return None, None
    col = _pick(dataset, label_column, "label", ("label", "labels", "target", "class", "y"),
                lambda f: _feature_type(f) == "ClassLabel")
    if col is None:
        return None, None
    feat = dataset.features[col]
    raw = list(dataset[col])
    if _feature_type(feat) == "ClassLabel":
        return np.asarray([-1 if v is None else int(v) for v in raw], dtype=np.int64), list(feat.names)
    if all(isinstance(v, (int, np.integer)) for v in raw):
        lab = np.asarray(raw, dtype=np.int64)
        return lab, [str(c) for c in range(int(lab.max()) + 1)] if (lab >= 0).any() else None
    if all(isinstance(v, str) for v in raw):
        return _labels_from_tokens(raw)
    raise ValidationError(f"dataset column {col!r} holds neither integers nor class names; pass label_column='none'")


def _dataset_ids(dataset: Any, id_column: Optional[str]) -> List[str]:
    if id_column is not None:
        if id_column not in dataset.column_names:
            raise ValidationError(f"dataset has no column {id_column!r}")
        return [str(v) for v in dataset[id_column]]
    return [str(i) for i in range(len(dataset))]


def _dataset_fingerprint(dataset: Any, base: Dict[str, Any]) -> Dict[str, Any]:
    fp = getattr(dataset, "_fingerprint", None)
    if fp:
        base["dataset_fingerprint"] = str(fp)
    return base


class DatasetSource(ImageSource):
    """The image column of a Hugging Face ``datasets.Dataset`` (images of any sizes).

    Parameters
    ----------
    dataset : datasets.Dataset
    image_column : str, optional
        Default: the one column of ``Image`` type (else one named ``image`` or
        ``img``).
    label_column : str, optional
        Default: the ``ClassLabel`` column (class names from it), else one named
        ``label`` / ``labels`` / ``target``; ``"none"``: no labels.
    id_column : str, optional
        Column of sample names; default the row number.

    Notes
    -----
    Images are read ``_CHUNK`` rows at a time, undecoded where the column is of
    ``Image`` type, and decoded by the backbone's preprocessing in the reader
    threads.
    """

    def __init__(self, dataset: Any, image_column: Optional[str] = None, label_column: Optional[str] = None,
                 id_column: Optional[str] = None) -> None:
        super().__init__()
        if len(dataset) == 0:
            raise ValidationError("the dataset is empty")
        col = _pick(dataset, image_column, "image", ("image", "img", "images", "picture"),
                    lambda f: _feature_type(f) == "Image")
        if col is None:
            raise ValidationError(f"dataset has no image column (columns: {', '.join(dataset.column_names)}); "
                             f"name one: DatasetSource(ds, image_column=...)")
        self.column = col
        if _feature_type(dataset.features[col]) == "Image":
            from datasets import Image as ImageFeature

            dataset = dataset.cast_column(col, ImageFeature(decode=False))
        self.dataset = dataset
        try:  # iterate over the image column alone
            self._images = dataset.select_columns([col])
        except AttributeError:  # pragma: no cover - datasets < 2.12
            self._images = dataset
        self.ids = _dataset_ids(dataset, id_column)
        labels, classes = _dataset_labels(dataset, label_column)
        self.labels = labels if labels is not None else np.full(len(self.ids), -1, dtype=np.int64)
        self.classes = classes
        name = getattr(getattr(dataset, "info", None), "dataset_name", None) or "dataset"
        self.description = f"dataset:{name}[{col}]"

    def fingerprint(self) -> Dict[str, Any]:
        return _dataset_fingerprint(self.dataset, super().fingerprint())

    @staticmethod
    def _raw(item: Any) -> Any:
        if isinstance(item, dict):  # an undecoded Image feature: {"bytes": ..., "path": ...}
            if item.get("bytes"):
                return item["bytes"]
            if item.get("path"):
                return _read(item["path"])
            raise ValidationError("image row has neither bytes nor a path")
        if item is None:
            raise ValidationError("missing image")
        return item

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for lo in range(start, stop, _CHUNK):
            hi = min(stop, lo + _CHUNK)
            rows = self._images[lo:hi][self.column]
            for pos, item in zip(range(lo, hi), rows):
                try:
                    yield pos, self._raw(item)
                except (OSError, ValueError) as exc:
                    yield pos, exc


def texts_from_dataset(dataset: Any, text_column: Optional[str] = None, label_column: Optional[str] = None,
                       id_column: Optional[str] = None) -> TextSamples:
    """The text column of a Hugging Face ``datasets.Dataset`` as :class:`~bilaf.features.readers.TextSamples`.

    Parameters
    ----------
    dataset : datasets.Dataset
    text_column : str, optional
        Default: the one string column, else one named ``text`` / ``sentence`` /
        ``content``.
    label_column, id_column : str, optional
        As for :class:`DatasetSource`.
    """
    if len(dataset) == 0:
        raise ValidationError("the dataset is empty")
    col = _pick(dataset, text_column, "text", ("text", "sentence", "content", "document"),
                lambda f: _feature_type(f) == "Value" and getattr(f, "dtype", "") in ("string", "large_string"))
    if col is None:
        raise ValidationError(f"dataset has no text column (columns: {', '.join(dataset.column_names)}); "
                         f"name one with text_column=...")
    texts = list(dataset[col])
    bad = next((type(t).__name__ for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise ValidationTypeError(f"dataset column {col!r} must hold strings, got {bad}")
    labels, classes = _dataset_labels(dataset, label_column)
    name = getattr(getattr(dataset, "info", None), "dataset_name", None) or "dataset"
    samples = TextSamples(texts=texts, ids=_dataset_ids(dataset, id_column), labels=labels, classes=classes,
                          description=f"dataset:{name}[{col}]")
    return samples
