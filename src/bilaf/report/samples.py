"""What a pool row looks like: a small thumbnail of its image, or its text.

Rows are found by their id in the place the features were computed from,
recorded in the feature file's ``meta["source"]`` by ``bilaf embed``
(``folder:PATH``, ``tar:PATH``, ``zip:PATH``, ``text:PATH``, each maybe with a
``[split]`` suffix) or given by the caller:

* a folder: the id is a path inside it (or an absolute path);
* a ``.tar[.gz|...]`` / ``.zip`` archive: the id is a member name, read with
  :mod:`bilaf.features.readers` (a compressed tar is streamed once, front to
  back, and left as soon as every wanted member has been read);
* a text file with one sample per line: the id is ``<file name>:<line>``, read
  with :func:`bilaf.features.inputs.read_texts` (a leading label is dropped).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from ..utils.files import PathLike

__all__ = ["SampleSource", "resolve_source", "read_image_bytes", "read_texts_of", "make_thumbnail"]

_SOURCE = re.compile(r"^(folder|tar|zip|text|files|array):(.*?)(\[[^\]/]*\])?$")


@dataclass
class SampleSource:
    """Where the samples of a pool are.

    Attributes
    ----------
    kind : {"folder", "archive", "text", "files"}
        ``files``: the ids themselves are file paths.
    path : pathlib.Path or None
        The folder, archive or text file (None for ``files``).
    """

    kind: str
    path: Optional[Path] = None

    @property
    def is_text(self) -> bool:
        return self.kind == "text"


def resolve_source(given: Optional[PathLike], meta_source: Optional[str]) -> Optional[SampleSource]:
    """The sample source to read: ``given`` when set, else the feature file's recorded source.

    Parameters
    ----------
    given : path, optional
        A folder, an archive or a text file (the ``--samples`` option).
    meta_source : str, optional
        ``meta["source"]`` of the feature file (e.g. ``"tar:/data/x.tar.gz[train]"``).

    Returns
    -------
    SampleSource or None
        None when neither says where the samples are, or the recorded place
        no longer exists.

    Raises
    ------
    FileNotFoundError
        If ``given`` does not exist.
    """
    from ..features.inputs import guess_kind
    from ..features.readers import ARCHIVE_SUFFIXES

    if given is not None:
        p = Path(given)
        if not p.exists():
            raise FileNotFoundError(f"samples not found: {p}")
        if p.is_dir():
            return SampleSource("folder", p)
        if p.name.lower().endswith(ARCHIVE_SUFFIXES) or guess_kind(p) == "image":
            return SampleSource("archive", p)
        return SampleSource("text", p)
    m = _SOURCE.match(str(meta_source or ""))
    if m is None:
        return None
    kind, where = m.group(1), m.group(2)
    if kind == "files":
        return SampleSource("files", None)
    if kind == "array":  # images inside an array file: no file per row to show
        return None
    p = Path(where)
    if not p.exists():
        return None
    return SampleSource({"tar": "archive", "zip": "archive"}.get(kind, kind), p)


def read_image_bytes(source: SampleSource, wanted: Mapping[int, str]) -> Dict[int, bytes]:
    """The encoded image file of each wanted row (``row -> id``) that can be found.

    Rows whose id is not in the source are left out of the answer.
    """
    out: Dict[int, bytes] = {}
    if not wanted:
        return out
    if source.kind in ("folder", "files"):
        for row, rid in wanted.items():
            f = Path(rid) if source.path is None or os.path.isabs(rid) else source.path / rid
            try:
                out[row] = f.read_bytes()
            except OSError:
                continue
        return out
    from ..features.inputs import open_image_source

    src = open_image_source(source.path)
    try:
        pos_of = {name: k for k, name in enumerate(src.ids)}
        below_top: Optional[Dict[str, int]] = None  # member names without their first folder
        rows_at: Dict[int, list] = {}
        for row, rid in wanted.items():
            k = pos_of.get(rid)
            if k is None:  # the features may name members without the archive's top folder
                if below_top is None:
                    below_top = {}
                    for name, j in pos_of.items():
                        below_top.setdefault(name.split("/", 1)[-1], j)
                k = below_top.get(rid.lstrip("/"))
            if k is not None:
                rows_at.setdefault(k, []).append(row)
        left = len(rows_at)
        if not left:
            return out
        if src.sort_output:  # a tar archive: one pass front to back, left when all are read
            items = src.iter_items(min(rows_at), max(rows_at) + 1)
        else:  # random access (zip): read only the wanted members
            items = (item for k in sorted(rows_at) for item in src.iter_items(k, k + 1))
        for pos, data in items:
            rows = rows_at.get(pos)
            if rows is None:
                continue
            if isinstance(data, (bytes, bytearray)):
                for row in rows:
                    out[row] = bytes(data)
            left -= 1
            if left == 0:
                break
    finally:
        src.close()
    return out


def read_texts_of(source: SampleSource, wanted: Mapping[int, str]) -> Dict[int, str]:
    """The text of each wanted row (``row -> id``, ids ``<file>:<line>``) found in the text file."""
    from ..features.inputs import read_texts

    samples = read_texts(source.path)
    by_id = dict(zip(samples.ids, samples.texts))
    out: Dict[int, str] = {}
    for row, rid in wanted.items():
        text = by_id.get(rid)
        if text is None:  # ids made from another copy of the file: match on the line number
            _, _, num = rid.rpartition(":")
            text = by_id.get(f"{source.path.name}:{num}") if num.isdigit() else None
        if text is not None:
            out[row] = text
    return out


def make_thumbnail(data: bytes, size: int, quality: int = 80) -> Optional[Tuple[bytes, str]]:
    """A JPEG of at most ``size`` pixels on its long side (never enlarged), or None if unreadable.

    Returns
    -------
    (bytes, str) or None
        The encoded image and its MIME type.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - pillow is in the images extra
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality, optimize=True)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return buf.getvalue(), "image/jpeg"
