"""What every backbone shares: the :class:`Backbone` interfaces, the cache folder, pooling."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ...errors import ValidationError
from .preprocess import ImagePreprocess


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where converted models are cached: ``$BILAF_CACHE_DIR``, else ``~/.cache/bilaf``."""
    env = os.environ.get("BILAF_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bilaf"


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- backbones


class Backbone:
    """A feature extractor. Subclasses set ``kind`` and implement :meth:`embed`."""

    kind = "image"
    name = "backbone"
    dim: Optional[int] = None

    def embed(self, batch: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def meta(self) -> Dict[str, Any]:
        """Provenance written beside the features."""
        return {"backbone": self.name, "kind": self.kind}


def _pool(out: Any, pool: str):
    """Reduce a model output to (B, d): 4-D mean over space, 3-D token 0 (auto)."""
    nd = out.ndim
    if pool == "none" or nd == 2:
        if nd != 2:
            raise ValidationError(f"backbone output has shape {tuple(out.shape)}; use pool=mean or pool=cls")
        return out
    if pool == "cls":
        if nd != 3:
            raise ValidationError(f"pool=cls needs a (B, tokens, d) output, got {tuple(out.shape)}")
        return out[:, 0]
    if pool == "mean":
        if nd == 4:
            return out.mean(axis=(2, 3)) if isinstance(out, np.ndarray) else out.mean(dim=(2, 3))
        if nd == 3:
            return out.mean(axis=1) if isinstance(out, np.ndarray) else out.mean(dim=1)
    if pool == "auto":
        if nd == 4:
            return _pool(out, "mean")
        if nd == 3:
            return out[:, 0]
    raise ValidationError(f"cannot pool a backbone output of shape {tuple(out.shape)} with pool={pool!r}")


class ImageBackbone(Backbone):
    """An image feature extractor: ``preprocess`` one image, ``embed`` a float32 (B, 3, H, W) batch."""

    kind = "image"

    def __init__(self, preprocess: ImagePreprocess, name: str, pool: str = "auto") -> None:
        if pool not in ("auto", "mean", "cls", "none"):
            raise ValidationError(f"pool must be auto, mean, cls or none, got {pool!r}")
        self.preprocess = preprocess
        self.name = name
        self.pool = pool
        self.engine = "?"
        self.device = "cpu"

    def meta(self) -> Dict[str, Any]:
        return {"backbone": self.name, "kind": "image", "engine": self.engine, "device": str(self.device),
                "preprocess": self.preprocess.as_dict(), "pool": self.pool, "dim": self.dim}


class TextBackbone(Backbone):
    """A text feature extractor: ``embed(list of str) -> (B, d)``."""

    kind = "text"


@contextlib.contextmanager
def _full_fp32(device: Any):
    """Turn TF32 off on CUDA for the duration (TF32 convolutions move EfficientNet features by ~0.6%)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        yield
        return
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def _quiet():
    """Silence the chatter of third-party loaders (prints, progress bars, warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _local_file(arg: str, what: str) -> Path:
    if not arg:
        raise ValidationError(f"{what} backbone needs a file: {what}:/path/to/file")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} model file not found: {path}")
    return path
