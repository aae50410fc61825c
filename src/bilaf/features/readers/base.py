"""The image source contract (:class:`ImageSource`) and the conventions every reader shares: suffixes, split names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ...utils.files import PathLike

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_NAMES", "ARCHIVE_SUFFIXES", "ARRAY_SUFFIXES", "PathLike", "ImageSource"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)
SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "unlabeled",
                         "unlabelled", "pool", "query"})
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
ARRAY_SUFFIXES = (".npy", ".npz")



def _is_hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p.startswith("__MACOSX") for p in parts)


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


@dataclass
class ImageSource:
    """Base class: ids, labels and class names of a pool of images, in source order.

    Attributes
    ----------
    ids : list of str
        Stable name of each item (path inside the folder or archive, or row number).
    labels : numpy.ndarray of int64
        Class index of each item, -1 when unknown.
    classes : list of str or None
        Class names, indexed by label.
    rejected : list of (str, str)
        Files found but not taken as images (``(name, reason)``), e.g. a ``.txt``
        file in a class folder. The embed loop skips them with a warning or stops,
        as its ``on_error`` option says.
    description : str
        What was read, for provenance.
    sort_output : bool
        Whether the embed loop should order its output rows by id parts (source
        order of a tar archive is arbitrary; folders and arrays are already in order).
    """

    ids: List[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    classes: Optional[List[str]] = None
    rejected: List[Tuple[str, str]] = field(default_factory=list)
    description: str = ""
    sort_output: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        """Yield ``(position, data)`` for positions ``start .. stop-1`` in order.

        ``data`` is the encoded file (``bytes``) or a decoded image array
        (``numpy.ndarray`` of uint8, (H, W) or (H, W, 3)), or an ``Exception``
        when the item cannot be read (the caller decides to skip or stop).
        """
        raise NotImplementedError

    def item_stamp(self, pos: int) -> str:
        """What changes when item ``pos`` is replaced under the same name (e.g. its size and time); "" if unknown."""
        return ""

    def stamp(self, start: int, stop: int) -> str:
        """A digest of :meth:`item_stamp` over ``start .. stop-1``: a resumed shard whose stamp differs is redone."""
        import hashlib

        h = hashlib.sha1()
        for pos in range(start, stop):
            h.update(self.item_stamp(pos).encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return h.hexdigest()

    def fingerprint(self) -> Dict[str, Any]:
        """What identifies this input for resuming (kind, size, a digest of the ids)."""
        import hashlib

        h = hashlib.sha1()
        for i in self.ids:
            h.update(i.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return {"description": self.description, "n": len(self.ids), "ids_sha1": h.hexdigest()}

    def close(self) -> None:
        """Release open files."""


def file_stamp(path: PathLike) -> str:
    """``size:mtime_ns`` of a file (``"missing"`` when it cannot be read): an item stamp for files on disk."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"
