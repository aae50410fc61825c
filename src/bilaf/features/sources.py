"""More image inputs: lists of images in memory, files listing image paths, Hugging Face datasets, fsspec URLs.

Each is an :class:`~bilaf.features.readers.ImageSource`; images of any size are
fine, since every image is resized by the backbone's preprocessing before
batching. :func:`~bilaf.features.inputs.open_image_source` picks these for

* a list of ``PIL.Image`` objects, of image arrays of varying shapes, or of
  encoded files (``bytes``): :class:`ImageListSource`;
* a ``.txt`` / ``.csv`` / ``.tsv`` / ``.lst`` file (or any other text file)
  listing image paths, one a line, with an optional label: :class:`PathListSource`;
* a ``datasets.Dataset`` with an image column:
  :class:`~bilaf.features.hf_datasets.DatasetSource`
  (:func:`~bilaf.features.hf_datasets.texts_from_dataset` reads a text column);
* a URL such as ``s3://bucket/photos/`` or ``memory://x/list.txt`` when fsspec
  and the package of that file system are installed: :class:`UrlTreeSource`
  for a folder, :class:`PathListSource` for a list file; URLs may also appear
  inside lists.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError
from .readers import FileTreeSource, ImageSource
from .readers.base import _is_image_name
from .readers.texts import _labels_from_tokens

__all__ = ["ImageListSource", "PathListSource", "UrlTreeSource", "is_url", "LIST_SUFFIXES"]

LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".lst", ".list")
PATH_HEADERS = ("path", "image", "image_path", "file", "filename", "file_name", "filepath", "url", "uri")
LABEL_HEADERS = ("label", "labels", "class", "class_name", "target", "y", "category")


def is_url(loc: Any) -> bool:
    """Whether ``loc`` is a string with a protocol (``s3://``, ``memory://``, ``https://``), not a local path."""
    return isinstance(loc, str) and "://" in loc and not loc.startswith("file://") and len(loc.split("://")[0]) > 1


def _check_protocol(url: str) -> None:
    """One clear error when fsspec or the file system's package is missing."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"{url}: URLs need fsspec: pip install fsspec") from None
    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise ImportError(f"{url}: cannot open {protocol}:// URLs here: {str(exc).splitlines()[0]}") from None


def _read(loc: str) -> bytes:
    """The bytes of a local file or of a URL (through fsspec)."""
    if is_url(loc):
        import fsspec

        with fsspec.open(loc, "rb") as fh:
            return fh.read()
    return Path(loc).read_bytes()


def _check_labels(labels: Any, n: int) -> Optional[np.ndarray]:
    if labels is None:
        return None
    lab = np.asarray(labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise ValidationError(f"labels must be {n} integers, got shape {lab.shape} dtype {lab.dtype}")
    return lab.astype(np.int64)


class ImageListSource(ImageSource):
    """Images held in a Python list: ``PIL.Image`` objects, uint8 arrays of any shapes, or encoded files.

    Parameters
    ----------
    images : sequence
        Each a ``PIL.Image.Image``, a numpy array (H, W) or (H, W, 3) of uint8, or
        ``bytes`` of an encoded image file. Sizes may differ.
    labels : array-like of int, optional
    ids : sequence of str, optional
        Default: the list index.
    """

    def __init__(self, images: Sequence[Any], labels: Any = None, ids: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.images = list(images)
        n = len(self.images)
        if n == 0:
            raise ValidationError("empty list of images")
        self.ids = [str(i) for i in (ids if ids is not None else range(n))]
        if len(self.ids) != n:
            raise ValidationError(f"{len(self.ids)} ids for {n} images")
        lab = _check_labels(labels, n)
        self.labels = lab if lab is not None else np.full(n, -1, dtype=np.int64)
        if lab is not None and (lab >= 0).any():
            self.classes = [str(c) for c in range(int(lab.max()) + 1)]
        self.description = f"images:{n}"

    def fingerprint(self) -> Dict[str, Any]:
        import hashlib

        fp = super().fingerprint()
        h = hashlib.sha1()
        for im in self.images[:: max(1, len(self.images) // 64)]:
            data = im if isinstance(im, (bytes, bytearray)) else np.asarray(im)
            h.update(bytes(data) if isinstance(data, (bytes, bytearray)) else np.ascontiguousarray(data).tobytes())
        fp["pixels_sha1"] = h.hexdigest()
        return fp

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            item = self.images[pos]
            yield pos, (np.asarray(item) if isinstance(item, np.ndarray) else item)


def is_image_list(source: Any) -> bool:
    """A list of PIL images, encoded files, or arrays whose shapes differ (a list of equal arrays stacks)."""
    if not isinstance(source, (list, tuple)) or not source:
        return False
    shapes = set()
    for item in source:
        if isinstance(item, (bytes, bytearray)) or type(item).__module__.startswith("PIL."):
            return True
        if isinstance(item, np.ndarray):
            shapes.add(item.shape)
        else:
            return False
    return len(shapes) > 1


class PathListSource(ImageSource):
    """Images named in a list file: one path (or URL) a line, optionally with a label.

    Formats
    -------
    ``.csv`` / ``.tsv``
        Rows of cells. With a header, the path column is the one named ``path``,
        ``image``, ``file``, ``filename``, ``filepath`` or ``url``, and the label
        column (optional) ``label``, ``class``, ``target``, ``y`` or ``category``.
        Without a header, column 1 is the path and column 2 (optional) the label.
    other text files
        One path per line; a tab may separate a label after the path. Blank lines
        and lines starting with ``#`` are skipped.

    Relative paths are resolved against the list file's folder (or URL). Labels
    are integers (>= 0) or class names (sorted to indices); an empty label is -1.
    Ids are the paths as written in the list.

    Parameters
    ----------
    path : path or URL
        The list file.
    """

    def __init__(self, path: Any) -> None:
        super().__init__()
        loc = str(path)
        remote = is_url(loc)
        if remote:
            _check_protocol(loc)
            base = posixpath.dirname(loc)
            try:
                raw = _read(loc)
            except (OSError, ValueError) as exc:
                raise ValidationError(f"cannot read list file {loc}: {exc}") from None
            where = loc
        else:
            p = Path(loc).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"list file not found: {p}")
            raw = p.read_bytes()
            base = str(p.resolve().parent)
            where = str(p.resolve())
        if b"\0" in raw[:4096]:
            raise ValidationError(f"{loc}: expected a text file listing image paths, got a binary file")
        text = raw.decode("utf-8-sig", errors="replace")
        paths, tokens = self._parse(text, loc.lower())
        if not paths:
            raise ValidationError(f"{loc} lists no image paths")
        not_images = [p for p in paths if not _is_image_name(posixpath.basename(p))]
        if len(not_images) == len(paths):
            raise ValidationError(f"{loc}: expected one image path per line, but no line names an image file "
                             f"(line 1: {paths[0][:60]!r}); for a file of texts use --kind text")
        self.ids = paths
        self.locations = [self._resolve(p, base, remote) for p in paths]
        for proto in sorted({loc.split("://", 1)[0] for loc in self.locations if is_url(loc)}):
            _check_protocol(f"{proto}://")
        n = len(paths)
        if any(t for t in tokens):
            known = [t for t in tokens if t]
            lab, classes = _labels_from_tokens(known)
            it = iter(lab.tolist())
            self.labels = np.asarray([next(it) if t else -1 for t in tokens], dtype=np.int64)
            self.classes = classes
        else:
            self.labels = np.full(n, -1, dtype=np.int64)
        self.rejected = [(p, "not an image file (unknown extension)") for p in not_images]
        self.description = f"list:{where}"

    @staticmethod
    def _resolve(p: str, base: str, remote: bool) -> str:
        if is_url(p):
            return p
        if remote:
            return p if p.startswith("/") else posixpath.join(base, p)
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else Path(base) / q)

    @staticmethod
    def _parse(text: str, name: str) -> Tuple[List[str], List[str]]:
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if name.endswith((".csv", ".tsv")):
            rows = [r for r in csv.reader(io.StringIO("\n".join(lines)),
                                          delimiter="\t" if name.endswith(".tsv") else ",") if r]
            if not rows:
                return [], []
            head = [c.strip().lower() for c in rows[0]]
            p_col = next((head.index(h) for h in PATH_HEADERS if h in head), None)
            if p_col is not None:
                l_col = next((head.index(h) for h in LABEL_HEADERS if h in head), None)
                rows = rows[1:]
            else:
                p_col, l_col = 0, (1 if any(len(r) > 1 for r in rows) else None)
            paths = [r[p_col].strip() if len(r) > p_col else "" for r in rows]
            tokens = [r[l_col].strip() if l_col is not None and len(r) > l_col else "" for r in rows]
        else:
            cells = [line.rstrip("\r").split("\t") for line in lines]
            paths = [c[0].strip() for c in cells]
            tokens = [c[1].strip() if len(c) > 1 else "" for c in cells]
        if any(not p for p in paths):
            k = next(i for i, p in enumerate(paths) if not p)
            raise ValidationError(f"{name}: row {k + 1} has no path")
        return paths, tokens

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            try:
                yield pos, _read(self.locations[pos])
            except (OSError, ValueError) as exc:
                yield pos, exc


class UrlTreeSource(FileTreeSource):
    """A folder tree behind an fsspec URL (``s3://bucket/photos``), with the layouts of a local folder.

    Parameters
    ----------
    url : str
    split : str, optional
    """

    def __init__(self, url: str, split: Optional[str] = None) -> None:
        super().__init__()
        _check_protocol(url)
        import fsspec

        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        try:
            found = self.fs.find(self.root)
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot list {url}: {exc}") from None
        prefix = self.root + "/"
        names = sorted(f[len(prefix):] if f.startswith(prefix) else f for f in found)
        if not names:
            raise ValidationError(f"no files under {url}")
        self._index(names, split, url, strip_common_root=False)
        self.description = f"url:{url}" + (f"[{split}]" if split else "")

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            try:
                yield pos, self.fs.cat_file(f"{self.root}/{self.ids[pos]}")
            except (OSError, ValueError) as exc:
                yield pos, exc


def open_url(url: str, split: Optional[str] = None) -> ImageSource:
    """A URL: a list file (by its suffix) or a folder tree."""
    _check_protocol(url)
    if url.lower().rstrip("/").endswith(LIST_SUFFIXES):
        if split is not None:
            raise ValidationError("split applies to folders and archives, not to a list file")
        return PathListSource(url)
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        raise ValidationError(f"{url}: a URL must name a folder or a list file (.txt, .csv, .tsv)")
    return UrlTreeSource(url, split=split)


def local_or_url(source: Any) -> bool:
    """Whether a string source is a URL that does not name an existing local path."""
    return is_url(source) and not os.path.exists(source)
