"""Features: readers (folders, archives, arrays, texts), backbones (a registry), the embed loop, feature files.

>>> from bilaf.features import embed_images, embed_texts
>>> fs = embed_images("photos/", split="train")          # doctest: +SKIP
>>> fs.save("feats.npz")                                  # doctest: +SKIP

Heavy packages (torch models, PIL, onnxruntime, sentence-transformers) are
imported only when a backbone is loaded.
"""

from .backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    ImageBackbone,
    ImagePreprocess,
    OnnxImageBackbone,
    SentenceTransformerBackbone,
    TextBackbone,
    TorchImageBackbone,
    list_backbones,
    load_backbone,
    register_backbone,
    resolve_device,
)
from .embed import SkippedInputWarning, embed_images, embed_texts
from .inputs import open_image_source, read_texts
from .readers import ArraySource, FolderSource, ImageSource, TarSource, ZipSource
from .store import FeatureSet, load_features

__all__ = [
    "FeatureSet",
    "load_features",
    "embed_images",
    "embed_texts",
    "SkippedInputWarning",
    "register_backbone",
    "list_backbones",
    "load_backbone",
    "resolve_device",
    "Backbone",
    "ImageBackbone",
    "TextBackbone",
    "TorchImageBackbone",
    "OnnxImageBackbone",
    "SentenceTransformerBackbone",
    "ImagePreprocess",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageSource",
    "FolderSource",
    "TarSource",
    "ZipSource",
    "ArraySource",
    "open_image_source",
    "read_texts",
]
