"""``bilaf select``: features in, a selection (and its manifest) out.

Every option of the Python API is reachable: a flag for each parameter of each
selector, generated from the selectors' parameter tables (:mod:`bilaf.cli.options`),
and a generic ``--param NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import numbers
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..errors import ValidationError
from ..params import Interval, Param, parse_option, parse_text_value
from . import UserError
from .common import load_feature_file, one_line_errors
from .options import add_selector_options, available_classes, selector_params

__all__ = ["add_parser", "run", "parse_budget", "read_index_file", "parse_value", "one_line_errors"]

EXAMPLES = """\
examples:
  bilaf select train_features.npy --budget 1% --out selection.csv
  bilaf select feats.parquet -b 500 -m kcenter -o picks.json -o picks.txt
  bilaf select feats.npz -b 0.02 --n-cores 100 --core-selector kmeans --out tasks.labelstudio.json
  bilaf select feats.npy -b 1000 --labeled already_labeled.txt --out more.csv     (warm start)
  bilaf select feats.npy -b 500 --exclude rejected.txt --dedup 0.98 --out picks.csv (constraints)
  bilaf select --manifest selection.csv.manifest.json                             (check: same picks?)
  bilaf select --manifest selection.csv.manifest.json --out again.csv             (reproduce to a file)

Output formats, by suffix: .json (a plain list of indices), .csv and .parquet (rank, index, id, path,
role, pseudo_class, score, opponent_class), .labelstudio.json (Label Studio tasks), .txt (one file path
per line). A manifest <output file name>.manifest.json (e.g. picks.csv.manifest.json) is written beside
each output.
"""


# -- small parsers ---------------------------------------------------------------------------

def parse_budget(text: Any) -> Any:
    """A budget as written on the command line: see :func:`bilaf.validation.parse_budget` (one rule for every verb)."""
    from ..validation import parse_budget as _parse

    return _parse(text)


def parse_value(text: str) -> Any:
    """An option value with no parameter table: JSON, true/false, none/null, else the text."""
    return parse_text_value(text)


def read_index_file(path: str, n_samples: int, ids: Optional[Sequence[str]], what: str) -> np.ndarray:
    """Read pool indices from a file: .json list, .npy, .txt (one per line), or a selection .csv/.parquet.

    Lines or entries that are not integers are taken as ids or file paths of
    the feature file's rows. The result is checked: integers in range, no
    repeats.
    """
    from ..validation import check_indices
    from ..writers import read_selection

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        got = read_selection(p, ids=ids)["indices"]
    except ValueError as exc:
        raise ValidationError(f"{what} file: {exc}") from None
    return check_indices(got, n_samples, name=f"{what} file {p.name}", allow_empty=True)


# -- the parser ---------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf select``."""
    from ..selectors import METHODS

    classes = available_classes()
    p = subparsers.add_parser(
        "select", help="choose the samples to label from a feature file",
        description="Choose, in one shot and without labels, the samples of a pool worth labeling, and write "
                    "them in formats a labeling team can import (with a manifest that reproduces the run).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(p, "select")
    p.add_argument("features", nargs="?", metavar="FEATURES",
                   help="feature file: .npy (ids from <name>_ids.txt or <split>_files.txt beside it), .npz or "
                        ".parquet; with --manifest, default: the manifest's feature file")
    g = p.add_argument_group("selection")
    g.add_argument("-b", "--budget", metavar="B",
                   help="how many samples to choose: a count (500), a fraction of the pool (0.01) or a "
                        "percentage (1%%); already-labeled samples (--labeled) count towards it. Required "
                        "unless --manifest")
    g.add_argument("-m", "--method", choices=METHODS, default=None,
                   help="selection method (default: bilaf)")
    g.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed for every random choice (default: 0)")
    g.add_argument("--labeled", metavar="FILE",
                   help="warm start: samples already labeled (indices, ids or paths; .txt, .json, .npy, or a "
                        "selection .csv/.parquet). They count as chosen and the rest of the budget is picked "
                        "around them (default: none)")
    g.add_argument("--candidates", metavar="FILE",
                   help="pick only among these samples (indices, ids or paths, one per line; .txt, .json, .npy, "
                        "or a selection .csv/.parquet) (default: the whole pool)")
    g.add_argument("--exclude", metavar="FILE",
                   help="never pick these samples (same file kinds as --candidates; --labeled samples still "
                        "count as chosen) (default: none)")
    g.add_argument("--dedup", metavar="X",
                   help="drop near-duplicates before selecting: a sample whose cosine similarity to an earlier "
                        "kept one is at least X (0 < X <= 1, e.g. 0.98); the dropped samples are listed in the "
                        "manifest (default: off)")
    g.add_argument("--manifest", metavar="FILE",
                   help="reproduce the selection a manifest records; options given on the command line "
                        "override its values. Without --out, only checks that the picks are identical "
                        "(exit 0) or not (exit 1)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where BiLAF runs: in this process, or its stage 2 as tasks on a Ray cluster (same "
                        "selection; needs pip install 'bilaf[ray]'; method bilaf only; see docs/ray.md) "
                        "(default: local)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster, e.g. auto or ray://head:10001 (default: RAY_ADDRESS, "
                        "else a local Ray started for the run)")
    g.add_argument("--ignore-hash", action="store_true",
                   help="with --manifest: run even if the features' hash differs from the recorded one")

    o = p.add_argument_group("output")
    o.add_argument("-o", "--out", action="append", default=[], metavar="FILE",
                   help="output file, may be repeated; format by suffix: .json (plain list of indices), .csv, "
                        ".parquet, .labelstudio.json (Label Studio tasks), .txt (one path per line)")
    o.add_argument("--format", action="append", default=[], metavar="FMT",
                   choices=("json", "csv", "parquet", "labelstudio", "paths"),
                   help="output format when the suffix does not say it: once for all --out, or once per --out "
                        "in order (json, csv, parquet, labelstudio, paths)")
    o.add_argument("--path-prefix", default="", metavar="PREFIX",
                   help="prepended to every file path in the outputs: an image folder, a URL, or Label "
                        "Studio's /data/local-files/?d= (default: none)")
    o.add_argument("--ls-data-key", default=None, metavar="KEY",
                   help="Label Studio: the task data field holding the path (default: image, or text for "
                        "text features)")
    verb = o.add_mutually_exclusive_group()
    verb.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    verb.add_argument("--progress", action="store_true",
                      help="show progress bars even when stderr is not a terminal (default: only on a terminal)")

    add_selector_options(p, classes)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any constructor option of the chosen method by its Python name (value as JSON, or a "
                        "file of indices for index options); may be repeated")
    p.set_defaults(func=run)
    return p




def pick_texts(fs: Any, indices: Sequence[int]) -> Optional[Dict[int, str]]:
    """The texts of the picked rows of a text pool made by ``bilaf embed`` (ids ``file:line``), if readable.

    Returns None when the features do not come from a text file that is still
    there, or when an id does not point into it.
    """
    src = str(fs.meta.get("source", ""))
    if not src.startswith("text:"):
        return None
    f = Path(src[len("text:"):])
    try:
        lines = f.read_bytes().decode("utf-8", errors="replace").split("\n")
    except OSError:
        return None
    out: Dict[int, str] = {}
    for i in indices:
        name, _, num = str(fs.ids[int(i)]).rpartition(":")
        if name != f.name or not num.isdigit() or not 1 <= int(num) <= len(lines):
            return None
        line = lines[int(num) - 1].rstrip("\r").strip()
        if fs.labels is not None:  # '<label> <text>' lines: the label was read from the first column
            parts = line.split(None, 1)
            line = parts[1] if len(parts) == 2 else line
        out[int(i)] = line
    return out


# -- constraints ---------------------------------------------------------------------------------

_DEDUP = Param(Interval(numbers.Real, 0, 1, closed="right"), help="cosine similarity threshold")

def _read_constraints(args: argparse.Namespace, man: Optional[Dict[str, Any]], n: int,
                      ids: Optional[Sequence[str]]) -> Dict[str, Any]:
    """--candidates, --exclude and --dedup (else the manifest's), read and checked."""
    from ..manifest import recorded_constraints

    out = recorded_constraints(man) if man is not None else {"candidates": None, "exclude": None, "dedup": None,
                                                              "paths": {}}
    for key in ("candidates", "exclude"):
        path = getattr(args, key, None)
        if path:
            out[key] = read_index_file(path, n, ids, key)
            out["paths"][key] = path
    raw = getattr(args, "dedup", None)
    if raw is not None:
        out["dedup"] = parse_option("dedup", raw, _DEDUP)
    return out


# -- the verb ------------------------------------------------------------------------------------

def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf select`` (see ``bilaf select --help``). Returns the exit code."""
    from ..constraints import constrained_select
    from ..manifest import (build_manifest, features_location, features_sha256, manifest_path_for, read_manifest,
                            constraints_entry, recorded_labeled, recorded_params, reproduce,
                            write_manifest)
    from ..selectors import get_selector_class
    from ..validation import budget_count, check_features
    from ..writers import check_output_path, write_outputs

    t_start = time.perf_counter()
    timings: Dict[str, Any] = {}
    man = read_manifest(args.manifest) if args.manifest else None

    # outputs first: a bad output name fails before any work
    if len(args.format) not in (0, 1, len(args.out)):
        raise UserError(f"give --format once, or once per --out ({len(args.out)}), not {len(args.format)} times")
    fmts = (args.format * len(args.out)) if len(args.format) == 1 else (args.format or [None] * len(args.out))
    outs = [(Path(o), check_output_path(o, f)) for o, f in zip(args.out, fmts)]
    if not outs and man is None:
        raise UserError("no output: give --out FILE (e.g. --out selection.csv)")
    manifests = []
    for path, _ in outs:
        mp = manifest_path_for(path)
        if any(mp.resolve() == q.resolve() for q, _ in outs):
            raise UserError(f"output {path} would be overwritten by its manifest; choose another name")
        if mp not in manifests:
            manifests.append(mp)

    # features
    feat_path = args.features
    if feat_path is None:
        if man is None:
            raise UserError("no feature file: give FEATURES (a .npy, .npz or .parquet file)")
        loc = features_location(man)
        if loc is None:
            raise UserError("the manifest records no feature file; give FEATURES")
        feat_path = str(loc)
    t0 = time.perf_counter()
    fs = load_feature_file(feat_path)
    raw = fs.features
    timings["load features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = check_features(raw, name=f"features in {Path(feat_path).name}")
    timings["check features"] = time.perf_counter() - t0
    n = int(X.shape[0])
    has_ids = fs.ids != [str(i) for i in range(n)]
    ids = fs.ids if has_ids else None
    t0 = time.perf_counter()
    fhash = features_sha256(raw)
    timings["hash features"] = time.perf_counter() - t0
    if man is not None:
        if fhash != man["features"]["sha256"]:
            msg = (f"features in {feat_path} differ from the manifest's (sha256 {fhash[:12]}... vs "
                   f"{man['features']['sha256'][:12]}...)")
            if not args.ignore_hash:
                raise UserError(msg + "; use --ignore-hash to run anyway")
            _say(args, f"bilaf select: warning: {msg}")

    # what to run: the manifest's values, overridden by what the command line gives
    method = args.method or (man["method"] if man else "bilaf")
    try:
        get_selector_class(method)  # unknown or not installed: one clear line
    except ImportError:
        raise UserError(f"method {method!r} is not available in this installation of bilaf") from None
    if args.budget is not None:
        budget_req: Any = args.budget
        budget = parse_budget(args.budget)
    elif man is not None:
        budget_req = man["budget"].get("requested")
        budget = int(man["budget"]["count"])
    else:
        raise UserError("no budget: give --budget (a count like 500, a fraction like 0.01, or 1%)")
    count = budget_count(budget, n)
    seed = args.seed if args.seed is not None else (man.get("seed") if man else 0)
    params: Dict[str, Any] = {}
    if man is not None and method == man["method"]:
        params.update(recorded_params(man))
    params.update(selector_params(args, method, lambda path, what: read_index_file(path, n, ids, what).tolist()))
    params["verbose"] = bool(args.progress or (not args.quiet and sys.stderr.isatty()))
    labeled = None
    labeled_path = None
    if args.labeled:
        labeled_path = args.labeled
        labeled = read_index_file(args.labeled, n, ids, "labeled")
    elif man is not None and man.get("labeled"):
        labeled = recorded_labeled(man)
        labeled_path = man["labeled"].get("path")
    if labeled is not None and len(labeled) > count:
        raise UserError(f"{len(labeled)} samples are already labeled, more than the budget {count}")
    constraints = _read_constraints(args, man, n, ids)

    if args.engine == "ray":
        from ..engines.ray import cli_selector

        selector = cli_selector(method, params, seed, address=args.ray_address)
    else:
        selector = get_selector_class(method)(random_state=seed, **params)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = dict(labeled=labeled, candidates=constraints["candidates"], exclude=constraints["exclude"],
                   dedup=constraints["dedup"])
        same = None
        if man is not None:  # the hash was checked above (or --ignore-hash)
            result, same = reproduce(man, X, check_hash=False, selector=selector, budget=count, **run)
        else:
            result = constrained_select(selector, X, count, **run)
    t_sel = time.perf_counter() - t0
    for w in caught:
        if issubclass(w.category, UserWarning):
            _say(args, f"bilaf select: note: {w.message}")
    timings["selection"] = {**result.timings, "total": t_sel}


    data_key = args.ls_data_key or ("text" if str(fs.meta.get("modality", fs.meta.get("kind", ""))).lower()
                                    == "text" else "image")
    if outs:
        sel_params = {k: v for k, v in selector.get_params().items()}
        command = ["bilaf", "select"] + (sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "select" else [])
        t_write = time.perf_counter()

        def render_manifest(tmp: Path) -> None:
            tm = dict(timings)
            tm["write outputs"] = time.perf_counter() - t_write
            tm["total"] = time.perf_counter() - t_start
            m = build_manifest(result, features_path=feat_path, features_hash=fhash,
                               features_shape=raw.shape, features_dtype=str(raw.dtype), budget=budget_req, seed=seed,
                               selector_params=sel_params, labeled=labeled, labeled_path=labeled_path, timings=tm,
                               outputs=[(pp, f) for pp, f in outs], command=command,
                               extra={**({"reproduced_from": man["_path"]} if man else {}),
                                      **constraints_entry(constraints)} or None)
            write_manifest(m, tmp)

        texts = pick_texts(fs, result.indices) if data_key == "text" and any(
            f == "labelstudio" for _, f in outs) else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_outputs(result, outs, ids=ids, paths=ids, path_prefix=args.path_prefix, data_key=data_key,
                          texts=texts, extra_files=[(mp, render_manifest) for mp in manifests])
        for w in caught:
            if issubclass(w.category, UserWarning):
                _say(args, f"bilaf select: warning: {w.message}")
    total = time.perf_counter() - t_start
    parts = []
    if len(result.core_indices):
        parts.append(f"{len(result.core_indices)} cores")
    if len(result.boundary_indices):
        parts.append(f"{len(result.boundary_indices)} boundary")
    if labeled is not None:
        parts.append(f"{len(labeled)} already labeled")
    info = result.params.get("constraints") or {}
    if info:
        parts.append(f"picked among {info['selected_from']:,}")
    if info.get("dedup") is not None:
        dropped = info["dedup_dropped"]
        shown = ", ".join((fs.ids[i] if has_ids else str(i)) for i in dropped[:5])
        _say(args, f"bilaf select: dropped {len(dropped)} near-duplicate(s) (cosine >= {info['dedup']:g})"
             + (f": {shown}{', ...' if len(dropped) > 5 else ''} (all listed in the manifest)" if dropped else ""))
    detail = f" ({', '.join(parts)})" if parts else ""
    dest = f" -> {', '.join(str(p) for p, _ in outs)}" if outs else ""
    _say(args, f"bilaf select: {len(result)} of {n:,} samples with {method}{detail} in {total:.1f} s{dest}")
    if man is not None:
        _say(args, "bilaf select: the picks are identical to the manifest's" if same
             else "bilaf select: the picks DIFFER from the manifest's")
        if not same:
            from ..manifest import package_versions

            now, then = package_versions(), man.get("versions", {})
            changed = [f"{k} {then.get(k)} -> {now.get(k)}" for k in sorted(set(now) | set(then))
                       if then.get(k) != now.get(k)]
            if changed:
                _say(args, f"bilaf select: note: versions differ from the manifest's: {'; '.join(changed)}")
        if not outs:
            return 0 if same else 1
    return 0
