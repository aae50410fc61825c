"""Image preprocessing: decode, resize (optionally centre-crop) and normalise one image."""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ...errors import ValidationError, ValidationTypeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESAMPLE = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


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
        ``"center"``: resize the short side to ``resize`` (default ``size``), the
        long side in proportion (rounded down, as torchvision and transformers
        do), then crop the centre size x size.
    resize : int, optional
        Short side before the centre crop (e.g. 256 for a 224 crop: a crop
        percentage of 0.875); at least ``size``. Only with ``crop="center"``.
    """

    size: int = 224
    resample: str = "bicubic"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    crop: str = "none"
    resize: Optional[int] = None

    def __post_init__(self) -> None:
        if int(self.size) < 1:
            raise ValidationError(f"size must be >= 1, got {self.size}")
        if self.resample not in _RESAMPLE:
            raise ValidationError(f"resample must be one of {', '.join(_RESAMPLE)}, got {self.resample!r}")
        if self.crop not in ("none", "center"):
            raise ValidationError(f"crop must be 'none' or 'center', got {self.crop!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValidationError("mean and std need 3 values each, std > 0")
        if self.resize is not None:
            if self.crop != "center":
                raise ValidationError("resize (the short side before cropping) needs crop='center'")
            if int(self.resize) < int(self.size):
                raise ValidationError(f"resize must be >= size ({self.size}), got {self.resize}")

    def as_dict(self) -> Dict[str, Any]:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        if out["resize"] is None:  # the same record as before ``resize`` existed
            del out["resize"]
        return out

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
            r = int(self.resize or s)
            nw, nh = (r, int(r * h / w)) if w <= h else (int(r * w / h), r)
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), filt)
            left, top = (nw - s) // 2, (nh - s) // 2
            im = im.crop((left, top, left + s, top + s))
        elif im.size != (s, s):
            im = im.resize((s, s), filt)
        x = np.asarray(im, dtype=np.float32) / np.float32(255.0)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def _image_options(options: Dict[str, str]) -> Tuple[ImagePreprocess, str]:
    opts = dict(options)
    known = {"size", "mean", "std", "resample", "crop", "resize", "pool", "arch"}
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
    try:
        resize = int(opts["resize"]) if opts.get("resize") else None
    except ValueError:
        raise ValidationError(f"backbone option resize must be an integer, got {opts['resize']!r}") from None
    crop = opts.get("crop", "center" if resize is not None else "none")
    pre = ImagePreprocess(size=size, resample=opts.get("resample", "bicubic"), mean=triple("mean", IMAGENET_MEAN),
                          std=triple("std", IMAGENET_STD), crop=crop, resize=resize)
    return pre, opts.get("pool", "auto")
