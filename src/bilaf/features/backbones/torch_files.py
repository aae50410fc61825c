"""A user's own torch model from a local file: TorchScript, ``torch.export`` programs, state dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import ImageBackbone, _full_fp32, _local_file, _pool, _quiet
from .preprocess import ImagePreprocess, _image_options


class TorchImageBackbone(ImageBackbone):
    """Any ``torch.nn.Module`` mapping (B, 3, H, W) to (B, d) (or a map / tokens, pooled).

    Parameters
    ----------
    module : torch.nn.Module
    preprocess : ImagePreprocess
    name : str
    device : str or torch.device
    pool : {"auto", "mean", "cls", "none"}
    """

    def __init__(self, module: Any, preprocess: ImagePreprocess, name: str = "torch", device: Any = "cpu",
                 pool: str = "auto") -> None:
        import torch

        super().__init__(preprocess, name, pool)
        self.device = resolve_device(device)
        self.module = module.eval().to(self.device)
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            try:
                self.module = self.module.to(memory_format=torch.channels_last)
            except (RuntimeError, TypeError):  # pragma: no cover - scripted modules may refuse
                self.channels_last = False
        self.engine = "torch"

    def embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), _full_fp32(self.device):
            out = self.module(x.to(self.device, non_blocking=True))
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = _pool(out, self.pool)
            feats = out.float().cpu().numpy()
        self.dim = feats.shape[1]
        return feats


def _load_torchscript(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    import torch

    path = _local_file(arg, "torchscript")
    pre, pool = _image_options(options)
    try:
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ValidationError(f"cannot load TorchScript model {path}: {str(exc).splitlines()[0]}") from None
    return TorchImageBackbone(module, pre, name=f"torchscript:{path}", device=device, pool=pool)


def _load_torch_export(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    import torch

    path = _local_file(arg, "torch_export")
    pre, pool = _image_options(options)
    try:
        with _quiet():
            module = torch.export.load(str(path)).module()
    except Exception as exc:
        raise ValidationError(f"cannot load torch.export program {path}: {str(exc).splitlines()[0]}") from None
    bb = TorchImageBackbone(_ExportedWrapper(module), pre, name=f"torch_export:{path}", device=device, pool=pool)
    return bb


def _ExportedWrapper(module: Any) -> Any:
    """An exported program's module refuses .eval()/.to(memory_format); wrap it in a plain nn.Module."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def eval(self):  # type: ignore[override]
            return self

        def forward(self, x):
            return self.inner(x.contiguous())

    return Wrapped(module)


def read_state_dict(path: Path) -> Any:
    """Read weights: a ``.safetensors`` file (safetensors) or a torch pickle (``weights_only=True``)."""
    import torch

    if path.name.lower().endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(".safetensors weights need safetensors: pip install safetensors") from None
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise ValidationError(f"cannot read safetensors file {path}: {str(exc).splitlines()[0]}") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of many types
        raise ValidationError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None


def _load_state_dict(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    import importlib

    path = _local_file(arg, "state_dict")
    arch = options.pop("arch", "")
    if ":" not in arch:
        raise ValidationError("state_dict backbones need ?arch=package.module:function (a function returning the "
                         "nn.Module to load the weights into)")
    mod_name, fn_name = arch.split(":", 1)
    try:
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"cannot import arch {arch!r}: {exc}") from None
    pre, pool = _image_options(options)
    module = factory()
    state = read_state_dict(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValidationError(f"weights {path} do not fit {arch}: {str(exc).splitlines()[0]}") from None
    return TorchImageBackbone(module, pre, name=f"state_dict:{path}", device=device, pool=pool)
