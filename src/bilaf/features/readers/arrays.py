"""Images held in an array, in memory or in a ``.npy`` / ``.npz`` file."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ...errors import ValidationError, ValidationTypeError
from .base import ImageSource

__all__ = ["ARRAY_IMAGE_KEYS", "ARRAY_LABEL_KEYS", "as_uint8_images", "ArraySource"]

ARRAY_IMAGE_KEYS = ("images", "x", "X", "data", "imgs")
ARRAY_LABEL_KEYS = ("labels", "y", "targets")


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
