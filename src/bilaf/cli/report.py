"""``bilaf report``: one HTML page to look at a selection before paying for its labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import UserError
from .common import load_feature_file, one_line_errors

__all__ = ["add_parser", "run"]

EXAMPLES = """\
examples:
  bilaf report train_features.npy selection.csv -o report.html --samples images.tar.gz
  bilaf report feats.parquet picks.json -o report.html                  (samples found where bilaf embed read them)
  bilaf report feats.npz selection.csv -o report.html --thumbnails link (images linked, not embedded)
  bilaf report texts.npz selection.csv -o report.html                   (text pools show the texts)

The roles, pseudo-classes, cores and removed noise come from the selection's manifest (<name>.manifest.json
beside it, written by bilaf select) and from the columns of a .csv/.parquet selection. The page is one file
that opens from disk: no server, no network.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf report``."""
    p = subparsers.add_parser(
        "report", help="write an HTML page to look at a selection (gallery, map, coverage)",
        description="Write one self-contained HTML page about a selection: a summary (method, budget, K, seed, "
                    "timings, hashes), a 2-D map, the picks per pseudo-class and the pseudo-classes without one, "
                    "a gallery of the picks grouped by pseudo-class (each boundary pick beside the cores it lies "
                    "between) and a sample of the samples the denoising removed.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(p, "report")
    p.add_argument("features", metavar="FEATURES", help="the feature file the selection was made from")
    p.add_argument("selection", metavar="SELECTION",
                   help="a selection file written by bilaf select (.csv, .parquet, .json, .labelstudio.json, .txt) "
                        "or a plain JSON list of indices")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the page to write (.html)")
    p.add_argument("--samples", metavar="PATH",
                   help="where the samples are: an image folder, a .tar/.zip archive, or a text file with one "
                        "sample per line (default: the place recorded in the feature file by bilaf embed)")
    p.add_argument("--thumbnails", choices=("embed", "link", "none"), default="embed",
                   help="embed small JPEGs in the page, link the images relative to it (archive members are "
                        "written to <name>_files/ beside it), or show ids only (default: embed)")
    p.add_argument("--thumb-size", type=int, default=96, metavar="PX",
                   help="longest side of a thumbnail in pixels, never enlarged (default: 96)")
    p.add_argument("--manifest", metavar="FILE",
                   help="the selection's manifest (default: <selection>.manifest.json beside it, if present)")
    p.add_argument("--projection", choices=("pca", "tsne", "umap"), default="pca",
                   help="the map's 2-D projection (default: pca)")
    p.add_argument("--max-points", type=int, default=5000, metavar="N",
                   help="most pool samples on the map besides the picks, a random subsample (default: 5000)")
    p.add_argument("--removed", type=int, default=48, metavar="N",
                   help="most removed-as-noise samples shown, a random sample (default: 48)")
    p.add_argument("--page-size", type=int, default=200, metavar="N", help="picks per gallery page (default: 200)")
    p.add_argument("--no-labels", action="store_true",
                   help="leave the feature file's true labels out of the page (they are otherwise offered as an "
                        "optional benchmark view)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the map's subsample and projection and of the removed sample (default: 0)")
    p.add_argument("--title", default=None, metavar="TEXT", help="page title (default: method and counts)")
    p.add_argument("--ignore-hash", action="store_true",
                   help="write the page even if the features' hash differs from the manifest's")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf report`` (see ``bilaf report --help``). Returns the exit code."""
    from ..report import load_selection, write_report

    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"the report is an HTML page: give -o a name ending in .html, got {args.out!r}")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    for flag, v, lo in (("--max-points", args.max_points, 0), ("--removed", args.removed, 0),
                        ("--page-size", args.page_size, 1), ("--thumb-size", args.thumb_size, 8)):
        if v < lo:
            raise UserError(f"{flag} must be >= {lo}, got {v}")
    if args.samples is not None and not Path(args.samples).exists():
        raise FileNotFoundError(f"--samples not found: {args.samples}")
    fs = load_feature_file(args.features)
    try:
        result, man = load_selection(fs, args.selection, args.manifest, check_hash=not args.ignore_hash)
    except ValueError as exc:
        if "differ from those the manifest" in str(exc):
            raise UserError(f"{exc}; use --ignore-hash to write the page anyway") from None
        raise
    write_report(out, fs, result, manifest=man, samples=args.samples, thumbnails=args.thumbnails,
                 thumb_size=args.thumb_size, projection=args.projection, max_points=args.max_points,
                 n_removed=args.removed, true_labels=not args.no_labels, page_size=args.page_size,
                 random_state=args.seed, title=args.title)
    if not args.quiet:
        size = out.stat().st_size
        print(f"bilaf report: {len(result):,} picks -> {out} ({size / 1024**2:.1f} MB)", file=sys.stderr)
    return 0
