"""Folders of Parquet feature shards, as :func:`bilaf.engines.ray_embed.embed_with_ray` writes them: read back.

Each shard has the columns ``row`` (the row number the local embed path gives
the sample), ``id``, ``label`` and ``features`` (fixed-size list of float32);
``_bilaf.json`` beside them holds the backbone, class names and skipped files.
Reading needs ``pyarrow``, not Ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np

from ..errors import ValidationError

__all__ = ["read_feature_shards", "load_any_features", "count_rows", "SIDECAR"]

SIDECAR = "_bilaf.json"


def _shard_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not any(part.startswith(("_", ".")) for part in
                                                                  p.relative_to(folder).parts))


def count_rows(folder: Path) -> int:
    """The rows of the Parquet shards in ``folder``."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in _shard_files(folder))


def read_feature_shards(folder: Union[str, Path]):
    """Read a folder written by :func:`embed_with_ray` into one :class:`~bilaf.features.FeatureSet`.

    Rows come back in the order of the local embed path (by the ``row`` column).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..features.store import FeatureSet

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"feature shard folder not found: {folder}")
    files = _shard_files(folder)
    if not files:
        raise ValidationError(f"no Parquet shards in {folder}")
    tables = [pq.read_table(p) for p in files]
    tables = [t for t in tables if t.num_rows]
    for p, t in zip(files, tables):
        missing = {"row", "id", "features"} - set(t.column_names)
        if missing:
            raise ValidationError(f"{p}: not a bilaf feature shard (missing column(s) {', '.join(sorted(missing))})")
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise ValidationError(f"no rows in the Parquet shards of {folder}")
    order = np.argsort(table.column("row").to_numpy(), kind="stable")
    col = table.column("features").combine_chunks()
    d = col.type.list_size
    X = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(table.num_rows, d)[order]
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)[order].tolist()
    labels = table.column("label").to_numpy()[order] if "label" in table.column_names else None
    meta: Dict[str, Any] = {}
    classes = None
    side = folder / SIDECAR
    if side.is_file():
        info = json.loads(side.read_text())
        meta = info.get("meta", {})
        classes = info.get("classes")
    if labels is not None and not (labels >= 0).any():
        labels = None
    return FeatureSet(features=X, ids=ids, labels=labels, classes=classes if labels is not None else None, meta=meta)


def load_any_features(path: Union[str, Path]):
    """A feature file (``.npy``, ``.npz``, ``.parquet``) or a folder of shards from :func:`embed_with_ray`."""
    p = Path(path)
    if p.is_dir():
        return read_feature_shards(p)
    from ..features.store import FeatureSet

    return FeatureSet.load(p)
