"""Engines: the same stages run elsewhere than in this process.

``bilaf.engines.ray`` runs BiLAF's stage 2 (nearest-core assignment, per-class
denoising, scores and selection) on a Ray cluster; ``bilaf.engines.ray_embed``
runs the embedding of an image pool with ``ray.data``. Ray is an optional extra
(``pip install bilaf[ray]``): nothing here imports it until an engine is used.

>>> from bilaf.engines import select_with_ray          # doctest: +SKIP
>>> res = select_with_ray(X, 500, random_state=0)       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["RayBiLAF", "select_with_ray", "embed_with_ray", "read_feature_shards", "init_ray"]


def __getattr__(name: str) -> Any:  # lazy: importing bilaf.engines never imports ray
    if name in ("RayBiLAF", "select_with_ray", "init_ray"):
        from . import ray as _ray_engine

        return getattr(_ray_engine, name)
    if name in ("embed_with_ray", "read_feature_shards"):
        from . import ray_embed as _ray_embed

        return getattr(_ray_embed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
