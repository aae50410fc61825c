"""``bilaf plot``: a 2-D map of a selection (cores, boundary picks, removed noise)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ValidationError
from . import UserError
from .common import load_feature_file, one_line_errors

__all__ = ["add_parser", "run"]

EXAMPLES = """\
examples:
  bilaf plot train_features.npy selection.csv --out map.png
  bilaf plot feats.npy picks.json --out map.png --projection tsne --max-points 3000
  bilaf plot feats.npy selection.csv --out map.png --color-by label      (true labels from the feature file)

The pseudo-classes, cores and removed noise come from the selection's manifest (<selection file
name>.manifest.json beside it, written by bilaf select; used only when its picks are the selection's) and
from the role column of a .csv/.parquet selection. Without a manifest the picks are drawn as circles on a
map coloured by true label when known.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf plot``."""
    p = subparsers.add_parser(
        "plot", help="draw a selection on a 2-D map of the pool",
        description="Draw a selection on a 2-D map of the pool (as in the BiLAF paper's Fig. 3 and 4): pool "
                    "samples faint and coloured by pseudo-class (or true label), cores as stars, boundary picks "
                    "as circles, removed noise as grey crosses.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(p, "plot")
    p.add_argument("features", metavar="FEATURES", help="the feature file the selection was made from")
    p.add_argument("selection", metavar="SELECTION",
                   help="a selection file written by bilaf select (.csv, .parquet, .json, .labelstudio.json, .txt) "
                        "or a plain JSON list of indices")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="image to write: .png, .svg or .pdf")
    p.add_argument("--projection", choices=("pca", "tsne", "umap"), default="pca",
                   help="2-D projection: pca (fast), tsne (scikit-learn, on a subsample), umap (needs umap-learn) "
                        "(default: pca)")
    p.add_argument("--manifest", metavar="FILE",
                   help="the selection's manifest (default: <selection file name>.manifest.json beside it, if "
                        "present; a manifest that records other picks is refused)")
    p.add_argument("--labels", metavar="FILE",
                   help="true labels of the pool (.npy or .txt, one int per row), to colour by (default: none)")
    p.add_argument("--color-by", choices=("auto", "pseudo", "label", "none"), default="auto",
                   help="colour pool samples by pseudo-class, true label, or not at all; auto: true labels when "
                        "--labels is given, else pseudo-classes when the manifest has them, else the feature "
                        "file's labels (default: auto)")
    p.add_argument("--max-points", type=int, default=5000, metavar="N",
                   help="most pool samples drawn besides the picks, a random subsample (default: 5000)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the subsample and projection "
                                                                      "(default: 0)")
    p.add_argument("--title", default=None, metavar="TEXT", help="figure title (default: method, budget and pool size)")
    p.add_argument("--dpi", type=int, default=150, metavar="N", help="resolution of a PNG (default: 150)")
    p.add_argument("--ignore-hash", action="store_true",
                   help="draw even if the features' hash differs from the manifest's")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def _read_labels(path: str, n: int) -> np.ndarray:
    f = Path(path)
    if not f.exists():
        raise FileNotFoundError(f"labels file not found: {f}")
    try:
        if f.suffix.lower() == ".npy":
            y = np.load(f, allow_pickle=False)
        else:
            y = np.asarray([int(s) for s in f.read_text(encoding="utf-8").split()])
    except ValueError as exc:
        raise ValidationError(f"cannot read labels file {f}: {exc}") from None
    y = np.asarray(y).ravel()
    if y.shape[0] != n:
        raise ValidationError(f"labels file {f} holds {y.shape[0]} labels for a pool of {n}")
    if y.dtype.kind not in "iu":
        raise ValidationError(f"labels file {f} must hold integers, got {y.dtype}")
    return y.astype(np.int64)


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf plot`` (see ``bilaf plot --help``). Returns the exit code."""
    from ..manifest import decode_labels, features_sha256, find_manifest, manifest_matches, read_manifest
    from ..plot import save_selection_plot
    from ..validation import check_features, check_indices
    from ..writers import read_selection

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"cannot tell the image format of {args.out!r}; use .png, .svg or .pdf")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    if args.max_points < 0:
        raise UserError(f"--max-points must be >= 0, got {args.max_points}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'bilaf[plot]'") from None

    fs = load_feature_file(args.features)
    X = check_features(fs.features, name=f"features in {Path(args.features).name}")
    n = int(X.shape[0])
    has_ids = fs.ids != [str(i) for i in range(n)]
    sel = read_selection(args.selection, ids=fs.ids if has_ids else None)
    idx = check_indices(sel["indices"], n, name=f"selection {Path(args.selection).name}")

    man_path: Optional[Path] = Path(args.manifest) if args.manifest else find_manifest(args.selection)
    man = read_manifest(man_path) if man_path is not None else None
    if man is not None and not manifest_matches(man, idx):
        if args.manifest:
            raise UserError(f"the manifest {man_path.name} records other picks than {Path(args.selection).name} "
                            "(another run's manifest); give the manifest written with this selection")
        if not args.quiet:
            print(f"bilaf plot: warning: ignoring {man_path.name}: it records other picks than "
                  f"{Path(args.selection).name} (another run's manifest)", file=sys.stderr)
        man = None
    pseudo = None
    cores = None
    method = None
    if man is not None:
        if int(man["pool_size"]) != n:
            raise UserError(f"the manifest {man_path.name} is for a pool of {man['pool_size']}, the features hold {n}")
        if not args.ignore_hash and features_sha256(fs.features) != man["features"]["sha256"]:
            raise UserError(f"the features differ from those the manifest {man_path.name} records; "
                            "use --ignore-hash to draw anyway")
        pseudo = decode_labels(man.get("pseudo_labels"))
        cores = np.asarray(man.get("result", {}).get("core_indices", []), dtype=np.int64)
        method = man.get("method")
    roles = sel.get("roles")
    if roles is None:
        roles = np.full(len(idx), "boundary" if cores is not None and len(cores) else "selected", dtype=object)
        if cores is not None:
            roles[np.isin(idx, cores)] = "core"
        if man is not None and man.get("labeled"):
            roles[np.isin(idx, np.asarray(man["labeled"]["indices"], dtype=np.int64))] = "labeled"

    truth = None
    color_by = args.color_by
    if args.labels:
        truth = _read_labels(args.labels, n)
    elif fs.labels is not None and (color_by == "label" or (color_by == "auto" and pseudo is None)):
        truth = fs.labels
    if color_by == "auto":
        color_by = "label" if args.labels else ("pseudo" if pseudo is not None else ("label" if truth is not None
                                                                                      else "none"))
    if color_by == "label" and truth is None:
        raise UserError("--color-by label needs true labels: give --labels FILE (or a feature file with labels)")
    if color_by == "pseudo" and pseudo is None:
        raise UserError("--color-by pseudo needs the pseudo-labels of a BiLAF selection's manifest "
                        "(none found beside the selection; give --manifest FILE)")
    title = args.title
    if title is None:
        what = f"{method}: " if method else ""
        title = f"{what}{len(idx):,} of {n:,} samples selected"
    save_selection_plot(out, X, idx, roles=roles, core_indices=cores, pseudo_labels=pseudo, labels=truth,
                        class_names=fs.classes, color_by=color_by, projection=args.projection,
                        max_points=args.max_points, random_state=args.seed, title=title, dpi=args.dpi)
    if not args.quiet:
        print(f"bilaf plot: {len(idx)} picks on a {args.projection} map -> {out}", file=sys.stderr)
    return 0
