"""``bilaf embed --engine ray``: embed an image pool with ``ray.data``, writing Parquet shards.

The pipeline::

    source listing (driver)  ->  read tasks (ranges of the source)  ->  backbone actors  ->  Parquet shards
         open_image_source          map_batches, one range per block     map_batches(_Embedder)   write_parquet

* The driver lists the source once with the local reader
  (:func:`bilaf.features.inputs.open_image_source`: folders, tar / zip
  archives, image arrays, file lists), and cuts it into ranges of
  ``shard_size`` items. A folder, zip archive or array is read by one task
  per range; a tar archive (which can only be read front to back) by a single
  streaming task, while the actors embed what it has read so far.
* Each actor loads the backbone once (:func:`bilaf.features.load_backbone`, or a
  :class:`~bilaf.features.Backbone` / factory given by the caller), decodes and
  resizes with the backbone's own preprocessing, and embeds ``batch_size``
  images at a time, on a GPU when the cluster has GPUs.
* Rows are written as Parquet shards with the columns ``row`` (the row number
  the local path gives the image), ``id``, ``label`` and ``features`` (fixed-size
  list of float32), plus ``_bilaf.json`` (backbone, class names, skipped
  files). Each shard is a feature file :meth:`FeatureSet.load` reads;
  :func:`read_feature_shards` reads the whole folder back in the local path's
  row order.

The output folder appears only when the whole run succeeded (it is written
under a temporary name and renamed at the end).

Reading the shards back lives in :mod:`bilaf.engines.shards` (its names are importable from here too);
``bilaf embed --engine ray`` is run by :mod:`bilaf.cli.embed`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np

from ..errors import ValidationError, ValidationTypeError, escape
from ..validation import check_positive_int
from .runtime import init_ray
from .shards import SIDECAR, count_rows, load_any_features, read_feature_shards

__all__ = ["embed_with_ray", "read_feature_shards", "load_any_features", "SIDECAR"]

_ERRORS = "_errors"
DEFAULT_SHARD_SIZE = 2048


# --------------------------------------------------------------------------- read step (Ray tasks)

def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _read_ranges(batch: Dict[str, np.ndarray], src: Any, rank: np.ndarray, chunk: int) -> Iterator[Any]:
    """In a Ray task: the raw items of each range ``[start, stop)`` of the source, ``chunk`` rows per block."""
    import pyarrow as pa

    def table(rows: List[tuple]):
        return pa.table({
            "pos": pa.array([r[0] for r in rows], pa.int64()),
            "row": pa.array([r[1] for r in rows], pa.int64()),
            "id": pa.array([r[2] for r in rows], pa.string()),
            "label": pa.array([r[3] for r in rows], pa.int64()),
            "data": pa.array([r[4] for r in rows], pa.binary()),
            "is_array": pa.array([r[5] for r in rows], pa.bool_()),
            "error": pa.array([r[6] for r in rows], pa.string()),
        })

    for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist()):
        rows: List[tuple] = []
        try:
            for pos, data in src.iter_items(int(start), int(stop)):
                if isinstance(data, BaseException):
                    from ..features.embed import _reason

                    rec = (b"", False, _reason(data))
                elif isinstance(data, np.ndarray):
                    rec = (_npy_bytes(data), True, None)
                else:
                    rec = (bytes(data), False, None)
                rows.append((int(pos), int(rank[pos]), src.ids[pos], int(src.labels[pos])) + rec)
                if len(rows) == chunk:
                    yield table(rows)
                    rows = []
        finally:
            src.close()
        if rows:
            yield table(rows)


# --------------------------------------------------------------------------- embed step (Ray actors)

class _Embedder:
    """A Ray actor: loads the backbone once, then embeds whole blocks of raw items.

    Within a block, images go to the backbone in the groups the local embed
    loop forms (``batch_size`` consecutive items of a ``shard_size`` shard,
    unreadable ones left out), so each feature comes from the same batch as in
    a local run, hence the same bits.
    """

    def __init__(self, backbone: Any, device: str, engine: str, on_error: str, errors_dir: str,
                 batch_size: int, shard_size: int, env: Dict[str, str]) -> None:
        os.environ.update(env)
        from ..features.backbones import Backbone, load_backbone

        if isinstance(backbone, Backbone) or isinstance(backbone, str):
            bb = load_backbone(backbone, kind="image", device=device, engine=engine)
        else:  # a factory: backbone() -> Backbone
            bb = backbone()
            if not isinstance(bb, Backbone):
                raise ValidationTypeError(f"the backbone factory returned {type(bb).__name__}, not a Backbone")
        if not callable(getattr(bb, "preprocess", None)):
            raise ValidationTypeError(f"image backbone {bb.name!r} has no preprocess(image) -> array")
        self.bb = bb
        self.on_error = on_error
        self.errors_dir = errors_dir
        self.batch_size = batch_size
        self.shard_size = shard_size

    def __call__(self, batch):
        import pyarrow as pa

        from ..features.embed import _reason

        pos = batch.column("pos").to_numpy()
        rows = batch.column("row").to_numpy()
        ids = batch.column("id").to_pylist()
        labels = batch.column("label").to_numpy()
        datas = batch.column("data").to_pylist()
        is_array = batch.column("is_array").to_pylist()
        errs = batch.column("error").to_pylist()
        order = np.argsort(pos, kind="stable")
        group_of = (pos // self.shard_size) * (self.shard_size + 1) + (pos % self.shard_size) // self.batch_size
        keep: List[int] = []
        parts: List[np.ndarray] = []
        errors: List[tuple] = []
        k0 = 0
        while k0 < len(order):
            k1 = k0
            while k1 < len(order) and group_of[order[k1]] == group_of[order[k0]]:
                k1 += 1
            ok: List[int] = []
            arrays: List[np.ndarray] = []
            for k in order[k0:k1].tolist():
                reason = errs[k]
                if reason is None:
                    try:
                        item = np.load(io.BytesIO(datas[k]), allow_pickle=False) if is_array[k] else datas[k]
                        arrays.append(self.bb.preprocess(item))
                        ok.append(k)
                        continue
                    except Exception as exc:  # noqa: BLE001 - any decode failure is a bad input
                        reason = _reason(exc)
                if self.on_error == "stop":
                    raise ValidationError(escape(f"cannot read {ids[k]}: {reason}; use ")
                                          + "{setting} to skip bad files",
                                          setting=("on_error", "skip"))
                errors.append((int(rows[k]), ids[k], reason))
            if ok:
                out = np.asarray(self.bb.embed(np.stack(arrays)), dtype=np.float32)
                if out.ndim != 2 or out.shape[0] != len(ok):
                    raise ValidationError(f"backbone {self.bb.name!r} returned shape {out.shape} for {len(ok)} "
                                     f"images; it must return (batch, d)")
                parts.append(out)
                keep += ok
            k0 = k1
        if errors:
            (Path(self.errors_dir) / f"{uuid.uuid4().hex}.json").write_text(json.dumps(errors))
        feats = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        idx = np.asarray(keep, dtype=np.int64)
        return pa.table({
            "row": pa.array(rows[idx], pa.int64()),
            "id": pa.array([ids[k] for k in keep], pa.string()),
            "label": pa.array(labels[idx], pa.int64()),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel(), pa.float32()), feats.shape[1]),
        })


# --------------------------------------------------------------------------- the driver


def _backbone_meta(backbone: Any, engine: str) -> Dict[str, Any]:
    """What the features were made with, without loading the model in the driver when a name says it."""
    from ..features.backbones import Backbone

    if isinstance(backbone, Backbone):
        return dict(backbone.meta())
    if isinstance(backbone, str):
        return {"backbone": backbone, "kind": "image", "engine": engine}
    return {"backbone": getattr(backbone, "__name__", "factory"), "kind": "image", "engine": engine}


def embed_with_ray(source: Any, backbone: Union[str, Any, Callable[[], Any]] = "efficientnet_lite0",
                   out_dir: Union[str, Path] = "features", *, split: Optional[str] = None, batch_size: int = 64,
                   shard_size: Optional[int] = None, device: str = "auto", engine: str = "auto",
                   on_error: str = "skip", num_actors: Optional[int] = None, actor_cpus: float = 1,
                   address: Optional[str] = None, labels: Any = None, overwrite: bool = False,
                   verbose: bool = True) -> Path:
    """Embed an image pool on a Ray cluster; write the features as Parquet shards in ``out_dir``.

    Gives the features of :func:`bilaf.features.embed_images` (same reader,
    same backbone, same preprocessing), row for row.

    Parameters
    ----------
    source : path, array-like, list of paths or ImageSource
        As for :func:`~bilaf.features.embed_images`. Paths must be readable from
        every node of the cluster (a shared file system) when the cluster has
        more than one machine.
    backbone : str, Backbone or callable
        A registered backbone name or spec (loaded once in each actor), a
        :class:`~bilaf.features.Backbone` object (shipped to the actors), or a
        factory ``() -> Backbone`` (for a backbone registered only in this process).
    out_dir : path
        Folder to create; refused if it exists unless ``overwrite``.
    split : str, optional
        Read only ``root/<split>/...`` of a folder or archive.
    batch_size : int, default 64
        Images per backbone call.
    shard_size : int, optional
        Items per read task and per block: the local loop's shards (default
        about 2048, as there). With the same ``batch_size`` and ``shard_size``,
        every image is embedded in the same batch as in a local run, so the
        features are the same bit for bit.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``auto``: GPU actors (one GPU each) when the cluster has GPUs, else CPU actors.
    engine : {"auto", "onnx", "torch"}
        Backbone runtime, as for :func:`~bilaf.features.embed_images`.
    on_error : {"skip", "stop"}
        An unreadable file: leave it out (listed in ``_bilaf.json``) or stop
        (then no output is written).
    num_actors : int, optional
        Backbone actors. Default: one per GPU, or one per ``actor_cpus`` CPUs.
    actor_cpus : float, default 1
        CPUs Ray reserves for each CPU actor.
    address : str, optional
        The Ray cluster (see :func:`bilaf.engines.ray.init_ray`).
    labels : array-like, optional
        Labels of an array or file-list input.
    overwrite : bool, default False
        Replace an existing ``out_dir``.
    verbose : bool, default True
        Ray Data's progress bars.

    Returns
    -------
    pathlib.Path
        ``out_dir``. Read it with :func:`read_feature_shards`.
    """
    from ..features.embed import _check_common
    from ..features.inputs import open_image_source

    batch_size, shard_size = _check_common(batch_size, on_error, shard_size)
    if device not in ("auto", "cpu", "cuda"):
        raise ValidationError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if num_actors is not None:
        check_positive_int(num_actors, "num_actors")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output folder exists: {out} (remove it or pass overwrite=True)")
    src = open_image_source(source, split=split, labels=labels)
    src.close()
    if src.rejected and on_error == "stop":
        name, reason = src.rejected[0]
        raise ValidationError(escape(f"cannot read {name}: {reason}; use ") + "{setting} to skip bad files",
                              setting=("on_error", "skip"))
    n = len(src)
    order = src.output_order() if hasattr(src, "output_order") else np.arange(n)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    ray = init_ray(address)
    import ray.data  # noqa: F401

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if device == "cuda" and gpus == 0:
        raise ValidationError("device='cuda' but the Ray cluster has no GPU")
    cpus = max(1, int(res.get("CPU", 1)))
    if num_actors is None:
        num_actors = max(1, gpus) if use_gpu else max(1, int(cpus // max(actor_cpus, 1e-9)))

    # ranges are the local loop's shards; a (compressed) tar can only be read front to back: one reader
    streaming = type(src).__name__ == "TarSource"
    ranges = [(0, n)] if streaming else [(s, min(n, s + shard_size)) for s in range(0, n, shard_size)]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    errors_dir = tmp / _ERRORS
    errors_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k in ("BILAF_CACHE_DIR", "XDG_CACHE_HOME", "HF_HUB_OFFLINE")}
    t0 = time.perf_counter()
    try:
        ctx = ray.data.DataContext.get_current()
        saved = {k: getattr(ctx, k) for k in ("enable_progress_bars", "raise_original_map_exception")
                 if hasattr(ctx, k)}
        ctx.enable_progress_bars = bool(verbose)
        if "raise_original_map_exception" in saved:  # a bad file's ValueError, not Ray's wrapper
            ctx.raise_original_map_exception = True
        items = ray.data.from_items([{"start": s, "stop": e} for s, e in ranges], override_num_blocks=len(ranges))
        # Reading is light, IO-bound work: its tasks reserve no CPU (and so are not fused into the actors,
        # which lets a streaming tar reader feed every actor).
        # one block per shard: an actor gets whole shards (Ray splits a block only past its target block
        # size, 128 MiB of encoded files by default)
        raw = items.map_batches(_read_ranges, batch_size=1, fn_kwargs={"src": src, "rank": rank, "chunk": shard_size},
                                batch_format="numpy", num_cpus=0)
        feats = raw.map_batches(
            _Embedder, batch_size=None, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else actor_cpus,
            fn_constructor_kwargs={"backbone": backbone, "device": "cuda" if use_gpu else "cpu", "engine": engine,
                                   "on_error": on_error, "errors_dir": str(errors_dir.resolve()),
                                   "batch_size": batch_size, "shard_size": shard_size, "env": env})
        try:
            feats.write_parquet(str(tmp.resolve()))
        finally:
            for k, v in saved.items():
                setattr(ctx, k, v)
        errors: List[tuple] = []
        for f in sorted(errors_dir.glob("*.json")):
            errors.extend(tuple(e) for e in json.loads(f.read_text()))
        errors.sort()
        shutil.rmtree(errors_dir)
        n_ok = count_rows(tmp)
        skipped = list(src.rejected) + [(i, r) for _, i, r in errors]
        if n_ok == 0:
            first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
            raise ValidationError(f"no readable images in {src.description or 'the input'}{first}")
        has_labels = bool((src.labels >= 0).any())
        meta = _backbone_meta(backbone, engine)
        meta.update({"source": src.description, "n_skipped": len(skipped), "skipped": [f"{i}: {r}" for i, r in skipped],
                     "engine_run": "ray", "n_rows": n_ok, "batch_size": batch_size, "shard_size": shard_size,
                     "num_actors": num_actors, "device": "cuda" if use_gpu else "cpu",
                     "seconds": round(time.perf_counter() - t0, 3)})
        (tmp / SIDECAR).write_text(json.dumps({"format": 1, "meta": meta,
                                               "classes": src.classes if has_labels else None}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = _user_cause(ray, exc)
        if cause is not None:
            raise cause from None
        raise
    if skipped:
        from ..features.embed import SkippedInputWarning

        name, reason = skipped[0]
        warnings.warn(f"skipped {len(skipped)} of {n + len(src.rejected)} files that could not be read "
                      f"(first: {name}: {reason})", SkippedInputWarning, stacklevel=2)
    return out


def _user_cause(ray, exc: BaseException) -> Optional[BaseException]:
    """The user-level error (bad file, bad backbone) behind a Ray task failure, if there is one."""
    seen = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, ray.exceptions.RayTaskError) and isinstance(cause, BaseException):
            e = cause
            continue
        if isinstance(e, (ValueError, TypeError, FileNotFoundError, ImportError)) and not isinstance(
                e, ray.exceptions.RayError):
            # Ray appends its retry advice on further lines: keep the error's own (first) line
            return type(e)(str(e).strip().splitlines()[0] if str(e).strip() else str(e))
        e = e.__cause__ or e.__context__
    return None
