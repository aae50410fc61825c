"""Image files in a folder tree or inside a tar or zip archive, read without extracting to disk.

Layouts understood for folders and archives (``split`` picks one sub-folder)::

    root/<split>/<class>/<file>   split layout: top-level folders named like splits
    root/<class>/<file>           class layout: the class is the first folder
    root/<file>                   unlabeled files (label -1)

A folder tree counts as a split layout when every top-level entry is a folder
whose name is one of :data:`SPLIT_NAMES`. Archives whose members all sit under
one common top folder that is not a split name (``cifar10/train/...``) are read
as if that folder were the root. Rows are ordered by the parts of their path
(split, then class, then file name), as ``sorted`` orders tuples.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ValidationError
from .base import SPLIT_NAMES, ImageSource, PathLike, _is_hidden, _is_image_name, file_stamp

__all__ = ["FileTreeSource", "FolderSource", "TarSource", "ZipSource"]


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
        return file_stamp(self.root / self.ids[pos])

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
