"""``FeatureSet``: features + stable ids (file paths) + labels, and their files (.npy, .npz, Parquet)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import ValidationError
from ..result import atomic_path

__all__ = ["FeatureSet", "load_features"]

FEATURE_SUFFIXES = (".npy", ".npz", ".parquet", ".pq")


@dataclass
class FeatureSet:
    """Features of a pool, with the id (usually a file path) and label of each row.

    Attributes
    ----------
    features : numpy.ndarray of shape (n, d)
    ids : list of str, length n
        Stable names of the rows (file paths, line numbers); default ``"0".."n-1"``.
    labels : numpy.ndarray of int64, shape (n,), or None
        Known labels (-1 = unknown), for evaluation only.
    classes : list of str or None
        Class names, indexed by label.
    meta : dict
        Free-form provenance (backbone, preprocessing...).
    """

    features: np.ndarray
    ids: List[str] = field(default_factory=list)
    labels: Optional[np.ndarray] = None
    classes: Optional[List[str]] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ValidationError(f"features must be 2-D, got shape {self.features.shape}")
        n = self.features.shape[0]
        if not self.ids:
            self.ids = [str(i) for i in range(n)]
        self.ids = [str(i) for i in self.ids]
        if len(self.ids) != n:
            raise ValidationError(f"{len(self.ids)} ids for {n} feature rows")
        if self.labels is not None:
            self.labels = np.asarray(self.labels).astype(np.int64)
            if self.labels.shape != (n,):
                raise ValidationError(f"{self.labels.shape[0] if self.labels.ndim else 0} labels for {n} feature rows")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None and bool((self.labels >= 0).any())

    def save(self, path: Union[str, Path]) -> Path:
        """Write to ``.npz``, ``.parquet`` or ``.npy`` (by suffix), atomically.

        ``X.npy`` holds the features only; the ids, labels, class names and meta
        go to the sidecar files ``X_ids.txt``, ``X_labels.npy``,
        ``X_classes.txt`` and ``X_meta.json`` (which :meth:`load` reads back).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            self._save_npy(path)
        elif suffix == ".npz":
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, features=self.features, ids=np.asarray(self.ids, dtype=str),
                             labels=self.labels if self.labels is not None else np.empty(0, np.int64),
                             classes=np.asarray(self.classes or [], dtype=str), meta=json.dumps(self.meta))
        elif suffix in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            f = np.ascontiguousarray(self.features)
            cols = {"id": pa.array(self.ids, pa.string()),
                    "features": pa.FixedSizeListArray.from_arrays(pa.array(f.ravel()), f.shape[1])}
            if self.labels is not None:
                cols["label"] = pa.array(self.labels, pa.int64())
            table = pa.table(cols)
            md = {b"bilaf.meta": json.dumps(self.meta).encode(),
                  b"bilaf.classes": json.dumps(self.classes or []).encode()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **md})
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
        else:
            raise ValidationError(f"unsupported feature file type {path.suffix!r}; use .npy, .npz or .parquet")
        return path

    def _save_npy(self, path: Path) -> None:
        from contextlib import ExitStack

        stem = path.stem
        texts = {path.with_name(f"{stem}_ids.txt"): "\n".join(self.ids) + "\n",
                 path.with_name(f"{stem}_meta.json"): json.dumps(self.meta)}
        if self.classes:
            texts[path.with_name(f"{stem}_classes.txt")] = "\n".join(self.classes) + "\n"
        arrays = {path: np.ascontiguousarray(self.features)}
        if self.labels is not None:
            arrays[path.with_name(f"{stem}_labels.npy")] = self.labels
        # Every file is written to a temporary name first; all are renamed only when all succeeded.
        with ExitStack() as stack:
            for target, arr in arrays.items():
                tmp = stack.enter_context(atomic_path(target))
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)
            for target, text in texts.items():
                tmp = stack.enter_context(atomic_path(target))
                tmp.write_text(text)
        for stale in (path.with_name(f"{stem}_labels.npy"), path.with_name(f"{stem}_classes.txt")):
            if stale not in arrays and stale not in texts and stale.exists():
                stale.unlink()

    @classmethod
    def load(cls, path: Union[str, Path], *, mmap: bool = True) -> "FeatureSet":
        """Read ``.npy`` (features only; ids/labels from sibling files if present), ``.npz`` or ``.parquet``.

        For ``X.npy``, the sibling files ``X_ids.txt`` / ``X_labels.npy`` are used
        when they exist, as are the shared CIFAR-10 layout's ``<split>_files.txt``
        and ``<split>_labels.npy`` next to ``<split>_features.npy``.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"feature file not found: {path}")
        if path.is_dir():
            raise ValidationError(f"expected a feature file (.npy, .npz, .parquet), got a folder: {path}")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                X = np.load(path, mmap_mode="r" if mmap else None)
                stem = path.stem
                base = stem[: -len("_features")] if stem.endswith("_features") else stem
                ids: List[str] = []
                labels = None
                classes = None
                for cand in (path.with_name(f"{stem}_ids.txt"), path.with_name(f"{base}_files.txt")):
                    if cand.exists():
                        ids = cand.read_text().splitlines()
                        break
                for cand in (path.with_name(f"{stem}_labels.npy"), path.with_name(f"{base}_labels.npy")):
                    if cand.exists():
                        labels = np.load(cand)
                        break
                for cand in (path.with_name(f"{stem}_classes.txt"), path.with_name("classes.txt")):
                    if cand.exists():
                        classes = cand.read_text().split("\n")
                        classes = [c.strip() for c in classes if c.strip()]
                        break
                meta = {"source": str(path)}
                if path.with_name(f"{stem}_meta.json").exists():
                    meta = json.loads(path.with_name(f"{stem}_meta.json").read_text())
                return cls(features=X, ids=ids, labels=labels, classes=classes, meta=meta)
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    key = "features" if "features" in z.files else ("X" if "X" in z.files else None)
                    if key is None:
                        raise ValidationError(f"{path}: no 'features' array inside (keys: {', '.join(z.files)})")
                    labels = z["labels"] if "labels" in z.files and z["labels"].size else None
                    if labels is None and "y" in z.files:
                        labels = z["y"]
                    ids = [str(s) for s in z["ids"]] if "ids" in z.files else []
                    classes = [str(s) for s in z["classes"]] if "classes" in z.files and z["classes"].size else None
                    meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
                    return cls(features=np.asarray(z[key]), ids=ids, labels=labels, classes=classes, meta=meta)
            if suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                table = pq.read_table(path)
                if "features" not in table.column_names:
                    raise ValidationError(f"{path}: no 'features' column (columns: {', '.join(table.column_names)})")
                col = table.column("features").combine_chunks()
                d = col.type.list_size if hasattr(col.type, "list_size") else len(col[0])
                X = np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(table), d)
                ids = [str(s) for s in table.column("id").to_pylist()] if "id" in table.column_names else []
                if not ids and "path" in table.column_names:
                    ids = [str(s) for s in table.column("path").to_pylist()]
                labels = np.asarray(table.column("label").to_pylist()) if "label" in table.column_names else None
                md = table.schema.metadata or {}
                meta = json.loads(md.get(b"bilaf.meta", b"{}"))
                classes = json.loads(md.get(b"bilaf.classes", b"[]")) or None
                return cls(features=X, ids=ids, labels=labels, classes=classes, meta=meta)
        except (OSError, EOFError, json.JSONDecodeError) as exc:
            raise ValidationError(f"cannot read feature file {path}: {exc}") from None
        raise ValidationError(f"unsupported feature file type {path.suffix!r}; use one of {', '.join(FEATURE_SUFFIXES)}")


def load_features(path: Union[str, Path], *, mmap: bool = True) -> FeatureSet:
    """Shorthand for :meth:`FeatureSet.load`."""
    return FeatureSet.load(path, mmap=mmap)
