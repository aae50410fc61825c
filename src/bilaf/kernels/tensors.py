"""Devices, dtypes, and the passage of arrays into torch and back."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ..errors import ValidationError

__all__ = ["resolve_device", "torch_dtype", "to_tensor", "to_numpy"]

_DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(device: Any = "auto") -> torch.device:
    """The torch device that ``device`` names, checked to exist here.

    ``"auto"`` (or None) picks CUDA when torch sees a GPU, else the CPU. A
    ``torch.device`` passes through after the same checks. A CUDA device
    needs a GPU (and its index must exist), ``"mps"`` the MPS backend; any
    other kind than cpu, cuda and mps is refused.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.lower())
        except RuntimeError:
            raise ValidationError(f"unknown {{setting}}; use {_DEVICES}", setting=("device", device)) from None
    else:
        raise ValidationError(f"device must be {_DEVICES}, got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError("{setting} was asked for, but CUDA is not available here: torch sees no CUDA GPU",
                                  setting=("device", device))
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValidationError(f"{{setting}}: only {torch.cuda.device_count()} CUDA device(s)",
                                  setting=("device", device))
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValidationError("{setting} was asked for, but MPS is not available here", setting=("device", device))
    elif dev.type != "cpu":
        raise ValidationError(f"unsupported {{setting}}; use {_DEVICES}", setting=("device", device))
    return dev


def torch_dtype(dtype: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` as a torch dtype."""
    if dtype == "float32":
        return torch.float32
    if dtype == "float64":
        return torch.float64
    raise ValidationError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def to_tensor(X: Any, device: torch.device, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A torch view/copy of ``X`` on ``device`` (no copy for a matching CPU array)."""
    if isinstance(X, torch.Tensor):
        t = X
    else:
        arr = np.asarray(X)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
            if not arr.flags.writeable:
                arr = arr.copy()
        t = torch.from_numpy(arr)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if t.device != device:
        t = t.to(device)
    return t


def to_numpy(X: Any, dtype: Any = None) -> np.ndarray:
    """A numpy view/copy of an array or tensor (a tensor is detached and brought to the CPU first).

    ``dtype`` (a numpy dtype) converts as well; a tensor is converted by torch
    before it leaves its device.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if dtype is not None:
            t = t.to(getattr(torch, np.dtype(dtype).name))
        return t.cpu().numpy()
    return np.asarray(X, dtype=dtype)
