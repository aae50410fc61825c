"""Readers: where samples come from (folders, archives, image arrays, text files).

Every image reader is an :class:`ImageSource`: a list of ``ids`` (stable names,
usually the path of each file inside the folder or archive) and ``labels``
(class index, ``-1`` when unknown) in *source order*, plus
:meth:`ImageSource.iter_items`, which yields the raw data of a range of items
(the encoded file bytes, or a decoded image array) in that order. Decoding and
resizing belong to the backbone's preprocessing, not here.

Layouts understood for folders and archives (``split`` picks one sub-folder)::

    root/<split>/<class>/<file>   split layout: top-level folders named like splits
    root/<class>/<file>           class layout: the class is the first folder
    root/<file>                   unlabeled files (label -1)

A folder tree counts as a split layout when every top-level entry is a folder
whose name is one of :data:`SPLIT_NAMES`. Archives whose members all sit under
one common top folder that is not a split name (``cifar10/train/...``) are read
as if that folder were the root. Rows are ordered by the parts of their path
(split, then class, then file name), as ``sorted`` orders tuples.

Why one module of this size: the image sources (folder, tar, zip, array) and the text reader share the
id, label and class conventions of FileTreeSource; the dispatch over them lives in features/inputs.py.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ValidationError, ValidationTypeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "ImageSource",
    "FileTreeSource",
    "FolderSource",
    "TarSource",
    "ZipSource",
    "ArraySource",
    "TextSamples",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)
SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "unlabeled",
                         "unlabelled", "pool", "query"})
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
ARRAY_SUFFIXES = (".npy", ".npz")
ARRAY_IMAGE_KEYS = ("images", "x", "X", "data", "imgs")
ARRAY_LABEL_KEYS = ("labels", "y", "targets")

PathLike = Union[str, "os.PathLike[str]"]


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p.startswith("__MACOSX") for p in parts)


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


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


class FileTreeSource(ImageSource):
    """Shared logic of folder and archive sources: layout detection, labels, order."""

    def _index(self, names: Sequence[str], split: Optional[str], where: str, strip_common_root: bool) -> List[int]:
        """Set ids/labels/classes/rejected from relative posix paths; return the kept positions of ``names``."""
        entries = []
        for k, name in enumerate(names):
            parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
            if not parts or _is_hidden(parts):
                continue
            entries.append((parts, k, name))
        if not entries:
            raise ValidationError(f"no files in {where}")
        prefix: Tuple[str, ...] = ()
        if strip_common_root:
            tops = {e[0][0] for e in entries}
            if len(tops) == 1 and all(len(e[0]) > 1 for e in entries):
                top = next(iter(tops))
                if top.lower() not in SPLIT_NAMES:
                    prefix = (top,)
        rel = [(e[0][len(prefix):], e[1], e[2]) for e in entries]
        tops_are_dirs = all(len(p) > 1 for p, _, _ in rel)
        top_names = sorted({p[0] for p, _, _ in rel})
        split_layout = tops_are_dirs and all(t.lower() in SPLIT_NAMES for t in top_names)
        if split is not None:
            if not split_layout and not any(p[0] == split for p, _, _ in rel if len(p) > 1):
                raise ValidationError(f"{where} has no split folder {split!r} "
                                 f"(top-level folders: {', '.join(top_names[:8]) or 'none'})")
            rel = [(p, k, n) for p, k, n in rel if p[0] == split and len(p) > 1]
            if not rel:
                have = ", ".join(t for t in top_names[:8])
                raise ValidationError(f"{where} has no split folder {split!r} (found: {have})")
            split_layout = True
        items = []  # (sort key, class name or None, position, id)
        rejected = []
        for parts, k, name in rel:
            body = parts[1:] if split_layout else parts
            if not body:
                continue
            if not _is_image_name(body[-1]):
                rejected.append((name, "not an image file (unknown extension)"))
                continue
            cls = body[0] if len(body) >= 2 else None
            key = tuple(parts)
            items.append((key, cls, k, name))
        if not items:
            if rejected:
                raise ValidationError(f"no image files in {where} ({len(rejected)} other file(s), e.g. {rejected[0][0]})")
            raise ValidationError(f"no image files in {where}" + (f" for split {split!r}" if split else ""))
        if self.sort_output:
            order = items
        else:
            order = sorted(items, key=lambda t: t[0])
        class_names = sorted({c for _, c, _, _ in order if c is not None})
        index = {c: i for i, c in enumerate(class_names)}
        self.ids = [name for _, _, _, name in order]
        self.labels = np.asarray([index[c] if c is not None else -1 for _, c, _, _ in order], dtype=np.int64)
        self.classes = class_names or None
        self.rejected = sorted(rejected)
        self._sort_keys = [key for key, _, _, _ in order]
        return [k for _, _, k, _ in order]

    def output_order(self) -> np.ndarray:
        """Permutation putting source positions in id-part order (identity unless ``sort_output``)."""
        keys = getattr(self, "_sort_keys", None)
        if not self.sort_output or keys is None:
            return np.arange(len(self.ids))
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


class FolderSource(FileTreeSource):
    """Images in a folder tree (see the module docstring for the layouts)."""

    def __init__(self, root: PathLike, split: Optional[str] = None) -> None:
        super().__init__()
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"image folder not found: {root}")
        if not root.is_dir():
            raise NotADirectoryError(f"not a folder: {root}")
        self.root = root
        names = []
        seen = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a symbolic link loop
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(root)
            for f in sorted(filenames):
                names.append((rel_dir / f).as_posix())
        if not names:
            raise ValidationError(f"image folder is empty: {root}")
        self._index(names, split, f"folder {root}", strip_common_root=False)
        self.description = f"folder:{root.resolve()}" + (f"[{split}]" if split else "")

    def item_stamp(self, pos: int) -> str:
        try:
            st = os.stat(self.root / self.ids[pos])
        except OSError:
            return "missing"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            try:
                yield pos, (self.root / self.ids[pos]).read_bytes()
            except OSError as exc:
                yield pos, exc


class TarSource(FileTreeSource):
    """Images inside a tar archive (plain or compressed), streamed without extracting to disk.

    Items are read in archive order (a compressed tar can only be read front to
    back); the embed loop puts the rows in id order at the end.
    """

    sort_output = True

    def __init__(self, path: PathLike, split: Optional[str] = None) -> None:
        super().__init__()
        self.sort_output = True
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"archive not found: {path}")
        self.path = path
        try:
            with tarfile.open(path, "r:*") as tf:
                info: Dict[str, str] = {}
                for m in tf:
                    if m.isfile() and m.name not in info:  # a repeated name: first copy
                        info[m.name] = f"{m.size}:{m.mtime}"
                members = list(info)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValidationError(f"cannot read tar archive {path}: {exc}") from None
        if not members:
            raise ValidationError(f"archive is empty: {path}")
        kept = self._index(members, split, f"archive {path}", strip_common_root=True)
        self._wanted = {self.ids[i]: i for i in range(len(self.ids))}
        self._member_stamps = info
        del kept
        self.description = f"tar:{path.resolve()}" + (f"[{split}]" if split else "")
        self._tf: Optional[tarfile.TarFile] = None
        self._next = 0  # next source position the open stream will yield

    def item_stamp(self, pos: int) -> str:
        return self._member_stamps.get(self.ids[pos], "")

    def _reopen(self) -> None:
        self.close()
        self._tf = tarfile.open(self.path, "r|*")
        self._members = iter(self._tf)
        self._next = 0

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        if self._tf is None or start < self._next:
            self._reopen()
        while self._next < stop:
            try:
                member = next(self._members)
            except StopIteration:  # pragma: no cover - archive changed under us
                raise ValidationError(f"archive {self.path} changed while reading it") from None
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ValidationError(f"cannot read tar archive {self.path}: {exc}") from None
            pos = self._wanted.get(member.name) if member.isfile() else None
            if pos is None or pos < self._next:  # not an image we index, or a later copy of a name
                continue
            self._next = pos + 1
            if pos < start:
                continue
            try:
                fh = self._tf.extractfile(member)
                data: Any = fh.read() if fh is not None else OSError("not a regular file")
            except (tarfile.TarError, OSError, EOFError) as exc:
                data = exc
            yield pos, data

    def close(self) -> None:
        if self._tf is not None:
            self._tf.close()
            self._tf = None


class ZipSource(FileTreeSource):
    """Images inside a zip archive, read member by member without extracting to disk."""

    def __init__(self, path: PathLike, split: Optional[str] = None) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"archive not found: {path}")
        self.path = path
        try:
            with zipfile.ZipFile(path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                members = [i.filename for i in infos]
                self._member_stamps = {i.filename: f"{i.file_size}:{i.CRC}" for i in infos}
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValidationError(f"cannot read zip archive {path}: {exc}") from None
        if not members:
            raise ValidationError(f"archive is empty: {path}")
        self._index(members, split, f"archive {path}", strip_common_root=True)
        self.description = f"zip:{path.resolve()}" + (f"[{split}]" if split else "")
        self._zf: Optional[zipfile.ZipFile] = None

    def item_stamp(self, pos: int) -> str:
        return self._member_stamps.get(self.ids[pos], "")

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        if self._zf is None:
            self._zf = zipfile.ZipFile(self.path)
        for pos in range(start, stop):
            try:
                yield pos, self._zf.read(self.ids[pos])
            except (zipfile.BadZipFile, OSError, KeyError) as exc:
                yield pos, exc

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
            self._zf = None


def as_uint8_images(arr: Any, what: str = "image array") -> np.ndarray:
    """Check and convert an image array to uint8 (N, H, W) or (N, H, W, 3).

    Integer arrays must hold values in 0..255; float arrays are taken as
    [0, 1] when their maximum is at most 1, else as [0, 255]. A trailing channel
    axis of 1 is dropped; 4 channels (RGBA) keep the first 3.
    """
    try:
        import torch

        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(arr, (list, tuple)) and len({np.shape(x) for x in arr}) > 1:
        raise ValidationError(f"{what}: images of different sizes cannot form one array; pass them as a list "
                         f"(each is resized by the backbone), e.g. embed_images(list_of_images)")
    a = np.asarray(arr)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValidationTypeError(f"{what} must be numeric, got dtype {a.dtype}")
    if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = a[..., 0] if a.shape[-1] == 1 else a[..., :3]
    elif a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        raise ValidationError(f"{what} has shape {a.shape} (channels first?): pass (N, H, W, 3), "
                         f"e.g. np.transpose(X, (0, 2, 3, 1))")
    if a.ndim == 2:
        side = int(round(a.shape[1] ** 0.5))
        hint = f", e.g. X.reshape(-1, {side}, {side})" if side * side == a.shape[1] else ""
        raise ValidationError(f"{what} is 2-D {a.shape}: pass images as (N, H, W) or (N, H, W, 3){hint}")
    if a.ndim not in (3, 4):
        raise ValidationError(f"{what} must be (N, H, W) or (N, H, W, 3), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValidationError(f"{what} is empty (0 images)")
    if a.shape[1] == 0 or a.shape[2] == 0:
        raise ValidationError(f"{what} has empty images, shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValidationError(f"{what} contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        scale = 255.0 if hi <= 1.0 else 1.0
        if lo < 0 or hi * scale > 255.0 + 1e-6:
            raise ValidationError(f"{what} values must lie in [0, 1] or [0, 255], got [{lo:g}, {hi:g}]")
        return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > 255:
        raise ValidationError(f"{what} values must lie in 0..255, got {lo}..{hi}")
    return a.astype(np.uint8)


class ArraySource(ImageSource):
    """Images held in an array (in memory, or a ``.npy`` / ``.npz`` file).

    Parameters
    ----------
    images : array-like or path
        uint8 (or 0..255 / 0..1 float) array of shape (N, H, W) (grey) or
        (N, H, W, 3), or a ``.npy`` / ``.npz`` file holding one (an ``.npz`` is
        searched for the keys ``images``, ``x``, ``X``, ``data``; labels from
        ``labels`` / ``y``; ids from ``ids``).
    labels : array-like of int, optional
        Class index of each image.
    ids : sequence of str, optional
        Name of each image; default the row number.
    """

    def __init__(self, images: Any, labels: Any = None, ids: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        desc = "array"
        classes = None
        if isinstance(images, (str, os.PathLike)):
            path = Path(images)
            if not path.is_file():
                raise FileNotFoundError(f"image array file not found: {path}")
            desc = f"array:{path.resolve()}"
            try:
                if path.suffix.lower() == ".npz":
                    with np.load(path, allow_pickle=False) as z:
                        key = next((k for k in ARRAY_IMAGE_KEYS if k in z.files), None)
                        if key is None and len(z.files) == 1:
                            key = z.files[0]
                        if key is None:
                            raise ValidationError(f"{path}: no image array inside (keys: {', '.join(z.files)}); "
                                             f"name it one of {', '.join(ARRAY_IMAGE_KEYS)}")
                        images = z[key]
                        if labels is None:
                            lk = next((k for k in ARRAY_LABEL_KEYS if k in z.files), None)
                            labels = z[lk] if lk is not None and z[lk].size else None
                        if ids is None and "ids" in z.files:
                            ids = [str(s) for s in z["ids"]]
                        if "classes" in z.files and z["classes"].size:
                            classes = [str(s) for s in z["classes"]]
                else:
                    images = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ValidationError(f"cannot read image array file {path}: {exc}") from None
        self.images = as_uint8_images(images)
        n = self.images.shape[0]
        if ids is not None:
            ids = [str(i) for i in ids]
            if len(ids) != n:
                raise ValidationError(f"{len(ids)} ids for {n} images")
            self.ids = ids
        else:
            self.ids = [str(i) for i in range(n)]
        if labels is not None:
            lab = np.asarray(labels)
            if lab.shape != (n,):
                raise ValidationError(f"labels must have shape ({n},), got {lab.shape}")
            if not np.issubdtype(lab.dtype, np.integer):
                if np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.round(lab)):
                    lab = lab.astype(np.int64)
                else:
                    raise ValidationTypeError(f"labels must be integers, got dtype {lab.dtype}")
            self.labels = lab.astype(np.int64)
            if classes is None and (self.labels >= 0).any():
                classes = [str(c) for c in range(int(self.labels.max()) + 1)]
        else:
            self.labels = np.full(n, -1, dtype=np.int64)
        self.classes = classes
        self.description = desc

    def fingerprint(self) -> Dict[str, Any]:
        import hashlib

        fp = super().fingerprint()
        a = self.images
        h = hashlib.sha1(str(a.shape).encode())
        step = max(1, a.shape[0] // 64)
        h.update(np.ascontiguousarray(a[::step]).tobytes())
        fp["pixels_sha1"] = h.hexdigest()
        return fp

    def stamp(self, start: int, stop: int) -> str:
        import hashlib

        return hashlib.sha1(np.ascontiguousarray(self.images[start:stop]).tobytes()).hexdigest()

    def iter_items(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
        stop = len(self.ids) if stop is None else stop
        for pos in range(start, stop):
            yield pos, np.asarray(self.images[pos])


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


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


