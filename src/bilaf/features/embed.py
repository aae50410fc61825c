"""The embed loop: samples -> features, batched, with a progress bar, resumable, CUDA when present.

Work is cut into *shards* of consecutive samples (in the order the source reads
them). With ``resume_dir`` each finished shard is written there (atomically)
together with a manifest naming the input and the backbone; a later call with
the same input, backbone and folder loads the finished shards and computes only
the rest, so a killed run continues where it stopped. A folder holding shards
of another input or backbone is refused rather than mixed in (the shard folder and
its manifest: :mod:`bilaf.features.shard_store`).

Images are decoded and resized in a background thread while the backbone runs
on the previous batch.
"""

from __future__ import annotations

import math
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import ValidationError, ValidationTypeError, escape
from ..validation import check_positive_int
from .backbones import DEFAULT_BACKBONES, Backbone, load_backbone
from .backbones.base import _usable_cpus
from .inputs import open_image_source, read_texts
from .readers import ImageSource
from .shard_store import ShardStore, run_shards
from .store import FeatureSet
from ..threads import thread_limited

__all__ = ["embed_images", "embed_texts", "SkippedInputWarning"]

DEFAULT_SHARD_SIZE = 2048


class SkippedInputWarning(UserWarning):
    """Some inputs could not be read and were left out (``on_error="skip"``)."""


# --------------------------------------------------------------------------- helpers


def _check_common(batch_size: Any, on_error: str, shard_size: Any) -> Tuple[int, int]:
    check_positive_int(batch_size, "batch_size")
    if on_error not in ("skip", "stop"):
        raise ValidationError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    batch_size = int(batch_size)
    if shard_size is None:
        shard_size = max(batch_size, (DEFAULT_SHARD_SIZE // batch_size) * batch_size)
    check_positive_int(shard_size, "shard_size")
    return batch_size, int(shard_size)


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for an unreadable input."""
    name = type(exc).__name__
    if name == "UnidentifiedImageError":
        return "not a readable image (unknown or corrupt format)"
    msg = (str(exc).splitlines() or [""])[0].strip()
    if "truncated" in msg.lower():
        return f"truncated or corrupt image ({msg})"
    if name == "DecompressionBombWarning" or name == "DecompressionBombError":
        return "image too large (decompression bomb guard)"
    return f"{name}: {msg}" if msg else name


def _prefetch(gen: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``gen`` in a background thread, ``depth`` items ahead; errors surface in the consumer."""
    q: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(("error", exc))

    t = threading.Thread(target=work, name="bilaf-decode", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


def _warn_skipped(skipped: List[Tuple[str, str]], n_total: int, what: str) -> None:
    if not skipped:
        return
    name, reason = skipped[0]
    warnings.warn(f"skipped {len(skipped)} of {n_total} {what} that could not be read "
                  f"(first: {name}: {reason})", SkippedInputWarning, stacklevel=3)


# --------------------------------------------------------------------------- images


def _decode(pre: Callable[[Any], np.ndarray], item: Tuple[int, Any]) -> Tuple[int, Any]:
    pos, data = item
    if isinstance(data, BaseException):
        return pos, _reason(data)
    try:
        return pos, pre(data)
    except Exception as exc:  # noqa: BLE001 - any decode failure is a bad input
        return pos, _reason(exc)


def _image_batches(src: ImageSource, pre: Callable[[Any], np.ndarray], start: int, stop: int, batch_size: int,
                   pool: Any = None) -> Iterator[Tuple[List[int], Optional[np.ndarray], List[Tuple[int, str]]]]:
    """Decode items ``start..stop-1`` into (positions, float32 batch, errors) groups.

    Items are read in order; with a thread ``pool`` a batch's items are decoded in parallel (PIL and
    numpy release the GIL while they work).
    """
    def groups() -> Iterator[List[Tuple[int, Any]]]:
        group: List[Tuple[int, Any]] = []
        for item in src.iter_items(start, stop):
            group.append(item)
            if len(group) == batch_size:
                yield group
                group = []
        if group:
            yield group

    for group in groups():
        done = list(pool.map(lambda it: _decode(pre, it), group)) if pool is not None else \
            [_decode(pre, it) for it in group]
        pos_list = [p for p, r in done if isinstance(r, np.ndarray)]
        arrays = [r for _, r in done if isinstance(r, np.ndarray)]
        errors = [(p, r) for p, r in done if not isinstance(r, np.ndarray)]
        yield pos_list, (np.stack(arrays) if arrays else None), errors


@thread_limited
def embed_images(source: Any, backbone: Union[str, Backbone] = "efficientnet_lite0", batch_size: int = 64,
                 device: Any = "auto", split: Optional[str] = None, on_error: str = "skip",
                 resume_dir: Optional[Union[str, Path]] = None, verbose: bool = True, *, labels: Any = None,
                 engine: str = "auto", shard_size: Optional[int] = None,
                 num_workers: Optional[int] = None, on_mismatch: str = "error") -> FeatureSet:
    """Embed images with a pretrained backbone.

    Parameters
    ----------
    source : path, URL, array-like, list, datasets.Dataset or ImageSource
        A folder tree (``root/<split>/<class>/<file>``, ``root/<class>/<file>`` or
        ``root/<file>``), a tar (any compression) or zip archive of the same (read
        without extracting), a ``.npy`` / ``.npz`` image array, a ``.txt`` /
        ``.csv`` file listing image paths (relative to the list's folder, with an
        optional label column), an in-memory uint8 array (N, H, W) (grey, turned
        to RGB) or (N, H, W, 3), a list of image file paths or URLs, a list of
        ``PIL.Image`` objects or arrays of any sizes, a Hugging Face
        ``datasets.Dataset`` with an image column, or an fsspec URL of a folder or
        list file. See :mod:`bilaf.features.readers` and
        :mod:`bilaf.features.sources`.
    backbone : str or Backbone, default "efficientnet_lite0"
        A registered name or spec (``torchscript:/path/model.pt``...); see
        :mod:`bilaf.features.backbones`.
    batch_size : int, default 64
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
        ``auto``: CUDA when available.
    split : str, optional
        Read only ``root/<split>/...`` of a folder or archive.
    on_error : {"skip", "stop"}, default "skip"
        An unreadable or non-image file: leave it out (one warning with the count
        at the end, the ids in ``meta["skipped"]``) or stop with an error.
    resume_dir : path, optional
        Work folder for finished shards: a killed run, restarted with the same
        arguments, continues where it stopped. A shard whose images were
        replaced since (other size or time, other archive member) is computed
        again. ``meta["resume"]`` says how many shards were loaded, redone, and
        whether the folder's shards were dropped.
    verbose : bool, default True
        Show a progress bar.
    labels : array-like, optional
        Labels of an array or file-list input.
    engine : {"auto", "onnx", "torch"}, default "auto"
        For the built-in backbone: ONNX Runtime on CPU when installed, else torch.
    shard_size : int, optional
        Samples per resumable shard (default about 2048).
    on_mismatch : {"error", "restart"}, default "error"
        When ``resume_dir`` holds shards of another run (another input,
        backbone or shard size): refuse, or delete those shards and start over.
    num_workers : int, optional
        Threads decoding and resizing images. Default: 1 (beside the model) when
        the model runs on the CPU, which then has no core to spare; up to 8 when
        it runs on a GPU, which would otherwise wait for the decoding.

    Returns
    -------
    FeatureSet
        ``features`` float32 (n, d); ``ids`` (paths inside the folder/archive, or
        row numbers); ``labels`` from class folders (-1 unknown), or None;
        ``classes``; ``meta`` (backbone, preprocessing, engine, source, skipped).
        Rows follow the id parts order (split, class, file) for folders and
        archives, the input order for arrays and file lists.
    """
    batch_size, shard_size = _check_common(batch_size, on_error, shard_size)
    src = open_image_source(source, split=split, labels=labels)
    try:
        if src.rejected and on_error == "stop":
            name, reason = src.rejected[0]
            more = f" ({len(src.rejected)} such files)" if len(src.rejected) > 1 else ""
            raise ValidationError(escape(f"cannot read {name}: {reason}{more}; use ")
                                  + "{setting} to skip bad files", setting=("on_error", "skip"))
        bb = load_backbone(backbone, kind="image", device=device, engine=engine)
        if not callable(getattr(bb, "preprocess", None)):
            raise ValidationTypeError(f"image backbone {bb.name!r} has no preprocess(image) -> array")
        bmeta = bb.meta()
        if num_workers is None:
            on_gpu = str(bmeta.get("device", "cpu")).startswith("cuda")
            num_workers = min(8, _usable_cpus()) if on_gpu else 1
        check_positive_int(num_workers, "num_workers")
        manifest = {"format": 2, "kind": "image", "source": src.fingerprint(), "shard_size": shard_size,
                    "backbone": {k: bmeta.get(k) for k in ("backbone", "preprocess", "pool")}}
        store = ShardStore(resume_dir, manifest, on_mismatch)
        n = len(src)

        def compute(start: int, stop: int, bar: Any):
            m = stop - start
            ok = np.zeros(m, dtype=bool)
            feats: Optional[np.ndarray] = None
            errors: List[Tuple[int, str]] = []
            batches = _image_batches(src, bb.preprocess, start, stop, batch_size, pool)
            for pos_list, batch, errs in _prefetch(batches, depth=2 if pool is None else 4):
                errors.extend(errs)
                if errs and on_error == "stop":
                    break
                if batch is not None:
                    out = bb.embed(batch)
                    if out.ndim != 2 or out.shape[0] != len(pos_list):
                        raise ValidationError(f"backbone {bb.name!r} returned shape {out.shape} for {len(pos_list)} "
                                         f"images; it must return (batch, d)")
                    if feats is None:
                        feats = np.zeros((m, out.shape[1]), dtype=np.float32)
                    idx = np.asarray(pos_list) - start
                    feats[idx] = out
                    ok[idx] = True
                bar.update(len(pos_list) + len(errs))
            if feats is None:
                feats = np.zeros((m, 0), dtype=np.float32)
            return feats, ok, errors

        pool = ThreadPoolExecutor(max_workers=int(num_workers), thread_name_prefix="bilaf-decode") \
            if num_workers > 1 else None
        try:
            feats, positions, errors = run_shards(n, shard_size, compute, store, on_error,
                                                   lambda p: src.ids[p], verbose, "embed images", "img",
                                                   stamp=src.stamp)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        src.close()
    skipped = list(src.rejected) + [(src.ids[p], r) for p, r in errors]
    if feats.shape[0] == 0:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ValidationError(f"no readable images in {src.description or 'the input'}{first}")
    if hasattr(src, "output_order") and getattr(src, "sort_output", False):
        rank = np.empty(n, dtype=np.int64)
        rank[src.output_order()] = np.arange(n)
        order = np.argsort(rank[positions], kind="stable")
        feats, positions = feats[order], positions[order]
    _warn_skipped(skipped, n + len(src.rejected), "files")
    labels_out = src.labels[positions]
    has_labels = bool((labels_out >= 0).any())
    meta = dict(bb.meta())
    meta.update({"source": src.description, "n_skipped": len(skipped),
                 "skipped": [f"{i}: {r}" for i, r in skipped]})
    meta["dim"] = int(feats.shape[1])
    if resume_dir is not None:
        meta["resume"] = store.report(math.ceil(n / shard_size))
    return FeatureSet(features=feats, ids=[src.ids[p] for p in positions],
                      labels=labels_out if has_labels else None,
                      classes=src.classes if has_labels else None, meta=meta)


# --------------------------------------------------------------------------- texts


@thread_limited
def embed_texts(source_or_list: Any, backbone: Union[str, Backbone] = "minilm", batch_size: int = 64,
                device: Any = "auto", resume_dir: Optional[Union[str, Path]] = None, verbose: bool = True, *,
                label_column: str = "auto", shard_size: Optional[int] = None,
                on_mismatch: str = "error") -> FeatureSet:
    """Embed texts (one sample per line of a file, or a list of strings).

    Parameters
    ----------
    source_or_list : path, sequence of str, datasets.Dataset or TextSamples
        A UTF-8 file with one sample per non-empty line, optionally
        ``<label> <text>``; the texts; or a Hugging Face dataset with a text
        column (labels from its ``ClassLabel`` / ``label`` column).
    backbone : str or Backbone, default "minilm"
        all-MiniLM-L6-v2 (384-d), ``sentence-transformers:<hub id or folder>``,
        ``hf:<hub id or folder>`` (transformers, mean over tokens by default) or
        ``open_clip:<name>``; see :mod:`bilaf.features.backbones`.
    batch_size : int, default 64
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    resume_dir : path, optional
        Work folder for finished shards (see :func:`embed_images`).
    on_mismatch : {"error", "restart"}, default "error"
        See :func:`embed_images`.
    verbose : bool, default True
    label_column : {"auto", "first", "none"}, default "auto"
        Whether each line starts with a label; ``auto``: when every line starts
        with an integer.
    shard_size : int, optional

    Returns
    -------
    FeatureSet
        ids ``"<file>:<line>"`` (or the list index), labels when the file has them.
    """
    batch_size, shard_size = _check_common(batch_size, "skip", shard_size)
    samples = read_texts(source_or_list, label_column=label_column)
    bb = load_backbone(backbone if backbone is not None else DEFAULT_BACKBONES["text"], kind="text", device=device)
    manifest = {"format": 2, "kind": "text", "source": samples.fingerprint(), "shard_size": shard_size,
                "backbone": {"backbone": bb.meta().get("backbone")}}
    store = ShardStore(resume_dir, manifest, on_mismatch)
    n = len(samples)

    def compute(start: int, stop: int, bar: Any):
        parts = []
        for b in range(start, stop, batch_size):
            chunk = samples.texts[b:min(stop, b + batch_size)]
            out = bb.embed(chunk)
            if out.ndim != 2 or out.shape[0] != len(chunk):
                raise ValidationError(f"backbone {bb.name!r} returned shape {out.shape} for {len(chunk)} texts")
            parts.append(out)
            bar.update(len(chunk))
        return np.concatenate(parts).astype(np.float32), np.ones(stop - start, dtype=bool), []

    feats, positions, _ = run_shards(n, shard_size, compute, store, "skip", lambda p: samples.ids[p], verbose,
                                      "embed texts", "text")
    meta = dict(bb.meta())
    meta.update({"source": samples.description, "dim": int(feats.shape[1]), "n_skipped": 0})
    if resume_dir is not None:
        meta["resume"] = store.report(math.ceil(n / shard_size))
    labels = samples.labels[positions] if samples.labels is not None else None
    return FeatureSet(features=feats, ids=[samples.ids[p] for p in positions], labels=labels,
                      classes=samples.classes if labels is not None else None, meta=meta)
