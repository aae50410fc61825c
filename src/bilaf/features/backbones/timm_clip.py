"""``timm:<name>`` and ``open_clip:<name>`` backbones (both packages need torchvision).

Preprocessing follows each model's own configuration: timm's
``resolve_model_data_config`` (input size, ``crop_pct``, interpolation, mean,
std) and open_clip's ``model.visual.preproc_cfg`` (size, resize mode,
interpolation, mean, std), translated into an
:class:`~bilaf.features.backbones.preprocess.ImagePreprocess`. Weights come
from the package's usual places (the Hugging Face hub cache, a download where
the machine allows one) or, for timm, from a local file (``?weights=``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import ImageBackbone, TextBackbone, _full_fp32, _quiet
from .preprocess import ImagePreprocess
from .torch_files import TorchImageBackbone

_HINT = "; give the preprocessing in the spec instead (?size=..&crop=center&resize=..&mean=..&std=..)"


def _square(size: Any, what: str) -> int:
    if isinstance(size, (int, np.integer)):
        return int(size)
    vals = [int(v) for v in size]
    if len(vals) == 3:  # (C, H, W)
        vals = vals[1:]
    if len(vals) != 2 or vals[0] != vals[1]:
        raise ValidationError(f"{what}: non-square input size {tuple(size)}{_HINT}")
    return vals[0]


def timm_preprocess(cfg: Mapping[str, Any], what: str = "timm") -> ImagePreprocess:
    """timm's data config -> :class:`ImagePreprocess`, as timm's evaluation transform does it.

    The short side is resized to ``floor(size / crop_pct)``, then the centre
    ``size`` x ``size`` is cropped (``crop_mode="center"``); ``crop_mode="squash"``
    is followed only when ``crop_pct`` is 1.
    """
    size = _square(cfg.get("input_size", (3, 224, 224)), what)
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    scale = int(math.floor(size / crop_pct))
    kw: Dict[str, Any] = dict(size=size, resample=str(cfg.get("interpolation") or "bicubic").lower(),
                              mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
                              std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))))
    if kw["resample"] == "random":
        kw["resample"] = "bilinear"
    if mode == "center":
        return ImagePreprocess(crop="center", resize=scale if scale != size else None, **kw)
    if mode == "squash" and scale == size:
        return ImagePreprocess(crop="none", **kw)
    raise ValidationError(f"{what}: crop_mode {mode!r} with crop_pct {crop_pct} is not supported{_HINT}")


def open_clip_preprocess(cfg: Mapping[str, Any], what: str = "open_clip") -> ImagePreprocess:
    """open_clip's ``preproc_cfg`` -> :class:`ImagePreprocess` (resize modes ``shortest`` and ``squash``)."""
    size = _square(cfg.get("size", 224), what)
    mode = cfg.get("resize_mode") or "shortest"
    kw: Dict[str, Any] = dict(size=size, resample=str(cfg.get("interpolation") or "bicubic").lower(),
                              mean=tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
                              std=tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))))
    if mode == "shortest":
        return ImagePreprocess(crop="center", **kw)
    if mode == "squash":
        return ImagePreprocess(crop="none", **kw)
    raise ValidationError(f"{what}: resize_mode {mode!r} is not supported{_HINT}")


def _flag(options: Dict[str, str], key: str, default: bool) -> bool:
    val = options.pop(key, None)
    if val is None:
        return default
    if val.lower() in ("1", "true", "yes"):
        return True
    if val.lower() in ("0", "false", "no"):
        return False
    raise ValidationError(f"backbone option {key} must be 1 or 0, got {val!r}")


def _load_timm(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    """``timm:<model name>[?pretrained=1&weights=/path/file.safetensors&pool=..]``."""
    if not arg:
        raise ValidationError("timm backbone needs a model name: timm:<name>, e.g. timm:vit_small_patch14_dinov2.lvd142m")
    try:
        import timm
        from timm.data import resolve_model_data_config
    except ImportError as exc:
        raise ImportError(f"timm: backbones need timm (and torchvision): pip install timm ({exc})") from None
    options = dict(options)
    pretrained = _flag(options, "pretrained", True)
    weights = options.pop("weights", None)
    pool = options.pop("pool", "auto")
    if options:
        raise ValidationError(f"unknown option(s) for a timm backbone: {', '.join(sorted(options))} "
                         f"(known: pretrained, weights, pool)")
    kwargs: Dict[str, Any] = {"num_classes": 0}
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"timm weights file not found: {path}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    try:
        with _quiet():
            model = timm.create_model(arg, pretrained=pretrained, **kwargs)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValidationError(f"cannot load timm:{arg}: {str(exc).splitlines()[0]}") from None
    pre = timm_preprocess(resolve_model_data_config(model), f"timm:{arg}")
    return TorchImageBackbone(model, pre, name=f"timm:{arg}", device=device, pool=pool)


class OpenClipImageBackbone(ImageBackbone):
    """The image tower of an open_clip model (``encode_image``)."""

    def __init__(self, model: Any, preprocess: ImagePreprocess, name: str, device: Any = "cpu") -> None:
        super().__init__(preprocess, name, "none")
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.engine = "open_clip"

    def embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), _full_fp32(self.device):
            feats = self.model.encode_image(x).float().cpu().numpy()
        self.dim = feats.shape[1]
        return feats


class OpenClipTextBackbone(TextBackbone):
    """The text tower of an open_clip model (``encode_text``) with its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, name: str, device: Any = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.name = name
        self.engine = "open_clip"
        self.dim = None

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(list(batch)).to(self.device)
        with torch.inference_mode(), _full_fp32(self.device):
            feats = self.model.encode_text(tokens).float().cpu().numpy()
        self.dim = feats.shape[1]
        return feats

    def meta(self) -> Dict[str, Any]:
        return {"backbone": self.name, "kind": "text", "engine": self.engine, "device": str(self.device),
                "dim": self.dim}


def _load_open_clip(device: Any, engine: str = "auto", arg: str = "", kind: str = "image",
                    **options: str) -> Any:
    """``open_clip:<model name>[?pretrained=<tag>]`` (``open_clip:hf-hub:org/repo`` works too)."""
    if not arg:
        raise ValidationError("open_clip backbone needs a model name: open_clip:<name>?pretrained=<tag>")
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError(f"open_clip: backbones need open_clip_torch (and torchvision): "
                          f"pip install open_clip_torch ({exc})") from None
    options = dict(options)
    tag = options.pop("pretrained", None)
    if options:
        raise ValidationError(f"unknown option(s) for an open_clip backbone: {', '.join(sorted(options))} "
                         f"(known: pretrained)")
    name = f"open_clip:{arg}" + (f"?pretrained={tag}" if tag else "")
    try:
        with _quiet():
            model = open_clip.create_model(arg, pretrained=tag)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValidationError(f"cannot load {name}: {str(exc).splitlines()[0]}") from None
    if kind == "text":
        return OpenClipTextBackbone(model, open_clip.get_tokenizer(arg), name=name, device=device)
    cfg = getattr(getattr(model, "visual", None), "preproc_cfg", None) or {}
    return OpenClipImageBackbone(model, open_clip_preprocess(cfg, name), name=name, device=device)
