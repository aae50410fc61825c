"""Find the raw samples (encoded images or texts) behind the rows of a feature file, from its ids.

``bilaf embed`` keeps, beside the features, the id of every row (an image's
path inside its folder or archive, or ``file:LINE`` for a text) and, in its
metadata, the input it read (``source``: ``tar:/abs/path[train]``,
``folder:/abs/path``, ``zip:...``, ``text:/abs/path``) and the backbone. The
finetune protocol reads the samples back through :func:`sample_loader`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError

__all__ = ["SamplesNotFound", "parse_source", "sample_loader"]


class SamplesNotFound(FileNotFoundError):
    """The input a feature file was made from is not on this machine.

    ``which`` names the set (``"pool"`` or ``"test"``) when the caller knows it.
    """

    def __init__(self, path: Path, which: str = "") -> None:
        self.path = Path(path)
        self.which = which
        what = f"the {which} samples" if which else "the samples"
        super().__init__(f"{what} behind the features are not here: {self.path}")

_SOURCE = re.compile(r"^(tar|zip|folder|text):(.*?)(?:\[([^\[\]]+)\])?$")


def parse_source(source: str) -> Tuple[str, Path, Optional[str]]:
    """``"tar:/data/c10.tar.gz[train]"`` -> ``("tar", Path("/data/c10.tar.gz"), "train")``.

    A bare path (a folder, an archive or a text file) is accepted too; its kind
    is guessed from the path.
    """
    text = str(source).strip()
    m = _SOURCE.match(text)
    if m:
        return m.group(1), Path(m.group(2)), m.group(3)
    path = Path(text)
    if path.is_dir():
        return "folder", path, None
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip", path, None
    if any(name.endswith(s) for s in (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar", path, None
    return "text", path, None


def _text_loader(path: Path, ids: Sequence[str]) -> Callable[[np.ndarray], List[Any]]:
    from ..features.inputs import read_texts

    samples = read_texts(path)
    where: Dict[str, int] = {i: p for p, i in enumerate(samples.ids)}
    texts = samples.texts
    missing = [i for i in ids if i not in where]
    if missing:
        raise ValidationError(f"{len(missing)} of the {len(ids)} ids are not lines of {path} (first: {missing[0]}); "
                         "is it the file the features were made from?")
    order = np.asarray([where[i] for i in ids], dtype=np.int64)

    def load(rows: np.ndarray) -> List[Any]:
        return [texts[int(p)] for p in order[np.asarray(rows, dtype=np.int64)]]

    return load


def _image_loader(path: Path, split: Optional[str], ids: Sequence[str]) -> Callable[[np.ndarray], List[Any]]:
    from ..features.inputs import open_image_source

    src = open_image_source(path, split=split)
    where: Dict[str, int] = {i: p for p, i in enumerate(src.ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        src.close()
        raise ValidationError(f"{len(missing)} of the {len(ids)} ids are not images of {path}"
                         f"{f' [{split}]' if split else ''} (first: {missing[0]}); is it the input the features "
                         "were made from?")
    order = np.asarray([where[i] for i in ids], dtype=np.int64)

    def load(rows: np.ndarray) -> List[Any]:
        pos = order[np.asarray(rows, dtype=np.int64)]
        wanted = set(pos.tolist())
        found: Dict[int, Any] = {}
        if len(pos):
            for p, data in src.iter_items(int(pos.min()), int(pos.max()) + 1):
                if p not in wanted:
                    continue
                if isinstance(data, Exception):
                    raise ValidationError(f"cannot read {src.ids[p]} from {path}: {data}")
                found[p] = data
        gone = [src.ids[p] for p in sorted(wanted - set(found))]
        if gone:
            raise ValidationError(f"{gone[0]} could not be read back from {path}")
        return [found[p] for p in pos.tolist()]

    return load


def sample_loader(source: Any, ids: Sequence[str], kind: str) -> Callable[[np.ndarray], List[Any]]:
    """A function ``load(rows) -> list`` of the raw samples of feature rows ``rows``.

    Parameters
    ----------
    source : str or path
        The input the features were made from: a feature file's
        ``meta["source"]`` (``tar:/abs/path[split]``...) or a path.
    ids : sequence of str
        The feature file's ids, one per row.
    kind : {"image", "text"}
        Images come back as encoded file bytes, texts as strings.

    Raises
    ------
    SamplesNotFound
        The source is not on this machine (a ``FileNotFoundError``).
    ValueError
        An id is not in the source.
    """
    if source is None or not str(source).strip():
        raise ValidationError("the feature file does not say which input it was made from")
    how, path, split = parse_source(str(source))
    if not path.exists():
        raise SamplesNotFound(path)
    if kind == "text":
        if how != "text":
            raise ValidationError(f"a text backbone needs a text file, got the {how} {path}")
        return _text_loader(path, ids)
    if kind != "image":
        raise ValidationError(f"kind must be 'image' or 'text', got {kind!r}")
    if how == "text":
        raise ValidationError(f"an image backbone needs a folder or an archive, got the text file {path}")
    return _image_loader(path, split, ids)
