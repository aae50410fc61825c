"""The backbone registry: ``name[:argument][?key=value&...]`` specs -> loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple, Union
from urllib.parse import parse_qsl

from ...errors import ValidationError
from .base import Backbone


@dataclass
class _Entry:
    loader: Callable[..., Backbone]
    kind: str
    description: str
    takes_path: bool = False


_REGISTRY: Dict[str, _Entry] = {}
_ALIASES = {"efficientnet-lite0": "efficientnet_lite0", "effnet_lite0": "efficientnet_lite0",
            "effnet-lite0": "efficientnet_lite0", "all-minilm-l6-v2": "minilm", "all_minilm_l6_v2": "minilm",
            "sentence_transformers": "sentence-transformers", "statedict": "state_dict", "state-dict": "state_dict",
            "jit": "torchscript", "transformers": "hf", "huggingface": "hf", "open-clip": "open_clip",
            "openclip": "open_clip", "safetensors": "state_dict"}
DEFAULT_BACKBONES = {"image": "efficientnet_lite0", "text": "minilm"}


def register_backbone(name: str, loader: Callable[..., Backbone], *, kind: str = "image", description: str = "",
                      takes_path: bool = False, overwrite: bool = False) -> None:
    """Add a backbone under ``name``.

    Parameters
    ----------
    name : str
        The name used in ``backbone=`` / ``--backbone``.
    loader : callable
        ``loader(device, engine="auto", **options) -> Backbone`` (with
        ``takes_path=True`` also ``arg=`` the text after ``name:``). Options are the
        ``key=value`` pairs after ``?`` in the spec, as strings.
    kind : {"image", "text", "any"}
        ``"any"``: the loader embeds either and receives ``kind=`` (what the
        caller embeds) as a keyword argument.
    description : str
    takes_path : bool
        Whether the spec carries an argument (``name:/path``).
    overwrite : bool
        Replace an existing entry.

    Examples
    --------
    >>> import torch
    >>> from bilaf.features import register_backbone, TorchImageBackbone, ImagePreprocess
    >>> def load_tiny(device, engine="auto"):
    ...     net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    ...     return TorchImageBackbone(net, ImagePreprocess(size=32), name="tiny", device=device)
    >>> register_backbone("tiny", load_tiny, overwrite=True)
    """
    if kind not in ("image", "text", "any"):
        raise ValidationError(f"kind must be 'image', 'text' or 'any', got {kind!r}")
    key = name.lower()
    if not key or any(c in key for c in ":?/ "):
        raise ValidationError(f"backbone name must be non-empty without ':', '?', '/' or spaces, got {name!r}")
    if key in _REGISTRY and not overwrite:
        raise ValidationError(f"backbone {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[key] = _Entry(loader, kind, description, takes_path)


def list_backbones() -> Dict[str, Tuple[str, str]]:
    """Registered backbones: ``name -> (kind, description)``."""
    return {k: (e.kind, e.description) for k, e in _REGISTRY.items()}


def parse_spec(spec: str) -> Tuple[str, str, Dict[str, str]]:
    """``name[:argument][?key=value&...]`` -> (name, argument, options)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationError("backbone must be a non-empty name, e.g. efficientnet_lite0")
    spec = spec.strip()
    options: Dict[str, str] = {}
    if "?" in spec:
        spec, query = spec.rsplit("?", 1)
        options = dict(parse_qsl(query, keep_blank_values=True))
    name, _, arg = spec.partition(":")
    key = _ALIASES.get(name.lower(), name.lower())
    return key, arg, options


def load_backbone(spec: Union[str, Backbone], kind: str = "image", device: Any = "auto",
                  engine: str = "auto") -> Backbone:
    """Build a backbone from its spec (see the module docstring) or pass a :class:`Backbone` through.

    Parameters
    ----------
    spec : str or Backbone
    kind : {"image", "text"}
        What the caller embeds; a backbone of the other kind is an error.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    engine : {"auto", "onnx", "torch"}
        For built-in image backbones: ONNX Runtime (fast on CPU) or torch.
    """
    if engine not in ("auto", "onnx", "torch"):
        raise ValidationError(f"engine must be auto, onnx or torch, got {engine!r}")
    if isinstance(spec, Backbone):
        bb = spec
    else:
        key, arg, options = parse_spec(spec)
        entry = _REGISTRY.get(key)
        if entry is None:
            names = ", ".join(sorted(_REGISTRY))
            raise ValidationError(f"unknown backbone {key!r}; known: {names} (or register_backbone)")
        if entry.kind not in (kind, "any"):
            raise ValidationError(f"backbone {key!r} embeds {entry.kind}s, not {kind}s")
        if entry.kind == "any":
            options["kind"] = kind
        if entry.takes_path:
            bb = entry.loader(device, engine=engine, arg=arg, **options)
        else:
            if arg:
                raise ValidationError(f"backbone {key!r} takes no ':argument' (got {arg!r})")
            bb = entry.loader(device, engine=engine, **options)
    if bb.kind != kind:
        raise ValidationError(f"backbone {getattr(bb, 'name', bb)!r} embeds {bb.kind}s, not {kind}s")
    return bb
