"""``bilaf evaluate``: a selection + labels in, test accuracy out.

Trains on the selected pool rows (their labels from the feature file or
``--labels``) and scores on a labeled test feature file, with a linear probe,
weighted kNN, or (with the images and a backbone) full finetuning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import UserError
from ..errors import ValidationError
from .labels import read_labels

__all__ = ["add_parser", "run", "read_labels"]

EXAMPLES = """\
examples:
  bilaf evaluate train_features.npy selection.json --test test_features.npy
  bilaf evaluate pool.npz picks.csv --labels annotations.csv --test test.npz --protocol linear,knn --out acc.json
  bilaf evaluate train.npz picks.csv --test test.npz --protocol finetune \\
      --images cifar10-jpg.tar.gz --images-split train --test-images cifar10-jpg.tar.gz --test-images-split test \\
      --backbone efficientnet_lite0 --steps 200 --device cuda

Labels of the selected samples come from the feature file (its labels, or the .npy sidecar <name>_labels.npy),
or from --labels: a .npy / .txt of class ids (one per pool row, or one per selected sample in selection order),
or a .csv with a 'label' column and an 'index' or 'id' (file path) column - what annotators send back.
Test labels come from the test feature file or --test-labels. Protocols: linear (logistic regression on
frozen features), knn (k=20 weighted cosine vote, the DINO protocol), finetune (every layer of the backbone
plus a new linear head, on the selected images; the paper's recipe, --steps sets the length).
"""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    try:
        from .common import one_line_errors

        one_line_errors(parser, "evaluate")
    except ImportError:  # pragma: no cover
        pass


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf evaluate``."""
    p = subparsers.add_parser(
        "evaluate", help="accuracy of a model trained on the selected, labeled samples",
        description="Train on the selected samples (with their labels) and report test accuracy: linear probe, "
                    "kNN on frozen features, or full finetuning of an image backbone.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _one_line_errors(p)
    p.add_argument("features", metavar="FEATURES", help="pool feature file (.npy, .npz, .parquet) the selection indexes")
    p.add_argument("selection", metavar="SELECTION",
                   help="selection file from bilaf select (.json list, .csv/.parquet, .txt, .npy)")
    p.add_argument("--test", required=True, metavar="FILE", help="labeled test feature file")
    p.add_argument("--protocol", default="linear,knn", metavar="P[,P]",
                   help="linear, knn, finetune, or a comma-separated list (default: linear,knn)")
    p.add_argument("--labels", metavar="FILE", help="labels of the pool or of the selected samples (see below)")
    p.add_argument("--test-labels", metavar="FILE", help="labels of the test rows (.npy or .txt), if the test "
                                                         "feature file has none")
    p.add_argument("-o", "--out", metavar="FILE.json", help="also write the result as JSON (atomically)")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="random seed of the protocols (default 0)")
    p.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu, cuda or auto (default cpu)")
    g = p.add_argument_group("linear probe")
    g.add_argument("--C", type=float, metavar="X", default=None, dest="C", help="inverse regularisation strength (default 10)")
    g = p.add_argument_group("kNN")
    g.add_argument("--k", type=int, metavar="N", default=None, help="neighbours (default 20)")
    g.add_argument("--temperature", type=float, metavar="X", default=None, help="vote temperature (default 0.07)")
    g = p.add_argument_group("finetune")
    g.add_argument("--images", metavar="SOURCE", help="the pool's images: the folder or archive FEATURES was "
                                                      "embedded from (matched by id)")
    g.add_argument("--images-split", metavar="SPLIT", help="sub-folder of --images (e.g. train)")
    g.add_argument("--test-images", metavar="SOURCE", help="the test images (folder or archive)")
    g.add_argument("--test-images-split", metavar="SPLIT", help="sub-folder of --test-images (e.g. test)")
    g.add_argument("--backbone", default="efficientnet_lite0", metavar="NAME",
                   help="image backbone to finetune (a registered name or spec; default efficientnet_lite0)")
    g.add_argument("--steps", type=int, metavar="N", default=None, help="optimiser steps (default 1000, the paper's)")
    g.add_argument("--batch-size", type=int, metavar="N", default=None, help="batch size (default 64)")
    g.add_argument("--lr", type=float, metavar="X", default=None, help="learning rate (default 3e-3)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)
    return p


# -- inputs ----------------------------------------------------------------------------------------
def _load(path: str):
    try:
        from .common import load_feature_file
    except ImportError:  # pragma: no cover
        from ..features import FeatureSet

        return FeatureSet.load(path)
    return load_feature_file(path)


def _protocols(text: str) -> List[str]:
    from ..evaluation import PROTOCOLS

    out = [t.strip() for t in str(text).split(",") if t.strip()]
    if not out:
        raise UserError("--protocol is empty")
    for t in out:
        if t not in PROTOCOLS:
            raise UserError(f"unknown protocol {t!r}; choose from {', '.join(PROTOCOLS)}")
    if len(set(out)) != len(out):
        raise UserError("a protocol is listed twice")
    return out


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr)


# -- finetuning inputs -------------------------------------------------------------------------------
def load_images_by_id(source: str, split: Optional[str], wanted: Sequence[str], what: str) -> np.ndarray:
    """Decode the images named ``wanted`` (ids of a feature file) from a folder or archive, as uint8 (N, H, W, 3).

    Images of different sizes are resized (bicubic) to the size of the first.
    """
    from ..features.inputs import open_image_source

    src = open_image_source(source, split=split)
    try:
        ids = list(src.ids)
        index = {s: i for i, s in enumerate(ids)}
        if not all(w in index for w in wanted):  # feature ids may carry a split prefix the source lacks, or not
            tail = {s.split("/", 1)[-1]: i for i, s in enumerate(ids)}
            index = {**tail, **index}
        missing = [w for w in wanted if w not in index and w.split("/", 1)[-1] not in index]
        if missing:
            raise ValidationError(f"{what}: {len(missing)} selected id(s) not found in {source} (first: {missing[0]!r})")
        pos = {index.get(w, index.get(w.split("/", 1)[-1])): k for k, w in enumerate(wanted)}
        from PIL import Image

        from ..features.backbones import ImagePreprocess

        to_rgb = ImagePreprocess().to_rgb
        out: List[Optional[np.ndarray]] = [None] * len(wanted)
        size = None
        for p_, data in src.iter_items(0, len(ids)):
            if p_ not in pos:
                continue
            if isinstance(data, Exception):
                raise ValidationError(f"{what}: cannot read {ids[p_]}: {data}")
            im = to_rgb(data)
            if size is None:
                size = im.size
            elif im.size != size:
                im = im.resize(size, Image.Resampling.BICUBIC)
            out[pos[p_]] = np.asarray(im, dtype=np.uint8)
    finally:
        src.close()
    return np.stack(out)  # type: ignore[arg-type]


def _finetune_backbone(spec: str, device: str):
    """A trainable torch module (images -> features) and a batch transform (resize + normalise) from the registry."""
    import torch

    from ..features.backbones import load_backbone
    from ..features.backbones.base import _pool

    bb = load_backbone(spec, kind="image", device="cpu", engine="torch")
    module = getattr(bb, "module", None)
    if not isinstance(module, torch.nn.Module):
        raise UserError(f"backbone {spec!r} is not a trainable torch module; finetuning needs one "
                        "(e.g. efficientnet_lite0, torchscript:model.pt)")
    pre = bb.preprocess
    pool = getattr(bb, "pool", "auto")

    class Features(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.m(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return _pool(out, pool)

    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    size = int(pre.size)

    def transform(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != size or x.shape[-2] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        return (x - mean.to(x.device)) / std.to(x.device)

    return Features(module.train()), transform


def match_class_names(args: argparse.Namespace, y: np.ndarray, classes: Optional[List[str]],
                      file_classes: Optional[List[str]], ty: np.ndarray,
                      test_classes: Optional[List[str]]) -> Tuple[np.ndarray, np.ndarray]:
    """Pool and test labels on one numbering: by class name when both sides have names, else as integers."""
    from ..features.classes import align_labels

    if classes and not file_classes and not test_classes:
        raise UserError(f"--labels gives class names but {args.test} has bare class ids and no class names: "
                        "pass --test-labels FILE with class names")
    try:
        al = align_labels(y, classes, ty, test_classes, train_what=args.features, test_what=args.test)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if al.test_only:
        _say(args, f"bilaf evaluate: note: {len(al.test_only)} test class(es) absent from the pool's classes "
                   f"({', '.join(al.test_only[:5])}); their test samples count as errors")
    return al.train_labels, al.test_labels


# -- the verb ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf evaluate``. Returns the exit code."""
    from ..evaluation import evaluate_features
    from ..validation import check_indices

    protocols = _protocols(args.protocol)
    if args.out and not str(args.out).lower().endswith(".json"):
        raise UserError(f"--out must be a .json file, got {args.out}")
    if args.out and not Path(args.out).parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {Path(args.out).parent}")
    if "finetune" in protocols and not (args.images and args.test_images):
        raise UserError("--protocol finetune needs the images: --images SOURCE and --test-images SOURCE")
    pool = _load(args.features)
    test = _load(args.test)
    n = len(pool)
    from ..writers import read_selection

    try:
        sel = read_selection(args.selection, ids=pool.ids)["indices"]
    except ValueError as exc:
        raise ValidationError(f"selection file: {exc}") from None
    idx = check_indices(sel, n, name=f"selection {Path(args.selection).name}")
    if args.labels:
        y, classes = read_labels(args.labels, n, pool.ids, idx, classes=pool.classes)
    elif pool.labels is not None:
        y, classes = pool.labels, pool.classes
    else:
        raise UserError(f"labels missing: {args.features} has no labels; pass --labels FILE (class ids or names "
                        "per row, or a .csv with index/id and label)")
    unlabeled = int((y[idx] < 0).sum())
    if unlabeled:
        raise UserError(f"labels missing for {unlabeled} of the {len(idx)} selected samples; label them "
                        "(--labels FILE) before evaluating")
    if args.test_labels:
        ty, test_classes = read_labels(args.test_labels, len(test), test.ids, None, what="test labels",
                                       classes=test.classes)
    elif test.labels is not None:
        ty, test_classes = test.labels, test.classes
    else:
        raise UserError(f"labels missing: {args.test} has no labels; pass --test-labels FILE")
    if (ty < 0).any():
        raise UserError(f"labels missing for {int((ty < 0).sum())} of the {len(ty)} test samples")
    if test.features.shape[1] != pool.features.shape[1]:
        raise UserError(f"feature widths differ: {args.features} has {pool.features.shape[1]} columns, "
                        f"{args.test} has {test.features.shape[1]}")
    y, ty = match_class_names(args, y, classes, pool.classes, ty, test_classes)
    n_classes = int(max(y[idx].max(), ty.max())) + 1

    results: Dict[str, float] = {}
    timings: Dict[str, float] = {}
    params: Dict[str, Dict[str, Any]] = {}
    for proto in protocols:
        t0 = time.perf_counter()
        if proto in ("linear", "knn"):
            kw: Dict[str, Any] = {"device": args.device}
            if proto == "linear" and args.C is not None:
                kw["C"] = args.C
            if proto == "knn":
                if args.k is not None:
                    kw["k"] = args.k
                if args.temperature is not None:
                    kw["temperature"] = args.temperature
            params[proto] = kw
            _say(args, f"bilaf evaluate: {proto} on {len(idx)} selected samples, {len(test)} test samples")
            results[proto] = evaluate_features(proto, pool.features, y, idx, test.features, ty,
                                               random_state=args.seed, params=kw)
        else:
            from ..evaluation import finetune

            _say(args, f"bilaf evaluate: reading {len(idx)} selected images and {len(test)} test images")
            tr_img = load_images_by_id(args.images, args.images_split, [pool.ids[i] for i in idx], "--images")
            te_img = load_images_by_id(args.test_images, args.test_images_split, list(test.ids), "--test-images")
            model, transform = _finetune_backbone(args.backbone, args.device)
            kw = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr))
                  if v is not None}
            params[proto] = {"backbone": args.backbone, **kw}
            _say(args, f"bilaf evaluate: finetuning {args.backbone} on {len(idx)} images")
            results[proto] = finetune(model, tr_img, y[idx], te_img, ty, n_classes=n_classes, transform=transform,
                                      device=args.device, random_state=args.seed, verbose=not args.quiet, **kw)
        timings[proto] = time.perf_counter() - t0

    width = max(len(p) for p in protocols)
    print(f"{'protocol':<{width}}  accuracy")
    for proto in protocols:
        print(f"{proto:<{width}}  {100 * results[proto]:.2f}%")
    if args.out:
        from ..result import atomic_write

        doc = {"accuracy": results, "n_selected": int(len(idx)), "n_test": int(len(test)),
               "features": str(args.features), "selection": str(args.selection), "test": str(args.test),
               "seed": args.seed, "params": params, "seconds": timings}
        with atomic_write(args.out) as fh:
            json.dump(doc, fh, indent=2)
    return 0
