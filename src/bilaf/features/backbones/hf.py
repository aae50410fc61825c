"""Hugging Face ``transformers`` models: ``hf:<hub id or folder>`` for images and texts.

Images: ``AutoModel`` plus the model's own ``AutoImageProcessor`` configuration,
translated into an :class:`~bilaf.features.backbones.preprocess.ImagePreprocess`
(resize or shortest-edge resize, centre crop or ``crop_pct``, resample filter,
mean and std), so decoding and resizing run in bilaf's reader threads. Models
with ``get_image_features`` (CLIP, SigLIP) use it. Texts: ``AutoModel`` plus
``AutoTokenizer``; models with ``get_text_features`` use it.

Pooling (``?pool=``):

``auto``
    images: the model's pooled output (``pooler_output``: DINOv2's normalised
    CLS token, ViT's pooler, a ResNet's global average) when it has one, else
    the CLS token of a token sequence or the mean over space of a feature map;
    texts: the mean over the non-padding tokens (as sentence-transformers does).
``pooler``
    ``pooler_output`` (an error when the model has none).
``cls``
    the first token of ``last_hidden_state``.
``mean``
    the mean of ``last_hidden_state`` over tokens (texts: non-padding tokens
    only; images: all tokens, CLS included) or over space for a feature map.

Downloads: a folder is read with ``local_files_only=True``; a hub id is
resolved by ``huggingface_hub`` as the user's machine allows (its cache, and
``HF_HUB_OFFLINE`` when the user set it). Nothing here changes the process
environment.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import ImageBackbone, TextBackbone, _full_fp32, _quiet
from .preprocess import ImagePreprocess, _image_options

POOLS = ("auto", "pooler", "cls", "mean")
_PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@contextlib.contextmanager
def _hf_quiet() -> Iterator[None]:
    """Silence transformers' progress bars ("Loading weights") and chatter for the duration."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        hf_logging = None
    bars = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity() if hf_logging is not None else None
    if bars:
        hf_logging.disable_progress_bar()
    if hf_logging is not None:
        hf_logging.set_verbosity_error()
    try:
        with _quiet():
            yield
    finally:
        if hf_logging is not None:
            hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def hub_source(arg: str, what: str) -> Tuple[str, Dict[str, Any]]:
    """``arg`` -> (name or folder, keyword arguments for ``from_pretrained``).

    A folder is read with ``local_files_only=True``; an argument that looks like a
    path (``/``, ``./``, ``~``) but is no folder is an error; anything else is a hub
    id, left to ``huggingface_hub`` (its cache, downloads where allowed).
    """
    if not arg:
        raise ValidationError(f"{what} backbone needs a hub id or a folder: {what}:<id or /path/to/folder>")
    path = Path(arg).expanduser()
    if path.is_dir():
        return str(path), {"local_files_only": True}
    if path.exists():
        raise ValidationError(f"{what}: {path} is a file; give the model's folder (or a hub id)")
    if arg.startswith(("/", "./", "../", "~", "\\")):
        raise FileNotFoundError(f"{what} model folder not found: {path}")
    return arg, {}


def _load_error(what: str, exc: BaseException) -> ValueError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ValueError(f"cannot load {what}: {first}")


def _features(out: Any) -> Any:
    """``get_*_features`` returns a tensor in some transformers versions, a model output in others."""
    if hasattr(out, "ndim"):
        return out
    for key in ("pooler_output", "image_embeds", "text_embeds", "last_hidden_state"):
        val = getattr(out, key, None)
        if val is not None:
            return val if key != "last_hidden_state" else val[:, 0]
    raise ValidationError("the model's get_*_features returned no tensor")


def _pool_hidden(out: Any, pool: str, mask: Any = None) -> Any:
    """Reduce a transformers model output to (B, d) as ``pool`` says (see the module docstring)."""
    pooled = getattr(out, "pooler_output", None)
    hidden = getattr(out, "last_hidden_state", None)
    if pool == "pooler" or (pool == "auto" and mask is None and pooled is not None):
        if pooled is None:
            raise ValidationError("pool=pooler: this model has no pooled output; use pool=cls or pool=mean")
        return pooled.flatten(1) if pooled.ndim == 4 else pooled
    if hidden is None:
        raise ValidationError("the model returned no last_hidden_state; use pool=pooler")
    if hidden.ndim == 4:  # (B, C, H, W) feature map
        if pool == "cls":
            raise ValidationError("pool=cls needs a token sequence; this model returns a feature map (use pool=mean)")
        return hidden.mean(dim=(2, 3))
    if pool == "cls" or (pool == "auto" and mask is None):
        return hidden[:, 0]
    if mask is None:
        return hidden.mean(dim=1)
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _size_of(size: Any, what: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """An image processor's size dict -> (height, width, shortest_edge)."""
    if size is None:
        return None, None, None
    if isinstance(size, int):
        return size, size, None
    keys = ("height", "width", "shortest_edge", "longest_edge")
    try:
        d = {k: v for k, v in dict(size).items() if v is not None}
    except (TypeError, ValueError):  # an object with attributes (transformers' SizeDict)
        d = {k: getattr(size, k) for k in keys if getattr(size, k, None) is not None}
    if "height" in d and "width" in d:
        return int(d["height"]), int(d["width"]), None
    if "shortest_edge" in d and d.get("longest_edge") is None:
        return None, None, int(d["shortest_edge"])
    raise ValidationError(f"{what}: image size {d} is not supported")


def processor_preprocess(processor: Any, what: str = "hf") -> ImagePreprocess:
    """Translate a ``transformers`` image processor's settings into an :class:`ImagePreprocess`.

    Parameters
    ----------
    processor : transformers image processor
        Read for ``do_resize``/``size``, ``do_center_crop``/``crop_size``,
        ``crop_pct`` (ConvNeXT style), ``resample``, ``do_rescale``/``rescale_factor``
        and ``do_normalize``/``image_mean``/``image_std``.
    what : str
        The spec, for error messages.

    Returns
    -------
    ImagePreprocess
        Square output only; a setting that cannot be followed (a non-square
        output, padding, a rescale factor other than 1/255) raises ``ValueError``
        naming the ``?size=&crop=&mean=&std=`` options that override it.
    """
    def get(name: str, default: Any = None) -> Any:
        val = getattr(processor, name, default)
        return default if val is None else val

    hint = "; give the preprocessing in the spec instead (?size=..&crop=center&resize=..&mean=..&std=..)"
    if get("do_pad", False):
        raise ValidationError(f"{what}: its image processor pads images, which bilaf does not follow{hint}")
    if get("do_rescale", True) and abs(float(get("rescale_factor", 1 / 255)) * 255.0 - 1.0) > 1e-6:
        raise ValidationError(f"{what}: its image processor rescales by {get('rescale_factor')}, not 1/255{hint}")
    try:
        height, width, short = _size_of(get("size"), what) if get("do_resize", True) else (None, None, None)
        crop_h, crop_w, _ = _size_of(get("crop_size"), what) if get("do_center_crop", False) else (None, None, None)
    except ValueError as exc:
        raise ValidationError(f"{exc}{hint}") from None
    crop_pct = get("crop_pct")
    if crop_h is not None:
        if crop_h != crop_w:
            raise ValidationError(f"{what}: non-square crop {crop_h}x{crop_w}{hint}")
        if short is None and (height, width) != (crop_h, crop_w):
            raise ValidationError(f"{what}: resize to {height}x{width} then crop {crop_h}{hint}")
        size, resize, crop = crop_h, short, "center"
    elif short is not None:
        if crop_pct is not None and short < 384:  # ConvNeXT: resize short side to size/crop_pct, crop size
            size, resize, crop = short, int(short / float(crop_pct)), "center"
        elif crop_pct is not None:  # ConvNeXT at >= 384: warp to size x size
            size, resize, crop = short, None, "none"
        else:
            raise ValidationError(f"{what}: shortest-edge resize without a crop gives images of varying shape{hint}")
    elif height is not None:
        if height != width:
            raise ValidationError(f"{what}: non-square size {height}x{width}{hint}")
        size, resize, crop = height, None, "none"
    else:
        raise ValidationError(f"{what}: its image processor does not resize{hint}")
    resample = get("resample", 3)
    resample = getattr(resample, "value", resample)  # PIL's Resampling or torchvision's InterpolationMode
    if isinstance(resample, str):
        resample = resample.lower()
    elif int(resample) in _PIL_FILTERS:
        resample = _PIL_FILTERS[int(resample)]
    else:
        raise ValidationError(f"{what}: unknown resample filter {resample!r}{hint}")
    if get("do_normalize", True):
        mean = tuple(float(v) for v in get("image_mean", (0.5, 0.5, 0.5)))
        std = tuple(float(v) for v in get("image_std", (0.5, 0.5, 0.5)))
        if len(mean) == 1:
            mean, std = mean * 3, std * 3
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return ImagePreprocess(size=int(size), resample=resample, mean=mean, std=std, crop=crop,  # type: ignore[arg-type]
                           resize=resize)


def _override(pre: ImagePreprocess, options: Dict[str, str]) -> Tuple[ImagePreprocess, str]:
    """Spec options (``?size=..``) override the processor's settings; returns (preprocess, pool)."""
    given = {k: v for k, v in options.items() if k != "pool"}
    if not given:
        return pre, options.get("pool", "auto")
    base = {"size": str(pre.size), "resample": pre.resample, "mean": ",".join(map(str, pre.mean)),
            "std": ",".join(map(str, pre.std)), "crop": pre.crop}
    if pre.resize is not None and "size" not in given:
        base["resize"] = str(pre.resize)
    base.update(given)
    base["pool"] = "auto"
    new, _ = _image_options(base)
    return new, options.get("pool", "auto")


class HFImageBackbone(ImageBackbone):
    """A ``transformers`` vision model (or the image tower of CLIP / SigLIP).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    preprocess : ImagePreprocess
    name : str
    device : str or torch.device
    pool : {"auto", "pooler", "cls", "mean"}
        See :mod:`bilaf.features.backbones.hf`.
    """

    def __init__(self, model: Any, preprocess: ImagePreprocess, name: str, device: Any = "cpu",
                 pool: str = "auto") -> None:
        if pool not in POOLS:
            raise ValidationError(f"pool must be one of {', '.join(POOLS)} for hf backbones, got {pool!r}")
        super().__init__(preprocess, name)
        self.pool = pool
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.towers = hasattr(model, "get_image_features")
        if self.towers and pool not in ("auto", "pooler"):
            raise ValidationError(f"{name}: a two-tower model (CLIP, SigLIP) gives its image embedding; use pool=auto")
        self.engine = "transformers"

    def embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), _full_fp32(self.device):
            if self.towers:
                out = _features(self.model.get_image_features(pixel_values=x))
            else:
                out = _pool_hidden(self.model(pixel_values=x), self.pool)
            feats = out.float().cpu().numpy()
        self.dim = feats.shape[1]
        return feats


class HFTextBackbone(TextBackbone):
    """A ``transformers`` text model with its tokenizer.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    tokenizer : transformers tokenizer
    name : str
    device : str or torch.device
    pool : {"auto", "pooler", "cls", "mean"}
        ``auto`` is the mean over non-padding tokens.
    max_length : int, optional
        Tokens kept per text (default: the tokenizer's limit, at most 512).
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, device: Any = "cpu", pool: str = "auto",
                 max_length: Optional[int] = None) -> None:
        if pool not in POOLS:
            raise ValidationError(f"pool must be one of {', '.join(POOLS)} for hf backbones, got {pool!r}")
        self.name = name
        self.pool = pool
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        limit = getattr(tokenizer, "model_max_length", None) or 512
        self.max_length = int(max_length) if max_length is not None else int(min(512, limit))
        self.towers = hasattr(model, "get_text_features")
        if self.towers and pool not in ("auto", "pooler"):
            raise ValidationError(f"{name}: a two-tower model (CLIP, SigLIP) gives its text embedding; use pool=auto")
        self.engine = "transformers"
        self.dim = None

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(list(batch), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode(), _full_fp32(self.device):
            if self.towers:
                keep = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                out = _features(self.model.get_text_features(**keep))
            else:
                res = self.model(**enc)
                mask = enc.get("attention_mask") if self.pool in ("auto", "mean") else None
                if mask is None and self.pool in ("auto", "mean"):
                    mask = torch.ones(enc["input_ids"].shape, device=self.device)
                out = _pool_hidden(res, self.pool, mask)
            feats = out.float().cpu().numpy()
        self.dim = feats.shape[1]
        return feats

    def meta(self) -> Dict[str, Any]:
        return {"backbone": self.name, "kind": "text", "engine": self.engine, "device": str(self.device),
                "pool": self.pool, "max_length": self.max_length, "dim": self.dim}


def _load_hf(device: Any, engine: str = "auto", arg: str = "", kind: str = "image", **options: str) -> Any:
    """``hf:<hub id or folder>[?pool=..&revision=..&max_length=..&size=..&mean=..&std=..]``."""
    try:
        import transformers
    except ImportError:
        raise ImportError("hf: backbones need transformers: pip install 'bilaf[hf]'") from None
    src, kwargs = hub_source(arg, "hf")
    options = dict(options)
    if "revision" in options:
        kwargs["revision"] = options.pop("revision")
    name = f"hf:{arg}"
    with _hf_quiet():
        try:
            model = transformers.AutoModel.from_pretrained(src, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise _load_error(name, exc) from None
    if kind == "text":
        pool = options.pop("pool", "auto")
        max_length = options.pop("max_length", None)
        if options:
            raise ValidationError(f"unknown option(s) for a text hf backbone: {', '.join(sorted(options))} "
                             f"(known: pool, max_length, revision)")
        try:
            max_len = int(max_length) if max_length is not None else None
        except ValueError:
            raise ValidationError(f"backbone option max_length must be an integer, got {max_length!r}") from None
        with _hf_quiet():
            try:
                tok = transformers.AutoTokenizer.from_pretrained(src, **kwargs)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise _load_error(f"{name} (its tokenizer)", exc) from None
        return HFTextBackbone(model, tok, name=name, device=device, pool=pool, max_length=max_len)
    with _hf_quiet():
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(src, **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not {"size", "mean", "std"} <= set(options):
                raise ValidationError(f"cannot load {name}'s image processor ({(str(exc).splitlines() or [''])[0]}); "
                                 f"give ?size=..&mean=..&std=.. in the spec") from None
            processor = None
    if processor is not None:
        pre, pool = _override(processor_preprocess(processor, name), options)
    else:
        pre, pool = _image_options({**options, "pool": "auto"})[0], options.get("pool", "auto")
    return HFImageBackbone(model, pre, name=name, device=device, pool=pool)
