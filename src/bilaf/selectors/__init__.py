"""One file per selection method; all share :class:`~bilaf.selectors.base.BaseSelector`."""

from __future__ import annotations

import importlib
from typing import Dict, Type

from ..errors import ValidationError
from .base import BaseSelector

# method name -> "module:Class" (imported on first use)
_REGISTRY: Dict[str, str] = {
    "random": "random:RandomSelector",
    "kcenter": "kcenter:KCenterGreedy",
    "kmeans": "kmeans:KMeansSelector",
    "activeft": "activeft:ActiveFT",
    "bilaf": "bilaf:BiLAF",
    "typiclust": "typiclust:TypiClust",
    "probcover": "probcover:ProbCover",
    "maxherding": "maxherding:MaxHerding",
}

METHODS = tuple(_REGISTRY)


def get_selector_class(method: str) -> Type[BaseSelector]:
    """The selector class registered under ``method``."""
    if not isinstance(method, str) or method not in _REGISTRY:
        raise ValidationError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    module, cls = _REGISTRY[method].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["BaseSelector", "METHODS", "get_selector_class"]
