"""``bilaf bench``: methods x budgets x seeds on a labeled pool -> accuracy table (Markdown, CSV) and plot."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

from . import UserError
from .common import host_description
from ..errors import ValidationError

__all__ = ["add_parser", "run", "command_line"]

EXAMPLES = """\
examples:
  bilaf bench train_features.npy --test test_features.npy --out results/
  bilaf bench train_features.npy --test test_features.npy \\
      --methods random,kcenter,kmeans,typiclust,probcover,activeft,bilaf,bilaf:n_cores=50 \\
      --budgets 0.5%,1%,2%,5% --seeds 5 --protocols linear,knn --name cifar10 --out benchmarks/results
  bilaf bench pool.npz --test test.npz --subsample 2000 --methods random,bilaf --budgets 1%,5% --seeds 2 --out /tmp/b

Method specs: NAME or NAME:key=value,key=value (selector options, e.g. bilaf:n_cores=50,normalize=true);
in --methods a comma before key=value continues the previous spec. Budgets: percentages (0.5%), fractions
(0.005) or counts (250). Seeds: a count (5 -> 0..4), a list (0,1,2; seed 3 alone: 3,) or a range (3-4); seed s seeds every method's selection.
Outputs in --out: NAME.md (tables: accuracy mean +- std per protocol, each method's paired difference to
--reference with its 95% CI over shared seeds, selection time, failures, the command),
NAME.csv (the same, one row per cell), NAME_runs.csv (every run), NAME.png (accuracy vs budget). Each is
rewritten atomically after every selection, so an interrupted bench leaves complete files; --resume skips
the runs already in NAME_runs.csv (runs of other methods, budgets or seeds stay in that file, untabulated). A method that fails is reported in the table and the run goes on.
"""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    try:
        from .common import one_line_errors

        one_line_errors(parser, "bench")
    except ImportError:  # pragma: no cover
        pass


#: the library's parameter names that this verb's flags spell otherwise (for error messages)
FLAG_NAMES = {"k": "--knn-k", "C": "--linear-C", "random_state": "--seeds"}

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf bench``."""
    p = subparsers.add_parser(
        "bench", help="compare selection methods: methods x budgets x seeds -> table and plot",
        description="Run every method at every budget with every seed on a labeled pool, score each selection "
                    "on a labeled test set (linear probe, kNN), and write a table of mean +- std and a plot.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _one_line_errors(p)
    p.add_argument("features", metavar="FEATURES", help="labeled pool feature file (.npy with sidecars, .npz, .parquet)")
    p.add_argument("--test", required=True, metavar="FILE", help="labeled test feature file")
    p.add_argument("--methods", metavar="SPECS", default="random,kcenter,kmeans,typiclust,probcover,activeft,bilaf",
                   help="comma-separated method specs (default: all seven methods with their defaults)")
    p.add_argument("--budgets", metavar="B[,B]", default="0.5%,1%,2%,5%", help="comma-separated budgets (default 0.5%%,1%%,2%%,5%%)")
    p.add_argument("--seeds", metavar="N|LIST", default="5", help="a count (default 5: seeds 0..4), a comma-separated list (0,1,2; a single seed: 3,) or a range (3-4)")
    p.add_argument("--protocols", metavar="P[,P]", default="linear,knn",
                   help="comma-separated: linear, knn, finetune (default linear,knn)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--name", metavar="STEM", default="bench", help="output file stem (default bench)")
    p.add_argument("--title", metavar="TEXT", help="title of the table and plot")
    p.add_argument("--reference", metavar="METHOD",
                   help="method the table's paired differences are taken to, as written in --methods "
                        "(default: the first method)")
    p.add_argument("--labels", metavar="FILE.npy", help="pool labels (.npy), if FEATURES has none")
    p.add_argument("--test-labels", metavar="FILE.npy", help="test labels (.npy), if TEST has none")
    p.add_argument("--subsample", type=int, metavar="N", help="use N random pool rows (seed --subsample-seed)")
    p.add_argument("--test-subsample", type=int, metavar="N", help="use N random test rows")
    p.add_argument("--subsample-seed", type=int, metavar="N", default=0, help="seed of the subsamples (default 0)")
    p.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu, cuda or auto: where selectors and kNN run (default cpu)")
    p.add_argument("--knn-k", type=int, metavar="N", default=None, help="kNN neighbours (default 20)")
    p.add_argument("--linear-C", type=float, metavar="X", default=None, help="linear probe C (default 10)")
    p.add_argument("--linear-solver", choices=("auto", "torch", "sklearn"), default="auto",
                   help="linear probe solver: same objective; auto = torch on a GPU, scikit-learn on the CPU")
    g = p.add_argument_group("finetune protocol", "the backbone's top + a new head trained on the selected samples "
                             "(read back from the ids and the input named in the feature files)")
    g.add_argument("--finetune-backbone", metavar="NAME",
                   help="efficientnet_lite0 or minilm (default: the backbone named in FEATURES)")
    g.add_argument("--pool-source", metavar="PATH",
                   help="folder, archive or text file the pool was embedded from (default: as FEATURES says)")
    g.add_argument("--test-source", metavar="PATH",
                   help="folder, archive or text file the test set was embedded from (default: as TEST says)")
    g.add_argument("--finetune-top", type=int, metavar="N",
                   help="blocks (images, default 1) or transformer layers (texts, default 2) trained")
    g.add_argument("--finetune-image-size", type=int, metavar="PX", help="image side in pixels (default 128)")
    p.add_argument("--resume", action="store_true", help="keep the runs already in OUT/NAME_runs.csv")
    p.add_argument("--render-only", action="store_true",
                   help="make no selection: rewrite the tables and plot from OUT/NAME_runs.csv (cells without "
                        "runs stay empty; cells with fewer seeds say n=...)")
    p.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib needed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-run lines")
    p.set_defaults(func=run)
    return p


def command_line(args: argparse.Namespace) -> str:
    """The canonical ``bilaf bench`` command that reproduces ``args``."""
    parts = ["bilaf", "bench", args.features, "--test", args.test, "--methods", args.methods, "--budgets",
             args.budgets, "--seeds", str(args.seeds), "--protocols", args.protocols]
    for flag, value in (("--labels", args.labels), ("--test-labels", args.test_labels),
                        ("--finetune-backbone", args.finetune_backbone), ("--pool-source", args.pool_source),
                        ("--test-source", args.test_source), ("--finetune-top", args.finetune_top),
                        ("--finetune-image-size", args.finetune_image_size),
                        ("--subsample", args.subsample), ("--test-subsample", args.test_subsample),
                        ("--knn-k", args.knn_k), ("--linear-C", args.linear_C),
                        ("--linear-solver", None if args.linear_solver == "auto" else args.linear_solver)):
        if value is not None:
            parts += [flag, str(value)]
    if args.subsample is not None or args.test_subsample is not None:
        parts += ["--subsample-seed", str(args.subsample_seed)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    if args.title:
        parts += ["--title", args.title]
    if getattr(args, "reference", None):
        parts += ["--reference", args.reference]
    parts += ["--name", args.name, "--out", args.out]
    return shlex.join(parts)




def _load(path: str):
    try:
        from .common import load_feature_file
    except ImportError:  # pragma: no cover
        from ..features import FeatureSet

        return FeatureSet.load(path)
    return load_feature_file(path)


def _labels(fs: Any, path: Optional[str], what: str, flag: str, file: str) -> np.ndarray:
    if path:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{what} file not found: {p}")
        try:
            y = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValidationError(f"cannot read {what} file {p.name}: {exc}") from None
    elif fs.labels is not None:
        y = fs.labels
    else:
        raise UserError(f"labels missing: {file} has no labels; pass {flag} FILE.npy")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(fs):
        raise UserError(f"{len(y) if y.ndim == 1 else y.size} {what} for {len(fs)} rows of {file}")
    if y.dtype.kind not in "iu":
        raise UserError(f"{what} must be integer class ids, got dtype {y.dtype}")
    if (y < 0).any():
        raise UserError(f"labels missing for {int((y < 0).sum())} of the {len(y)} rows of {file}; a bench needs "
                        "every pool and test row labeled")
    return y.astype(np.int64)


def _match_class_names(args: argparse.Namespace, pool: Any, y: np.ndarray, test: Any,
                       ty: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """Pool and test labels on the pool's class ids, by class name when both files carry names."""
    from ..features.classes import align_labels

    try:
        al = align_labels(y, pool.classes, ty, test.classes, train_what=args.features, test_what=args.test)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if al.test_only and not args.quiet:
        print(f"bilaf bench: note: {len(al.test_only)} test class(es) absent from the pool's classes "
              f"({', '.join(al.test_only[:5])}); their test samples count as errors", file=sys.stderr)
    return al.train_labels, al.test_labels


def _subsample(n: int, k: Optional[int], seed: int, flag: str) -> Optional[np.ndarray]:
    if k is None:
        return None
    if k < 2 or k > n:
        raise UserError(f"{flag} must lie in [2, {n}], got {k}")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf bench``. Returns the exit code."""
    from ..bench import BenchResult, parse_budgets, parse_methods, parse_seeds, read_runs_csv, run_bench

    # everything that can be wrong is checked before any output exists
    specs = parse_methods(args.methods)
    budgets = parse_budgets(args.budgets)
    seeds = parse_seeds(args.seeds)
    protocols = [t.strip() for t in args.protocols.split(",") if t.strip()]
    for t in protocols:
        if t not in ("linear", "knn", "finetune"):
            raise UserError(f"unknown protocol {t!r} in --protocols; choose from linear, knn, finetune")
    if "finetune" not in protocols:
        for flag, v in (("--finetune-backbone", args.finetune_backbone), ("--pool-source", args.pool_source),
                        ("--test-source", args.test_source), ("--finetune-top", args.finetune_top),
                        ("--finetune-image-size", args.finetune_image_size)):
            if v is not None:
                raise UserError(f"{flag} applies to the finetune protocol; add finetune to --protocols")
    for flag, v in (("--finetune-top", args.finetune_top), ("--finetune-image-size", args.finetune_image_size)):
        if v is not None and v < 1:
            raise UserError(f"{flag} must be a positive integer, got {v}")
    if not protocols:
        raise UserError("--protocols is empty")
    if args.reference is not None and args.reference not in [s.label for s in specs]:
        raise UserError(f"--reference {args.reference!r} is not one of --methods ({', '.join(s.label for s in specs)})")
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise UserError(f"--name must be a plain file stem, got {args.name!r}")
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UserError("the plot needs matplotlib: pip install 'bilaf[plot]' (or pass --no-plot)") from None
    pool = _load(args.features)
    test = _load(args.test)
    y = _labels(pool, args.labels, "pool labels", "--labels", args.features)
    ty = _labels(test, args.test_labels, "test labels", "--test-labels", args.test)
    y, ty = _match_class_names(args, pool, y, test, ty)
    if pool.features.shape[1] != test.features.shape[1]:
        raise UserError(f"feature widths differ: {args.features} has {pool.features.shape[1]} columns, "
                        f"{args.test} has {test.features.shape[1]}")
    X, T = pool.features, test.features
    rows = _subsample(len(pool), args.subsample, args.subsample_seed, "--subsample")
    if rows is not None:
        X, y = np.asarray(X[rows]), y[rows]
    trows = _subsample(len(test), args.test_subsample, args.subsample_seed + 1, "--test-subsample")
    if trows is not None:
        T, ty = np.asarray(T[trows]), ty[trows]
    for b in budgets:
        b.count(int(X.shape[0]))  # a budget too large for the pool fails here, before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a folder, got a file: {out}")
    previous: List[dict] = []
    runs_path = out / f"{args.name}_runs.csv"
    if args.render_only and not runs_path.exists():
        raise UserError(f"--render-only needs the runs of an earlier bench: {runs_path} not found")
    if (args.resume or args.render_only) and runs_path.exists():
        previous = read_runs_csv(runs_path)
    elif not args.resume and runs_path.exists():
        raise UserError(f"{runs_path} exists: pass --resume to continue it, or choose another --name / --out")
    eval_params = {}
    if args.knn_k is not None and "knn" in protocols:
        eval_params["knn"] = {"k": args.knn_k}
    if "linear" in protocols:
        eval_params["linear"] = {"solver": args.linear_solver}
        if args.linear_C is not None:
            eval_params["linear"]["C"] = args.linear_C
    meta = {"command": command_line(args), "title": args.title, "host": host_description(args.device),
            "reference": args.reference}
    finetuner = None
    if "finetune" in protocols and not args.render_only:
        from ..evaluation import finetuner_for
        from ..evaluation.raw_samples import SamplesNotFound

        try:
            finetuner = finetuner_for(pool, test, ty, int(max(y.max(), ty.max())) + 1,
                                      backbone=args.finetune_backbone, pool_source=args.pool_source,
                                      test_source=args.test_source, pool_rows=rows, test_rows=trows,
                                      top=args.finetune_top, image_size=args.finetune_image_size,
                                      device=args.device, verbose=not args.quiet)
        except SamplesNotFound as exc:
            flag = "--test-source" if exc.which == "test" else "--pool-source"
            raise UserError(f"finetune: {exc}; if they moved, give their place with {flag} PATH") from None
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(f"finetune: {exc}") from None
        meta["finetune"] = finetuner.describe()

    out.mkdir(parents=True, exist_ok=True)
    title = args.title

    def save(res: BenchResult) -> None:
        res.write(out, args.name, plot=False, title=title)

    res = run_bench(X, y, T, ty, specs, budgets, seeds, protocols, device=args.device, eval_params=eval_params,
                    previous=previous, on_progress=None if args.render_only else save, verbose=not args.quiet,
                    meta=meta, run_missing=not args.render_only, finetuner=finetuner)
    paths = res.write(out, args.name, plot=not args.no_plot, title=title)
    print(res.to_markdown(title=title))
    if not args.quiet:
        print("bilaf bench: wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
