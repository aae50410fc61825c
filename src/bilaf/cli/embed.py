"""``bilaf embed``: images or texts in, a feature file (features + ids + labels) out."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, List

from . import UserError
from ..errors import ValidationError

__all__ = ["add_parser", "run", "run_ray"]

OUT_SUFFIXES = (".npz", ".parquet", ".pq", ".npy")

EXAMPLES = """\
examples:
  bilaf embed cifar10-jpg.tar.gz --split train --out train_feats.npz
  bilaf embed photos/ --out feats.parquet                      (photos/<class>/<file> or photos/<file>)
  bilaf embed images.npy --out feats.npy                        (uint8 (N,H,W) or (N,H,W,3))
  bilaf embed questions.txt --out q.npz                         (one text per line, '<label> <text>' optional)
  bilaf embed photos/ --backbone 'torchscript:/models/dino_vits16.pt?pool=cls' --out dino.npz
  bilaf embed photos/ --backbone hf:facebook/dinov2-small --out dino.npz   (or hf:/path/to/saved_model)
  bilaf embed paths.txt --kind image --out feats.npz            (one image path a line, '<path><TAB><label>' optional)
  bilaf embed s3://bucket/photos/ --out feats.npz               (fsspec URL of a folder or list; needs s3fs)
  bilaf embed --list-backbones

Layouts: root/<split>/<class>/<file>, root/<class>/<file> (label = class folder) or root/<file>
(unlabeled), as a folder, a .tar/.tar.gz/.tgz/.tar.bz2/.tar.xz or a .zip (read without extracting).
Ids are the paths inside the folder or archive; rows are sorted by split, class, file.
A killed run continues where it stopped when started again with the same arguments: finished
shards are kept in OUT.partial/ (removed on success) or in --resume-dir.
Output: .npz / .parquet (features, id, label) or .npy (+ OUT_ids.txt, OUT_labels.npy, OUT_classes.txt,
OUT_meta.json), written only when everything succeeded.
"""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    try:
        from .common import one_line_errors

        one_line_errors(parser, "embed")
    except ImportError:  # pragma: no cover - select verb not installed
        pass


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf embed``."""
    p = subparsers.add_parser(
        "embed", help="turn images or texts into a feature file",
        description="Embed images (folder tree, tar/zip archive, .npy/.npz array) or texts (one per line) with "
                    "a pretrained backbone, offline, batched and resumable; write features + ids (file paths) + "
                    "labels (from class folders or a label column) to .npz, .parquet or .npy.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _one_line_errors(p)
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="a folder, a .tar[.gz|.bz2|.xz]/.tgz/.zip archive, a .npy/.npz image array, a text file "
                        "with one sample per line, with --kind image a .txt/.csv file listing image paths "
                        "(relative to the list's folder), or an fsspec URL of a folder or list")
    p.add_argument("-o", "--out", metavar="FILE",
                   help="output feature file, by suffix: .npz, .parquet or .npy (required)")
    p.add_argument("--kind", choices=("auto", "image", "text"), default="auto",
                   help="what SOURCE holds (default: auto: folders, archives and arrays are images, other files "
                        "are texts)")
    p.add_argument("--split", default=None, metavar="NAME",
                   help="read only SOURCE/<NAME>/... of a folder or archive, e.g. train (default: every file; "
                        "in a split layout the ids keep the split folder)")
    p.add_argument("--backbone", default=None, metavar="SPEC",
                   help="feature extractor (default: efficientnet_lite0 for images, minilm for texts); also "
                        "torchscript:/path/model.pt, torch_export:/path/model.pt2, onnx:/path/model.onnx, "
                        "state_dict:/path/w.pth|.safetensors?arch=pkg.mod:fn, hf:<hub id or folder>[?pool=..], "
                        "sentence-transformers:<id or folder>, timm:<name>, open_clip:<name>, with image "
                        "options ?size=224&mean=..&std=..&pool=auto|mean|cls (user models default to 224 px "
                        "bicubic and ImageNet mean/std); see --list-backbones and docs/embed.md")
    p.add_argument("--engine", choices=("auto", "onnx", "torch", "ray"), default="auto",
                   help="runtime for the built-in image backbone (default: auto: ONNX Runtime on CPU when "
                        "installed, which is several times faster, else torch); ray: images embedded by "
                        "backbone actors on a Ray cluster, --out a folder of Parquet shards or a file "
                        "(pip install 'bilaf[ray]'; see docs/ray.md)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster, e.g. auto or ray://head:10001 (default: RAY_ADDRESS, "
                        "else a local Ray started for the run)")
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="with --engine ray: backbone actors (default: one per GPU, else one per CPU)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="samples per forward pass (default: 64)")
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto, cpu, cuda or cuda:N (default: auto: CUDA when available)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="images: threads decoding and resizing (default: 1 when the model runs on the CPU, "
                        "up to 8 on a GPU)")
    p.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                   help="an unreadable or non-image file: skip it (one warning with the count; ids listed in the "
                        "output's meta) or stop with an error (default: skip)")
    p.add_argument("--label-column", choices=("auto", "first", "none"), default="auto",
                   help="texts: whether each line starts with a label '<label> <text>' (default: auto: when "
                        "every line starts with an integer)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume-dir", default=None, metavar="DIR",
                   help="keep finished shards in DIR so that a killed run continues (default: OUT.partial "
                        "beside the output, removed when the run succeeds); shards of another run found there "
                        "(other input or --shard-size) are deleted and the run starts over")
    r.add_argument("--no-resume", action="store_true",
                   help="keep no shards on disk (a killed run starts over)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="samples per resumable shard (default: about 2048)")
    verb = p.add_mutually_exclusive_group()
    verb.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    verb.add_argument("--progress", action="store_true",
                      help="show the progress bar even when stderr is not a terminal (default: only on a terminal)")
    p.add_argument("--list-backbones", action="store_true", help="list the registered backbones and exit")
    p.set_defaults(func=run)
    return p


def _check_output(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UserError(f"--out {out}: unsupported suffix {path.suffix or '(none)'!r}; use .npz, .parquet or .npy")
    if path.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("Parquet output needs pyarrow: pip install 'bilaf[io]' (or use .npz)") from None
    return path


def run(args: argparse.Namespace) -> int:
    """Run ``bilaf embed``."""
    from ..features import SkippedInputWarning, embed_images, embed_texts, list_backbones
    from ..features.inputs import guess_kind

    if args.list_backbones:
        for name, (kind, desc) in sorted(list_backbones().items()):
            print(f"{name:22s} {kind:6s} {desc}")
        return 0
    if args.engine == "ray":
        return run_ray(args)
    if not args.source:
        raise UserError("missing SOURCE (a folder, archive, image array or text file)")
    if not args.out:
        raise UserError("missing --out FILE (.npz, .parquet or .npy)")
    out = _check_output(args.out)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.shard_size is not None and args.shard_size < 1:
        raise UserError(f"--shard-size must be >= 1, got {args.shard_size}")
    from ..features.sources import local_or_url

    if local_or_url(args.source):  # an fsspec URL: a folder or a list of image paths
        source: Any = args.source
        kind = args.kind if args.kind != "auto" else "image"
        if kind == "text":
            raise UserError("texts are read from local files; --kind text does not take a URL")
    else:
        source = Path(args.source)
        if not source.exists():
            raise FileNotFoundError(f"input not found: {source}")
        kind = args.kind if args.kind != "auto" else guess_kind(source)
    if kind == "text" and args.split:
        raise UserError("--split applies to image folders and archives, not to a text file")
    default_resume = args.resume_dir is None and not args.no_resume
    resume_dir = None if args.no_resume else Path(args.resume_dir or f"{out}.partial")
    verbose = not args.quiet and (args.progress or sys.stderr.isatty())

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedInputWarning)
            warnings.simplefilter("always", RuntimeWarning)
            if kind == "image":
                fs = embed_images(source, backbone=args.backbone or "efficientnet_lite0",
                                  batch_size=args.batch_size, device=args.device, split=args.split,
                                  on_error=args.on_error, resume_dir=resume_dir, verbose=verbose, engine=args.engine,
                                  shard_size=args.shard_size, num_workers=args.workers, on_mismatch="restart")
            else:
                fs = embed_texts(source, backbone=args.backbone or "minilm", batch_size=args.batch_size,
                                 device=args.device, resume_dir=resume_dir, verbose=verbose,
                                 label_column=args.label_column, shard_size=args.shard_size, on_mismatch="restart")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say what was kept
        saved = len(list(resume_dir.glob("shard_*.npz"))) if resume_dir is not None and resume_dir.is_dir() else 0
        if saved:
            print(f"bilaf embed: {saved} finished shard(s) kept in {resume_dir}: the run can be resumed (run the "
                  "same command again)", file=sys.stderr)
        raise
    resumed = fs.meta.pop("resume", None)
    if resumed and not args.quiet:
        if resumed["restarted"]:
            print(f"bilaf embed: {resume_dir} held shards of another run ({resumed['restarted']}); "
                  "they were deleted and the run started over", file=sys.stderr)
        if resumed["loaded"]:
            print(f"bilaf embed: resumed {resumed['loaded']} of {resumed['shards']} shards from {resume_dir}",
                  file=sys.stderr)
        if resumed["redone"]:
            print(f"bilaf embed: {resumed['redone']} shard(s) in {resume_dir} computed again: their inputs changed "
                  "since they were written", file=sys.stderr)
    notes: List[str] = []
    for w in caught:
        if issubclass(w.category, (SkippedInputWarning, RuntimeWarning)):
            notes.append(str(w.message).splitlines()[0])
    fs.save(out)
    if default_resume and resume_dir is not None and resume_dir.is_dir():
        shutil.rmtree(resume_dir, ignore_errors=True)
    for note in notes:
        print(f"bilaf embed: warning: {note}", file=sys.stderr)
    if not args.quiet:
        meta = fs.meta
        labels = f", {len(fs.classes or [])} classes" if fs.labels is not None else ", no labels"
        print(f"wrote {out}: {len(fs)} x {fs.features.shape[1]} ({meta.get('backbone')}, {meta.get('engine')}, "
              f"{meta.get('device')}{labels}) in {time.perf_counter() - t0:.1f} s"
              + (f"; skipped {meta.get('n_skipped')}" if meta.get("n_skipped") else ""))
    return 0


def run_ray(args: argparse.Namespace) -> int:
    """``bilaf embed --engine ray``: what the CLI verb runs for it (see docs/ray.md).

    Uses ``args.source``, ``args.out``, ``args.split``, ``args.backbone``,
    ``args.batch_size``, ``args.device``, ``args.on_error``, ``args.shard_size``,
    ``args.quiet``, ``args.progress`` and, when the parser has them,
    ``args.ray_address`` and ``args.actors``. ``--out`` is a folder of Parquet
    shards (a name without a suffix), or a ``.npz`` / ``.parquet`` / ``.npy``
    file into which the shards are gathered at the end.
    """
    from ..engines.ray_embed import embed_with_ray, read_feature_shards
    from ..engines.runtime import import_ray
    from ..features.embed import SkippedInputWarning
    from ..features.inputs import guess_kind

    if not args.source:
        raise ValidationError("missing SOURCE (a folder, archive or image array)")
    if not args.out:
        raise ValidationError("missing --out (a folder for Parquet shards, or a .npz/.parquet/.npy file)")
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    kind = getattr(args, "kind", "auto")
    kind = kind if kind not in (None, "auto") else guess_kind(source)
    if kind != "image":
        raise ValidationError("--engine ray embeds images; embed texts without --engine ray")
    if args.batch_size < 1:
        raise ValidationError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.shard_size is not None and args.shard_size < 1:
        raise ValidationError(f"--shard-size must be >= 1, got {args.shard_size}")
    device = {"auto": "auto", "cpu": "cpu"}.get(args.device, "cuda" if str(args.device).startswith("cuda") else None)
    if device is None:
        raise ValidationError(f"--device must be auto, cpu or cuda with --engine ray, got {args.device!r}")
    out = Path(args.out)
    suffix = out.suffix.lower()
    as_file = suffix in (".npz", ".parquet", ".pq", ".npy")
    if not as_file and suffix:
        raise ValidationError(f"--out {out}: give a folder name (Parquet shards) or a .npz/.parquet/.npy file")
    if as_file and out.is_dir():
        raise ValidationError(f"--out {out} is a folder; give a file name")
    if not as_file and out.exists():
        raise ValidationError(f"--out {out} exists; remove it or choose another folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValidationError(f"output folder does not exist: {parent}")
    verbose = not args.quiet and (args.progress or sys.stderr.isatty())
    try:
        import_ray()
    except ImportError as exc:
        raise ValidationError(str(exc)) from None
    shards = out if not as_file else out.with_name(f".{out.name}.ray-shards-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    notes: List[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedInputWarning)
            embed_with_ray(source, args.backbone or "efficientnet_lite0", shards, split=args.split,
                           batch_size=args.batch_size, shard_size=args.shard_size, device=device,
                           on_error=args.on_error, num_actors=getattr(args, "actors", None),
                           address=getattr(args, "ray_address", None), verbose=verbose)
        notes = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, SkippedInputWarning)]
        fs = read_feature_shards(shards)
        if as_file:
            fs.save(out)
    finally:
        if as_file:
            shutil.rmtree(shards, ignore_errors=True)
    for note in notes:
        print(f"bilaf embed: warning: {note}", file=sys.stderr)
    if not args.quiet:
        labels = f", {len(fs.classes or [])} classes" if fs.labels is not None else ", no labels"
        print(f"wrote {out}: {len(fs)} x {fs.features.shape[1]} ({fs.meta.get('backbone')}, Ray, "
              f"{fs.meta.get('num_actors')} {fs.meta.get('device')} actor(s){labels}) in "
              f"{time.perf_counter() - t0:.1f} s" + (f"; skipped {fs.meta.get('n_skipped')}"
                                                     if fs.meta.get("n_skipped") else ""))
    return 0
