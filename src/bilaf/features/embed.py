"""The embed loop: samples -> features, batched, with a progress bar, resumable, CUDA when present.

Work is cut into *shards* of consecutive samples (in the order the source reads
them). With ``resume_dir`` each finished shard is written there (atomically)
together with a manifest naming the input and the backbone; a later call with
the same input, backbone and folder loads the finished shards and computes only
the rest, so a killed run continues where it stopped. A folder holding shards
of another input or backbone is refused rather than mixed in.

Images are decoded and resized in a background thread while the backbone runs
on the previous batch.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import ValidationError, ValidationTypeError, escape
from ..validation import check_positive_int
from .backbones import DEFAULT_BACKBONES, Backbone, load_backbone
from .backbones.base import _usable_cpus
from .inputs import open_image_source, read_texts
from .readers import ImageSource
from .store import FeatureSet
from ..threads import thread_limited

__all__ = ["embed_images", "embed_texts", "SkippedInputWarning"]

MANIFEST = "manifest.json"
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


class _ShardStore:
    """Finished shards in a work folder, guarded by a manifest naming the run.

    Each shard also records a stamp of its inputs (file sizes and times, archive
    member sizes, pixel digests): a shard whose inputs changed since it was
    written is computed again. A folder holding shards of another run (another
    input, backbone or shard size) is refused (``on_mismatch="error"``) or
    emptied of its shards first (``"restart"``).
    """

    def __init__(self, folder: Optional[Union[str, Path]], manifest: Dict[str, Any],
                 on_mismatch: str = "error") -> None:
        if on_mismatch not in ("error", "restart"):
            raise ValidationError(f"on_mismatch must be 'error' or 'restart', got {on_mismatch!r}")
        self.folder = Path(folder) if folder is not None else None
        self.manifest = manifest
        self.restarted: Optional[str] = None  # why the shards found were dropped
        self.loaded = 0  # shards taken from the folder
        self.redone = 0  # shards found but computed again because their inputs changed
        if self.folder is None:
            return
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"resume folder is a file: {self.folder}")
        path = self.folder / MANIFEST
        self._text = json.dumps(manifest, sort_keys=True, indent=1)
        self._written = path.exists()
        what = None
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != json.loads(self._text):
                what = "unreadable manifest"
                if isinstance(old, dict):
                    diff = [k for k in sorted(set(old) | set(manifest)) if old.get(k) != manifest.get(k)]
                    what = "different " + ", ".join(diff)
        elif self.folder.is_dir() and any(self.folder.glob("shard_*.npz")):
            what = f"no {MANIFEST}"
        if what is None:
            return
        if on_mismatch == "error":
            raise ValidationError(f"resume folder {self.folder} holds shards of another run ({what}); "
                             f"remove it or choose another folder")
        for f in list(self.folder.glob("shard_*.npz")) + [path]:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        self._written = False
        self.restarted = what

    def _write_manifest(self) -> None:
        """Create the folder and its manifest on the first finished shard (a run failing early leaves nothing)."""
        if self._written or self.folder is None:
            return
        from ..result import atomic_write

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.folder / MANIFEST) as fh:
            fh.write(self._text)
        self._written = True

    def _path(self, k: int) -> Path:
        assert self.folder is not None
        return self.folder / f"shard_{k:06d}.npz"

    def has(self, k: int) -> bool:
        return self.folder is not None and self._path(k).is_file()

    def load(self, k: int, m: int, stamp: str) -> Optional[Tuple[np.ndarray, np.ndarray, List[Tuple[int, str]]]]:
        if self.folder is None or not self._path(k).is_file():
            return None
        try:
            with np.load(self._path(k), allow_pickle=False) as z:
                feats, ok = z["features"], z["ok"].astype(bool)
                errors = [(int(p), str(r)) for p, r in zip(z["error_pos"], z["error_reason"])]
                old_stamp = str(z["stamp"]) if "stamp" in z.files else None
        except Exception:  # a damaged shard is simply computed again
            return None
        if ok.shape != (m,) or feats.shape[0] != m:
            return None
        if old_stamp != stamp:  # an input was replaced under the same name
            self.redone += 1
            return None
        self.loaded += 1
        return feats, ok, errors

    def save(self, k: int, feats: np.ndarray, ok: np.ndarray, errors: List[Tuple[int, str]], stamp: str) -> None:
        if self.folder is None:
            return
        from ..result import atomic_write

        self._write_manifest()
        with atomic_write(self._path(k), "wb") as fh:
            np.savez(fh, features=feats, ok=ok,
                     error_pos=np.asarray([p for p, _ in errors], dtype=np.int64),
                     error_reason=np.asarray([r for _, r in errors], dtype=str), stamp=np.asarray(stamp))

    def report(self, n_shards: int) -> Dict[str, Any]:
        """What the resume folder gave this run (for ``FeatureSet.meta["resume"]``)."""
        return {"folder": str(self.folder), "shards": n_shards, "loaded": self.loaded, "redone": self.redone,
                "restarted": self.restarted}


def _run_shards(n: int, shard_size: int, compute: Callable[[int, int, Any], Tuple[np.ndarray, np.ndarray,
                List[Tuple[int, str]]]], store: _ShardStore, on_error: str, describe: Callable[[int], str],
                verbose: bool, desc: str, unit: str,
                stamp: Callable[[int, int], str] = lambda start, stop: "",
                ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, str]]]:
    """Compute (or load) every shard; return (features of ok rows, their positions, errors).

    ``stamp(start, stop)`` digests the inputs of a shard; it is taken before the
    shard is read, so an input changed during the run is redone on the next.
    """
    from tqdm.auto import tqdm

    n_shards = math.ceil(n / shard_size)
    results: List[Any] = [None] * n_shards
    stamps: List[str] = [""] * n_shards
    done = 0
    for k in range(n_shards):
        start, stop = k * shard_size, min(n, (k + 1) * shard_size)
        if store.has(k):
            stamps[k] = stamp(start, stop)
            results[k] = store.load(k, stop - start, stamps[k])
        if results[k] is not None:
            done += stop - start
    bar = tqdm(total=n, initial=done, desc=desc, unit=unit, disable=not verbose, dynamic_ncols=True, leave=False,
               smoothing=0.1)
    try:
        for k in range(n_shards):
            if results[k] is not None:
                _raise_on_error(results[k][2], on_error, describe)
                continue
            start, stop = k * shard_size, min(n, (k + 1) * shard_size)
            if store.folder is not None:
                stamps[k] = stamp(start, stop)
            feats, ok, errors = compute(start, stop, bar)
            _raise_on_error(errors, on_error, describe)
            store.save(k, feats, ok, errors, stamps[k])
            results[k] = (feats, ok, errors)
    finally:
        bar.close()
    parts, positions, errors_all = [], [], []
    for k, (feats, ok, errors) in enumerate(results):
        if ok.any():
            parts.append(np.asarray(feats[ok], dtype=np.float32))
            positions.append(k * shard_size + np.flatnonzero(ok))
        errors_all.extend(errors)
    if not parts:
        return np.empty((0, 0), np.float32), np.empty(0, np.int64), errors_all
    return np.concatenate(parts), np.concatenate(positions).astype(np.int64), errors_all


def _raise_on_error(errors: List[Tuple[int, str]], on_error: str, describe: Callable[[int], str]) -> None:
    if errors and on_error == "stop":
        pos, reason = errors[0]
        more = f" ({len(errors)} such in this shard)" if len(errors) > 1 else ""
        raise ValidationError(escape(f"cannot read {describe(pos)}: {reason}{more}; use ")
                              + "{setting} to skip bad files", setting=("on_error", "skip"))


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
        store = _ShardStore(resume_dir, manifest, on_mismatch)
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
            feats, positions, errors = _run_shards(n, shard_size, compute, store, on_error,
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
    store = _ShardStore(resume_dir, manifest, on_mismatch)
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

    feats, positions, _ = _run_shards(n, shard_size, compute, store, "skip", lambda p: samples.ids[p], verbose,
                                      "embed texts", "text")
    meta = dict(bb.meta())
    meta.update({"source": samples.description, "dim": int(feats.shape[1]), "n_skipped": 0})
    if resume_dir is not None:
        meta["resume"] = store.report(math.ceil(n / shard_size))
    labels = samples.labels[positions] if samples.labels is not None else None
    return FeatureSet(features=feats, ids=[samples.ids[p] for p in positions], labels=labels,
                      classes=samples.classes if labels is not None else None, meta=meta)
