"""Features: readers (folders, archives, texts), backbones (a registry), the embed loop, feature files."""

from .store import FeatureSet, load_features

__all__ = ["FeatureSet", "load_features"]
