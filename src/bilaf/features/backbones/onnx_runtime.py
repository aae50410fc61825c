"""ONNX models run by ONNX Runtime, and the cached ONNX export of a torch module."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ...errors import ValidationError
from ...kernels.tensors import resolve_device
from .base import ImageBackbone, _local_file, _pool, _quiet, cache_dir
from .preprocess import ImagePreprocess, _image_options


class OnnxImageBackbone(ImageBackbone):
    """An ONNX model run by ONNX Runtime (CPU, or CUDA with ``onnxruntime-gpu``).

    Parameters
    ----------
    model : path or bytes
        The ``.onnx`` file (first input: float32 (B, 3, H, W); first output used).
    preprocess : ImagePreprocess
    name : str
    device : str or torch.device
    threads : int, optional
        Intra-op threads; default: the free cores this process may use (:func:`bilaf.threads.auto_threads`).
    pool : {"auto", "mean", "cls", "none"}
    """

    def __init__(self, model: Union[str, Path, bytes], preprocess: ImagePreprocess, name: str = "onnx",
                 device: Any = "cpu", threads: Optional[int] = None, pool: str = "auto") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("ONNX models need onnxruntime: pip install onnxruntime") from None
        super().__init__(preprocess, name, pool)
        dev = resolve_device(device)
        so = ort.SessionOptions()
        from ...threads import auto_threads

        so.intra_op_num_threads = int(threads or auto_threads())
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Busy-waiting threads only steal time from the decoding thread and from neighbours.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if dev.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": dev.index or 0}))
        src = model if isinstance(model, (bytes, bytearray)) else str(model)
        try:
            self.session = ort.InferenceSession(src, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            where = "the given bytes" if isinstance(src, (bytes, bytearray)) else src
            raise ValidationError(f"cannot load ONNX model {where}: {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.device = dev if providers[0] != "CPUExecutionProvider" else "cpu"
        self.engine = "onnxruntime"

    def embed(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        feats = np.asarray(_pool(np.asarray(out), self.pool), dtype=np.float32)
        self.dim = feats.shape[1]
        return feats


def _onnx_export(module: Any, size: int, cache_name: str, check: bool = True) -> bytes:
    """Export ``module`` (float32 (B, 3, size, size) -> (B, d)) to ONNX, cached on disk; return the bytes."""
    import torch

    path = cache_dir() / cache_name
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError:
            pass
    buf = io.BytesIO()
    example = torch.zeros(2, 3, size, size)
    with _quiet(), torch.no_grad():
        torch.onnx.export(module, (example,), buf, input_names=["x"], output_names=["features"],
                          dynamic_axes={"x": {0: "n"}, "features": {0: "n"}}, opset_version=17, dynamo=False)
    data = buf.getvalue()
    try:
        from ...result import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            fh.write(data)
    except OSError:  # read-only home: keep it in memory only
        pass
    return data


def _load_onnx(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    path = _local_file(arg, "onnx")
    pre, pool = _image_options(options)
    return OnnxImageBackbone(path, pre, name=f"onnx:{path}", device=device, pool=pool)
