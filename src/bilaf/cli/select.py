"""``bilaf select``: features in, a selection (and its manifest) out.

Every option of the Python API is reachable: first-class flags for BiLAF's
options and the options common to all methods, flags generated from the
other selectors' constructors (with their docstrings as help), and a generic
``--param NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import UserError

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
    """Turn ``"1%"``, ``"0.01"`` or ``"500"`` into what :func:`bilaf.select` takes.

    Returns an int count (digits only: ``"500"``), a float fraction in (0, 1)
    (``"0.01"``), or, for a percentage, the fraction it names; ``"100%"`` is
    returned as 1.0, which the caller reads as the whole pool. A number
    written with a point or an exponent that is 1 or more (``"1.0"``,
    ``"1e2"``) is refused: as a fraction it is out of range, and reading it
    as a count would hide a typo, as in the Python API, where a float budget
    must lie in (0, 1).

    Raises
    ------
    ValueError
        For anything else (one line).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text
    s = str(text).strip()
    hint = "give a count (500), a fraction (0.01) or a percentage (1%)"
    try:
        if s.endswith("%"):
            p = float(s[:-1])
            if not math.isfinite(p) or p <= 0 or p > 100:
                raise ValueError
            return 1.0 if p == 100 else p / 100.0
        if re.fullmatch(r"[+]?\d+", s):
            v = int(s)
            if v < 1:
                raise ValueError
            return v
        f = float(s)
        if not math.isfinite(f) or f <= 0:
            raise ValueError
        if f < 1:
            return f
    except ValueError:
        raise ValueError(f"bad budget {text!r}: {hint}") from None
    raise ValueError(f"bad budget {text!r}: a number with a point or an exponent is a fraction and must lie "
                     f"in (0, 1); write a count in digits ({int(f) if f.is_integer() else 500}) or 100% for "
                     "the whole pool")


def parse_value(text: str) -> Any:
    """Parse an option value: JSON (numbers, true/false/null, lists, dicts), Python's None/True/False, else the string."""
    s = text.strip()
    low = s.lower()
    if low in ("none", "null"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        return json.loads(s)
    except ValueError:
        return s


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
        raise ValueError(f"{what} file: {exc}") from None
    return check_indices(got, n_samples, name=f"{what} file {p.name}", allow_empty=True)


# -- the selectors' options ----------------------------------------------------------------------

def _docstring_params(cls: type) -> Dict[str, Tuple[str, str]]:
    """name -> (type line, description) from a numpydoc 'Parameters' section (class and bases)."""
    out: Dict[str, Tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ""
        lines = doc.splitlines()
        try:
            start = next(i for i, ln in enumerate(lines)
                         if ln.strip() in ("Parameters", "Common parameters") and i + 1 < len(lines)
                         and set(lines[i + 1].strip()) == {"-"})
        except StopIteration:
            continue
        i = start + 2
        cur: List[str] = []
        cur_type = ""
        while i < len(lines):
            ln = lines[i]
            if ln.strip() and not ln.startswith(" ") and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # next section
            if ln.strip() and not ln.startswith(" "):
                names, _, typ = ln.partition(" : ")
                cur = [n.strip() for n in names.split(",") if n.strip()]
                cur_type = typ.strip()
                for n in cur:
                    out[n] = (cur_type, "")
            elif ln.strip() and cur:
                for n in cur:
                    t, d = out[n]
                    out[n] = (t, (d + " " + ln.strip()).strip())
            i += 1
    return out


def _signature_defaults(cls: type) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object:
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in out:
                out[p.name] = p.default
    return out


def _available_classes() -> Dict[str, type]:
    from ..selectors import METHODS, get_selector_class

    out = {}
    for m in METHODS:
        try:
            out[m] = get_selector_class(m)
        except (ImportError, AttributeError):  # a method whose module is not in this build
            continue
    return out


# first-class options: (param, flags, value kind, help). Defaults are read from the constructors.
_N_CORES_HELP = ("BiLAF: number of cores K (pseudo-class centres): a count, a fraction of the pool "
                 "(0.002 or 0.2%%), or auto: chosen without labels from the pool's coverage curve: the whole "
                 "budget (every pick a core) unless the pool shows clear clusters, then about two cores per "
                 "cluster and boundary samples for the rest")
COMMON = [
    ("normalize", ("--normalize",), "bool", "L2-normalise the features before selecting"),
    ("dtype", ("--dtype",), ("float32", "float64"), "precision of the distance computations"),
    ("device", ("--device",), ("cpu", "cuda", "auto"), "where the computation runs (torch)"),
    ("memory_budget", ("--memory-budget",), "str",
     "bound on the temporaries of each chunked pass, e.g. 1GB, 512MB"),
]
BILAF = [
    ("n_cores", ("--n-cores", "-k"), "n_cores", _N_CORES_HELP),
    ("core_selector", ("--core-selector",), "core_selector",
     "BiLAF stage 1: auto (spherical k-means with the automatic K, the paper's activeft with a given K), activeft, "
     "kmeans, kcenter, maxherding or random, or a FILE of core indices (.json, .txt, .npy)"),
    ("denoise", ("--denoise",), ("idc", "density", "distance", "none"),
     "how noisy members of each pseudo-class are removed (idc: the paper's iterative density clustering)"),
    ("criterion", ("--criterion",), ("boundary", "distance"),
     "boundary: the paper's Boundary Score; distance: distance to the opponent core only"),
    ("process", ("--process",), ("iterative", "oneshot"),
     "iterative: pick one boundary sample at a time with removal and penalty; oneshot: top scores at once"),
    ("opponent", ("--opponent",), ("nearest", "min"),
     "nearest: the opponent class is the nearest other core (published code); min: the paper's Eq. 7"),
    ("opponent_penalty", ("--opponent-penalty",), "float",
     "delta >= 1: score penalty per earlier pick against the same opponent class (1 = off)"),
    ("remove_fraction", ("--remove-fraction",), "float", "P_rm: share of each pseudo-class removed as noise"),
    ("cycle_fraction", ("--cycle-fraction",), "float", "P_in: share of a pseudo-class added per IDC ring"),
    ("density_k", ("--density-k",), "int", "k of the kNN density used in denoising"),
]
# help for options whose docstrings give only a type
_FALLBACK_HELP = {
    "n_init": "number of k-means runs with different seeds (the best is kept)",
    "max_iter": "most k-means iterations per run",
    "lr": "learning rate of Adam",
    "temperature": "softmax temperature tau",
    "n_iter": "number of optimisation steps",
}
_FIRST_CLASS = {p for p, *_ in COMMON + BILAF} | {"random_state", "verbose", "core_params"}
# our own flag names that a generated option must not take
_RESERVED = {"budget", "method", "seed", "out", "format", "labeled", "manifest", "param", "help", "quiet",
             "progress", "path_prefix", "ls_data_key", "ignore_hash", "core_param", "candidates", "exclude", "dedup"}


def _fmt_default(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _auto_options(classes: Dict[str, type]) -> List[Dict[str, Any]]:
    """Flags for the other methods' constructor options, with their docstrings as help."""
    opts: Dict[str, Dict[str, Any]] = {}
    for method, cls in classes.items():
        if method == "bilaf":
            continue
        docs = _docstring_params(cls)
        for name, default in _signature_defaults(cls).items():
            if name in _FIRST_CLASS or name in _RESERVED:
                continue
            typ, desc = docs.get(name, ("", ""))
            o = opts.setdefault(name, {"name": name, "default": default, "type": typ, "desc": desc,
                                       "defaults": {}, "descs": {}})
            o["defaults"][method] = default  # its keys: the methods that take this option, in order
            o["descs"][method] = desc
            if not o["desc"] and desc:
                o["desc"], o["type"] = desc, typ
    for o in opts.values():
        if len({repr(v) for v in o["defaults"].values()}) > 1:  # methods disagree: show each one's default
            o["default"] = "; ".join(f"{m}: {_fmt_default(v)}" for m, v in o["defaults"].items())
        other = [m for m, d in o["descs"].items() if d and d != o["desc"]]
        if other:  # the help text is the first method's; say that the others document their own
            o["desc"] += f" [{', '.join(other)}: see docs/baselines.md]"
    return list(opts.values())


def _value_kind(opt: Dict[str, Any]) -> Any:
    typ = opt["type"]
    if "array-like" in typ:
        return "indices"
    m = re.match(r"\{(.*)\}", typ)
    if m:
        choices = tuple(s.strip().strip("\"'") for s in m.group(1).split(","))
        return choices
    d = opt["default"]
    if isinstance(d, bool):
        return "bool"
    return "scalar"


# -- the parser ---------------------------------------------------------------------------------

def one_line_errors(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    """Make ``parser`` report bad arguments as one line on stderr with exit code 2 (no usage block)."""

    def error(self: argparse.ArgumentParser, message: str) -> None:  # noqa: ARG001
        print(f"bilaf {verb}: error: {message} (see bilaf {verb} --help)", file=sys.stderr)
        raise SystemExit(2)

    original = parser.parse_known_args

    def parse_known_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None):
        ns, extras = original(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    parser.error = types.MethodType(error, parser)  # type: ignore[method-assign]
    parser.parse_known_args = types.MethodType(parse_known_args, parser)  # type: ignore[method-assign]
    return parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bilaf select``."""
    from ..selectors import METHODS

    classes = _available_classes()
    bilaf_defaults = _signature_defaults(classes["bilaf"]) if "bilaf" in classes else {}
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

    def add_opt(group: Any, param: str, flags: Sequence[str], kind: Any, help_text: str, default: Any,
                methods: str = "", doc_type: str = "") -> None:
        suffix = f" ({methods}default: {_fmt_default(default)})"
        dest = f"opt_{param}"
        if kind == "bool":
            group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text.replace("%", "%%") + suffix)
        elif isinstance(kind, tuple):
            group.add_argument(*flags, dest=dest, choices=kind, default=None, help=help_text + suffix)
        else:
            meta = {"int": "N", "float": "X", "indices": "FILE", "core_selector": "NAME|FILE",
                    "n_cores": "K"}.get(kind, "VALUE")
            if kind == "scalar" and isinstance(default, (int, float)) and not isinstance(default, bool):
                meta = "N" if isinstance(default, int) else "X"
            elif kind == "scalar" and doc_type:
                meta = "N" if re.match(r"int\b", doc_type) else ("X" if re.match(r"float\b", doc_type) else meta)
            group.add_argument(*flags, dest=dest, default=None, metavar=meta,
                               help=help_text + suffix)

    gb = p.add_argument_group("BiLAF options (method bilaf)")
    for param, flags, kind, help_text in BILAF:
        default = bilaf_defaults.get(param)
        add_opt(gb, param, flags, kind, help_text, "auto" if param == "n_cores" and default is None else default)
    gb.add_argument("--core-param", action="append", default=[], metavar="NAME=VALUE",
                    help="an option of the core selector (e.g. n_iter=100 for activeft, max_iter=50 for kmeans); may be repeated "
                         "(default: none)")
    gc = p.add_argument_group("options of every method")
    for param, flags, kind, help_text in COMMON:
        base = bilaf_defaults.get(param)
        others = {m: _signature_defaults(c).get(param, base) for m, c in classes.items()}
        odd = {m: v for m, v in others.items() if v != base}
        shown = _fmt_default(base)
        if odd:  # a method with its own default: say so
            shown += "; " + ", ".join(f"{m}: {_fmt_default(v)}" for m, v in odd.items())
        add_opt(gc, param, flags, kind, help_text, shown)
    auto = _auto_options(classes)
    if auto:
        ga = p.add_argument_group("options of the other methods")
        for opt in auto:
            kind = _value_kind(opt)
            typ = re.sub(r",?\s*default\s*=.*$", "", opt["type"]).strip()
            desc = opt["desc"] or _FALLBACK_HELP.get(opt["name"]) or (f"{opt['name'].replace('_', ' ')} ({typ})" if typ else opt["name"].replace("_", " "))
            desc = re.sub(r":\w+:`~?([^`]+)`", r"\1", desc).replace("``", "").replace("%", "%%")
            flag = "--" + opt["name"].replace("_", "-")
            add_opt(ga, opt["name"], (flag,), kind, desc, opt["default"], f"{', '.join(opt['defaults'])}; ", typ)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any constructor option of the chosen method by its Python name (value as JSON, or a "
                        "file of indices for index options); may be repeated")
    p.set_defaults(func=run, _auto_kinds={o["name"]: _value_kind(o) for o in auto})
    return p


# -- turning arguments into a selector -----------------------------------------------------------

def _kv(items: Sequence[str], flag: str) -> Dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise UserError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name.strip().replace("-", "_")] = value
    return out


def _convert(param: str, raw: Any, kind: Any, n: int, ids: Optional[Sequence[str]]) -> Any:
    if raw is None or isinstance(raw, bool):
        return raw
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UserError(f"{param.replace('_', '-')} must be an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise UserError(f"{param.replace('_', '-')} must be a number, got {raw!r}") from None
    if kind == "n_cores":
        s = str(raw).strip()
        if s.lower() in ("none", "default"):
            return None
        if s.lower() == "auto":
            return "auto"
        try:
            if s.endswith("%"):
                return float(s[:-1]) / 100.0
            return int(s) if re.fullmatch(r"\d+", s) else float(s)
        except ValueError:
            raise UserError(f"n-cores must be a count, a fraction or 'auto', got {raw!r}") from None
    if kind == "core_selector":
        from ..selectors.bilaf import CORE_SELECTORS

        if raw in CORE_SELECTORS:
            return raw
        if not Path(raw).exists():
            raise UserError(f"core-selector {raw!r} is neither a method ({', '.join(CORE_SELECTORS)}) nor a file "
                            "of core indices")
        return read_index_file(raw, n, ids, "core-selector").tolist()
    if kind == "indices":
        s = str(raw)
        if s.lower() in ("none", "null"):
            return None
        return read_index_file(s, n, ids, param.replace("_", "-")).tolist()
    if kind == "scalar":
        return parse_value(str(raw))
    return raw  # choices and strings


def selector_params(args: argparse.Namespace, method: str, n: int, ids: Optional[Sequence[str]]) -> Dict[str, Any]:
    """The constructor options the command line sets (only those given), checked against ``method``."""
    from ..selectors import get_selector_class

    cls = get_selector_class(method)
    allowed = [x for x in cls._param_names() if x != "random_state"]
    given: Dict[str, Any] = {}
    flags: Dict[str, str] = {}
    kinds = {param: kind for param, _f, kind, _h in COMMON + BILAF}
    kinds.update(getattr(args, "_auto_kinds", {}) or {})
    for param, kind in kinds.items():
        raw = getattr(args, f"opt_{param}", None)
        if raw is not None:
            given[param] = _convert(param, raw, kind, n, ids)
            flags[param] = "--" + param.replace("_", "-")
    core = _kv(args.core_param, "--core-param")
    if core:
        given["core_params"] = {k: parse_value(v) for k, v in core.items()}
        flags["core_params"] = "--core-param"
    for name, value in _kv(args.param, "--param").items():
        if name == "random_state":
            raise UserError("use --seed for random_state")
        kind = kinds.get(name, "scalar")
        if kind == "scalar" and name in ("core_selector",):
            kind = "core_selector"
        given[name] = _convert(name, value, kind, n, ids)
        flags[name] = f"--param {name}"
    for name in given:
        if name not in allowed:
            shown = {"core_params": "core-param", "verbose": "progress"}
            raise UserError(f"option {flags[name]} does not apply to method {method!r} (its options: "
                            f"{', '.join('--' + shown.get(a, a.replace('_', '-')) for a in allowed)})")
    return given


def load_feature_file(path: str):
    """:meth:`FeatureSet.load` with every failure turned into one line naming the file."""
    from ..features import FeatureSet

    try:
        if Path(path).is_dir():  # Parquet shards written by `bilaf embed --engine ray`
            from ..engines.ray_embed import read_feature_shards

            return read_feature_shards(path)
        return FeatureSet.load(path)
    except (FileNotFoundError, UserError):
        raise
    except (ValueError, TypeError, OSError) as exc:
        msg = str(exc)
        if "pickled" in msg or "allow_pickle" in msg:
            msg = "not a numeric NumPy array file"
        if Path(path).name in msg:
            raise ValueError(msg) from None
        raise ValueError(f"cannot read feature file {path}: {msg}") from None


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

def _read_constraints(args: argparse.Namespace, man: Optional[Dict[str, Any]], n: int,
                      ids: Optional[Sequence[str]]) -> Dict[str, Any]:
    """--candidates, --exclude and --dedup (else the manifest's), read and checked."""
    rec = (man or {}).get("constraints") or {}
    out: Dict[str, Any] = {"candidates": None, "exclude": None, "dedup": None, "paths": {}}
    for key in ("candidates", "exclude"):
        path = getattr(args, key, None)
        if path:
            out[key] = read_index_file(path, n, ids, key)
            out["paths"][key] = path
        elif rec.get(key):
            out[key] = np.asarray(rec[key]["indices"], dtype=np.int64)
            out["paths"][key] = rec[key].get("path")
    raw = getattr(args, "dedup", None)
    if raw is not None:
        try:
            t = float(raw)
        except ValueError:
            raise UserError(f"--dedup must be a number in (0, 1], got {raw!r}") from None
        if not math.isfinite(t) or not 0 < t <= 1:
            raise UserError(f"--dedup must be a number in (0, 1], got {raw!r}")
        out["dedup"] = t
    elif rec.get("dedup") is not None:
        out["dedup"] = float(rec["dedup"])
    return out


def _constraints_record(c: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest's ``constraints`` entry (empty when none is set)."""
    if c["candidates"] is None and c["exclude"] is None and c["dedup"] is None:
        return {}
    rec: Dict[str, Any] = {"dedup": c["dedup"]}
    for key in ("candidates", "exclude"):
        p = c["paths"].get(key)
        rec[key] = None if c[key] is None else {"path": str(Path(p).resolve()) if p else None,
                                                "indices": [int(i) for i in c[key]]}
    return {"constraints": rec}


# -- the verb ------------------------------------------------------------------------------------

def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Carry out ``bilaf select`` (see ``bilaf select --help``). Returns the exit code."""
    from ..constraints import constrained_select
    from ..manifest import (build_manifest, features_location, features_sha256, indices_sha256, manifest_path_for,
                            read_manifest, write_manifest)
    from ..selectors import get_selector_class
    from ..validation import check_budget, check_features
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
    if budget == 1.0 and isinstance(budget, float):
        budget = n
    count = check_budget(budget, n)
    seed = args.seed if args.seed is not None else (man.get("seed") if man else 0)
    params: Dict[str, Any] = {}
    if man is not None and method == man["method"]:
        known = get_selector_class(method)._param_names()
        unknown = sorted(set(man["params"]) - set(known))
        if unknown:
            raise UserError(f"the manifest's option(s) {', '.join(unknown)} are not options of method {method!r} "
                            "in this version of bilaf")
        params.update(man["params"])
    params.update(selector_params(args, method, n, ids))
    params["verbose"] = bool(args.progress or (not args.quiet and sys.stderr.isatty()))
    labeled = None
    labeled_path = None
    if args.labeled:
        labeled_path = args.labeled
        labeled = read_index_file(args.labeled, n, ids, "labeled")
    elif man is not None and man.get("labeled"):
        labeled = np.asarray(man["labeled"]["indices"], dtype=np.int64)
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
        result = constrained_select(selector, X, count, labeled=labeled, candidates=constraints["candidates"],
                                    exclude=constraints["exclude"], dedup=constraints["dedup"])
    t_sel = time.perf_counter() - t0
    for w in caught:
        if issubclass(w.category, UserWarning):
            _say(args, f"bilaf select: note: {w.message}")
    timings["selection"] = {**result.timings, "total": t_sel}

    same = None
    if man is not None:
        same = indices_sha256(result.indices) == man.get("result", {}).get("indices_sha256")

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
                                      **_constraints_record(constraints)} or None)
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
