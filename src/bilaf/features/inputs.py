"""Opening any supported input: the dispatchers over the sources (folders, archives, arrays, path lists, URLs,
Hugging Face datasets) and the text reader.

The source classes live below: :mod:`bilaf.features.readers` (files, folders, archives, arrays),
:mod:`bilaf.features.sources` (path lists and fsspec URLs), :mod:`bilaf.features.hf_datasets`; this module
imports them, none of them imports this one.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError, ValidationTypeError
from ..utils.files import PathLike
from . import hf_datasets, sources
from .readers import (ARCHIVE_SUFFIXES, ARRAY_SUFFIXES, ArraySource, FolderSource, ImageSource, TarSource,
                      TextSamples, ZipSource)
from .readers.base import _has_suffix, _is_image_name, file_stamp
from .readers.texts import _labels_from_tokens
from .sources import _check_protocol, _read, is_url

__all__ = ["FileListSource", "open_image_source", "read_texts", "guess_kind"]


class FileListSource(ImageSource):
    """Images named by a list of file paths (ids are the paths as given, labels unknown)."""

    def __init__(self, paths: Sequence[PathLike], labels: Any = None) -> None:
        super().__init__()
        self.paths = [p if is_url(p) else Path(p) for p in paths]
        if not self.paths:
            raise ValidationError("empty list of image files")
        for proto in sorted({p.split("://", 1)[0] for p in self.paths if isinstance(p, str)}):
            _check_protocol(f"{proto}://")
        self.ids = [str(p) for p in paths]
        n = len(self.ids)
        if labels is not None:
            lab = np.asarray(labels)
            if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
                raise ValidationError(f"labels must be {n} integers, got shape {lab.shape} dtype {lab.dtype}")
            self.labels = lab.astype(np.int64)
        else:
            self.labels = np.full(n, -1, dtype=np.int64)
        self.rejected = [(str(p), "not an image file (unknown extension)")
                         for p in self.paths if not _is_image_name(PurePosixPath(str(p)).name)]
        self.description = f"files:{n}"

    def item_stamp(self, pos: int) -> str:
        return file_stamp(self.paths[pos])

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            try:
                yield pos, _read(str(self.paths[pos]))
            except (OSError, ValueError) as exc:
                yield pos, exc


def open_image_source(source: Any, split: Optional[str] = None, labels: Any = None) -> ImageSource:
    """Open any supported image input as an :class:`ImageSource`.

    Parameters
    ----------
    source : path, URL, array-like, list, datasets.Dataset or ImageSource
        A folder tree, a ``.tar[.gz|.bz2|.xz]`` / ``.tgz`` / ``.zip`` archive, a
        ``.npy`` / ``.npz`` image array, a text / CSV file listing image paths,
        an in-memory uint8 array (N, H, W) or (N, H, W, 3), a list of image file
        paths or URLs, a list of ``PIL.Image`` objects or of arrays of varying
        sizes, a Hugging Face ``datasets.Dataset`` with an image column, an fsspec
        URL of a folder or of a list file, or an :class:`ImageSource`. See
        :mod:`bilaf.features.sources`.
    split : str, optional
        Sub-folder to read in a ``root/<split>/<class>/<file>`` layout.
    labels : array-like, optional
        Labels for array or list inputs.
    """
    if isinstance(source, ImageSource):
        return source
    if hf_datasets.is_dataset(source):
        if split is not None or labels is not None:
            raise ValidationError("split and labels= do not apply to a dataset; use DatasetSource(ds, label_column=...)")
        return hf_datasets.DatasetSource(source)
    if sources.local_or_url(source):
        if labels is not None:
            raise ValidationError("labels= applies to arrays and lists, not to a URL")
        return sources.open_url(source, split=split)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        if path.is_dir():
            src: ImageSource = FolderSource(path, split=split)
        elif _has_suffix(path, (".zip",)):
            src = ZipSource(path, split=split)
        elif _has_suffix(path, ARCHIVE_SUFFIXES):
            src = TarSource(path, split=split)
        elif _has_suffix(path, ARRAY_SUFFIXES):
            if split is not None:
                raise ValidationError("split applies to folders and archives, not to an image array file")
            src = ArraySource(path, labels=labels)
        elif tarfile.is_tarfile(path):
            src = TarSource(path, split=split)
        elif zipfile.is_zipfile(path):
            src = ZipSource(path, split=split)
        elif _has_suffix(path, sources.LIST_SUFFIXES) or _looks_like_text(path):
            if split is not None:
                raise ValidationError("split applies to folders and archives, not to a list of image paths")
            src = sources.PathListSource(path)
        else:
            raise ValidationError(f"cannot read images from {path}: expected a folder, a .tar/.tar.gz/.zip archive, "
                             f"a .npy/.npz array or a text file listing image paths")
        if labels is not None and not isinstance(src, ArraySource):
            raise ValidationError("labels= applies to arrays and file lists; folders and archives take labels "
                             "from their class folders")
        return src
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        if split is not None:
            raise ValidationError("split applies to folders and archives, not to a list of files")
        return FileListSource(source, labels=labels)
    if sources.is_image_list(source):
        if split is not None:
            raise ValidationError("split applies to folders and archives, not to a list of images")
        return sources.ImageListSource(source, labels=labels)
    if split is not None:
        raise ValidationError("split applies to folders and archives, not to an image array")
    return ArraySource(source, labels=labels)


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return bool(head) and b"\0" not in head


def guess_kind(source: PathLike) -> str:
    """``"image"`` for folders, archives and arrays, ``"text"`` for other files."""
    path = Path(source)
    if path.is_dir() or _has_suffix(path, ARCHIVE_SUFFIXES + ARRAY_SUFFIXES):
        return "image"
    if path.is_file() and (tarfile.is_tarfile(path) or zipfile.is_zipfile(path)):
        return "image"
    if _is_image_name(path.name):
        return "image"
    return "text"


def read_texts(source: Any, label_column: str = "auto") -> TextSamples:
    """Read texts, one sample per non-empty line, with an optional label in front.

    Parameters
    ----------
    source : path, sequence of str, datasets.Dataset or TextSamples
        A text file (UTF-8), the texts themselves, or a Hugging Face dataset with a
        text column (see :func:`bilaf.features.hf_datasets.texts_from_dataset`).
    label_column : {"auto", "first", "none"}
        ``"first"``: each line is ``<label><whitespace or tab><text>`` (labels are
        integers or class names). ``"none"``: the whole line is the text.
        ``"auto"``: ``"first"`` when every line starts with an integer followed
        by a space or tab, else ``"none"``.
    """
    if label_column not in ("auto", "first", "none"):
        raise ValidationError(f"label_column must be 'auto', 'first' or 'none', got {label_column!r}")
    if isinstance(source, TextSamples):
        return source
    if hf_datasets.is_dataset(source):
        return hf_datasets.texts_from_dataset(source, label_column="none" if label_column == "none" else None)
    if isinstance(source, (str, os.PathLike)) and not (isinstance(source, str) and "\n" in source):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"text file not found: {path}")
        if path.is_dir():
            raise ValidationError(f"expected a text file with one sample per line, got a folder: {path}")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read text file {path}: {exc}") from None
        if b"\0" in raw[:4096]:
            raise ValidationError(f"{path} looks like a binary file, not text with one sample per line")
        text = raw.decode("utf-8", errors="replace")
        numbered = [(i + 1, line.rstrip("\r")) for i, line in enumerate(text.split("\n"))]
        numbered = [(i, line) for i, line in numbered if line.strip()]
        if not numbered:
            raise ValidationError(f"text file is empty: {path}")
        ids = [f"{path.name}:{i}" for i, _ in numbered]
        lines = [line for _, line in numbered]
        description = f"text:{path.resolve()}"
    else:
        if isinstance(source, str):
            raise ValidationTypeError("texts must be a file path or a list of strings")
        lines = list(source)
        if not lines:
            raise ValidationError("no texts given (empty list)")
        bad = next((type(t).__name__ for t in lines if not isinstance(t, str)), None)
        if bad is not None:
            raise ValidationTypeError(f"texts must be strings, got {bad}")
        ids = [str(i) for i in range(len(lines))]
        description = f"texts:{len(lines)}"
        if label_column == "auto":
            label_column = "none"
    if label_column == "auto":
        def _int_head(line: str) -> bool:
            head = line.strip().split(None, 1)
            return len(head) == 2 and head[0].lstrip("-").isdigit()

        label_column = "first" if all(_int_head(line) for line in lines) else "none"
    labels = classes = None
    if label_column == "first":
        tokens, texts = [], []
        for i, line in zip(ids, lines):
            parts = line.strip().split(None, 1)
            if len(parts) != 2:
                raise ValidationError(f"line {i}: expected '<label> <text>', got {line.strip()[:60]!r}")
            tokens.append(parts[0])
            texts.append(parts[1])
        labels, classes = _labels_from_tokens(tokens)
    else:
        texts = [line.strip() for line in lines]
    return TextSamples(texts=texts, ids=ids, labels=labels, classes=classes, description=description)
