"""The comparison harness: selection methods x budgets x seeds -> accuracy table and plot.

Every method sees the same pool, the same test set, the same budgets and the
same seeds; each (method, budget, seed) selection is made once with
:func:`bilaf.select` and then scored by every requested protocol
(:mod:`bilaf.evaluation`). A method that fails is recorded (with its error)
and the run goes on. Outputs are written atomically::

    from bilaf.bench import run_bench
    res = run_bench(X, y, X_test, y_test, methods=["random", "bilaf", "bilaf:n_cores=50"],
                    budgets=["1%", "2%"], seeds=5, protocols=["linear", "knn"])
    print(res.to_markdown())
    res.write("results", "cifar10")   # cifar10.md, cifar10.csv, cifar10_runs.csv, cifar10.png

Why one module of this size: method specs, the run loop and the renderers (Markdown, CSV, plot) share
BenchResult; the split into spec / run / report is open in issue 21.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ValidationError, escape
from .evaluation import FEATURE_PROTOCOLS, evaluate_features
from .evaluation._checks import check_labels
from .params import param_table, parse_option, parse_text_value, validate_params
from .result import atomic_path, atomic_write
from .selectors import METHODS, get_selector_class
from .validation import budget_count, check_features, parse_budget

__all__ = ["MethodSpec", "Budget", "BenchResult", "parse_methods", "parse_method_spec", "parse_budgets",
           "parse_seeds", "run_bench", "RUN_FIELDS", "SUMMARY_FIELDS"]

RUN_FIELDS = ["method", "budget", "budget_count", "seed", "protocol", "accuracy", "select_seconds",
              "eval_seconds", "error", "notes", "host", "code"]
SUMMARY_FIELDS = ["protocol", "method", "budget", "budget_count", "n_runs", "n_failed", "mean", "std",
                  "select_seconds_mean"]
PROTOCOL_TITLES = {"linear": "linear probe", "knn": "kNN (k=20, cosine, weighted)", "finetune": "finetuning"}


# -- specs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodSpec:
    """A selection method with fixed hyper-parameters, e.g. ``bilaf:n_cores=50,normalize=true``.

    Attributes
    ----------
    label : str
        How the method is named in tables and plots (the spec as written).
    method : str
        A registered method name (:data:`bilaf.METHODS`).
    params : dict
        Constructor arguments of the selector.
    """

    label: str
    method: str
    params: Dict[str, Any] = field(default_factory=dict)


def parse_method_spec(spec: Union[str, MethodSpec]) -> MethodSpec:
    """Parse ``NAME`` or ``NAME:key=value,key=value``.

    Each value is read by the selector's parameter table, as the command line
    reads its flags (:func:`bilaf.params.parse_option`): ``none`` is None for
    an option that takes None and has no ``"none"`` choice, a percentage works
    where the command line takes one, and a bad value fails here, before any
    work. Names are checked against the table too (:func:`parse_methods`).
    """
    if isinstance(spec, MethodSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationError(f"a method spec must be a non-empty string like 'bilaf:n_cores=50', got {spec!r}")
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in METHODS:
        raise ValidationError(f"unknown method {name!r} in {text!r}; choose one of {', '.join(METHODS)}")
    params: Dict[str, Any] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key.isidentifier():
                raise ValidationError(f"bad option {item.strip()!r} in method spec {text!r}; write key=value")
            if key == "random_state":
                raise ValidationError(f"method spec {text!r}: the seed comes from --seeds, not random_state")
            params[key] = value
    try:
        table = param_table(get_selector_class(name))
    except ImportError:  # a selector this installation cannot import: its runs fail later, one by one
        table = {}
    try:
        params = {k: parse_option(k, v, table[k]) if k in table else parse_text_value(v) for k, v in params.items()}
    except ValidationError as exc:  # a spec names options as Python does (key=value): so does its error
        raise type(exc)(escape(f"method spec {text!r}: {exc.render()}")) from None
    return MethodSpec(label=text, method=name, params=params)


def _check_spec_params(spec: MethodSpec) -> None:
    """Unknown constructor arguments fail here; a selector that cannot be imported fails later, per run."""
    try:
        cls = get_selector_class(spec.method)
    except ImportError:
        return
    try:
        validate_params(cls, spec.params, owner=f"method spec {spec.label!r}", exclude=("random_state",))
    except ValidationError as exc:
        if exc.refs:  # a bad value: name it as the spec does
            raise type(exc)(escape(f"method spec {spec.label!r}: {exc.render()}")) from None
        raise


def parse_methods(methods: Union[str, Iterable[Union[str, MethodSpec]]]) -> List[MethodSpec]:
    """Parse a list of method specs, or one comma-separated string of them.

    In a string, a comma followed by ``key=value`` continues the previous spec:
    ``"random,bilaf:n_cores=50,normalize=true,kmeans"`` is three methods.
    """
    if isinstance(methods, str):
        parts: List[str] = []
        for tok in methods.split(","):
            tok = tok.strip()
            if not tok:
                continue
            if "=" in tok and ":" not in tok and parts:
                parts[-1] += "," + tok
            else:
                parts.append(tok)
        items: List[Union[str, MethodSpec]] = parts
    else:
        items = list(methods)
    specs = [parse_method_spec(m) for m in items]
    if not specs:
        raise ValidationError("no methods given")
    labels = [s.label for s in specs]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ValidationError(f"method(s) listed twice: {', '.join(dup)}")
    for s in specs:
        _check_spec_params(s)
    return specs


@dataclass(frozen=True)
class Budget:
    """A budget as written (``"0.5%"``, ``"0.01"``, ``"250"``) and its value (fraction or count)."""

    label: str
    value: Union[int, float]

    def count(self, n_samples: int) -> int:
        return budget_count(self.value, n_samples)


def _parse_budget(token: Union[str, int, float, Budget]) -> Budget:
    """A budget as written (the command line's rule, :func:`bilaf.validation.parse_budget`), labelled."""
    if isinstance(token, Budget):
        return token
    if isinstance(token, (bool, np.bool_)):
        raise ValidationError(f"bad budget {token!r}")
    if isinstance(token, numbers.Real) and not isinstance(token, numbers.Integral) and not 0 < float(token) < 1:
        raise ValidationError(f"bad budget {token!r}: a float budget is a fraction and must lie in (0, 1); "
                              "pass an int for a count")
    value = parse_budget(token if isinstance(token, numbers.Real) else str(token))
    if isinstance(value, numbers.Integral):
        return Budget(str(int(value)), int(value))
    return Budget(f"{100 * float(value):g}%", float(value))


def parse_budgets(budgets: Union[str, Iterable[Any]]) -> List[Budget]:
    """Parse budgets: a comma-separated string or a list of percentages, fractions or counts."""
    items = [t for t in budgets.split(",") if t.strip()] if isinstance(budgets, str) else list(budgets)
    out = [_parse_budget(t) for t in items]
    if not out:
        raise ValidationError("no budgets given")
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        raise ValidationError(f"a budget is listed twice: {', '.join(labels)}")
    return out


def parse_seeds(seeds: Union[int, str, Iterable[int]]) -> List[int]:
    """``5`` or ``"5"`` -> seeds 0..4; ``"0,3,7"``, ``"3,"`` or a list -> those seeds; ``"3-4"`` -> seeds 3 and 4.

    A lone number is a count, so a single seed other than 0 is written ``"3,"`` or ``"3-3"``.
    """
    if isinstance(seeds, str):
        text = seeds.strip()
        try:
            if "," in text or "-" in text:
                seeds = []
                for part in (p.strip() for p in text.split(",")):
                    if not part:
                        continue
                    lo, sep, hi = part.partition("-")
                    if sep and (not lo.strip().isdigit() or not hi.strip().isdigit() or int(hi) < int(lo)):
                        raise ValueError
                    seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
            elif text.isdigit():
                seeds = int(text)
            else:
                raise ValueError
        except ValueError:
            raise ValidationError(f"bad seeds {text!r}: a count ('5' = 0..4), a list ('0,1,2', or '3,' for seed 3 alone) "
                             f"or a range ('3-4')") from None
    if isinstance(seeds, bool):
        raise ValidationError(f"bad seeds {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if int(seeds) < 1:
            raise ValidationError(f"the number of seeds must be at least 1, got {seeds}")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise ValidationError(f"seeds must be distinct non-negative ints, got {out}")
    return out


# -- results ---------------------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """Every run of a bench, and the tables and plot made from them.

    Attributes
    ----------
    runs : list of dict
        One row per (method, budget, seed, protocol) with the fields of
        :data:`RUN_FIELDS`; ``accuracy`` is a fraction (NaN when ``error``).
    methods, budgets, seeds, protocols
        What was asked for, in order (the table's row and column order).
    meta : dict
        Pool and test sizes, feature width, the command, wall time...
    other_runs : list of dict
        Earlier runs outside this grid (another method, budget, seed or
        protocol, read back for ``resume``): written back to the runs file
        untouched, so resuming with a smaller grid never deletes work, but
        left out of the tables.
    """

    runs: List[Dict[str, Any]]
    methods: List[str]
    budgets: List[str]
    seeds: List[int]
    protocols: List[str]
    meta: Dict[str, Any] = field(default_factory=dict)
    other_runs: List[Dict[str, Any]] = field(default_factory=list)

    # -- aggregation --------------------------------------------------------------------
    def _cell(self, protocol: str, method: str, budget: str) -> List[Dict[str, Any]]:
        return [r for r in self.runs if r["protocol"] == protocol and r["method"] == method and r["budget"] == budget]

    def summary(self) -> List[Dict[str, Any]]:
        """One row per (protocol, method, budget): mean and sample std (ddof=1) of the accuracy in %."""
        rows = []
        for p in self.protocols:
            for m in self.methods:
                for b in self.budgets:
                    cell = self._cell(p, m, b)
                    if not cell:
                        continue
                    ok = [100.0 * float(r["accuracy"]) for r in cell if not r["error"]]
                    secs = [float(r["select_seconds"]) for r in cell
                            if r["select_seconds"] is not None and not math.isnan(float(r["select_seconds"]))]
                    rows.append({
                        "protocol": p, "method": m, "budget": b, "budget_count": cell[0]["budget_count"],
                        "n_runs": len(ok), "n_failed": len(cell) - len(ok),
                        "mean": float(np.mean(ok)) if ok else float("nan"),
                        "std": float(np.std(ok, ddof=1)) if len(ok) > 1 else (0.0 if ok else float("nan")),
                        "select_seconds_mean": float(np.mean(secs)) if secs else float("nan"),
                    })
        return rows

    def failures(self) -> List[Tuple[str, str, int, str]]:
        """Distinct (method, budget, seed, error) of failed runs."""
        seen = []
        for r in self.runs:
            if r["error"]:
                key = (r["method"], r["budget"], int(r["seed"]), r["error"])
                if key not in seen:
                    seen.append(key)
        return seen

    def to_markdown(self, *, title: Optional[str] = None, digits: int = 1, reference: Optional[str] = None) -> str:
        """Tables of accuracy (%) mean ± std, one per protocol, best mean per budget in bold, then each method's
        paired difference to ``reference`` (default ``meta["reference"]``, else the first method) per budget,
        with its 95% confidence interval over the seeds both have (:mod:`bilaf.stats`)."""
        summ = {(r["protocol"], r["method"], r["budget"]): r for r in self.summary()}
        counts = {}
        for r in self.runs:
            counts.setdefault(r["budget"], r["budget_count"])
        lines: List[str] = []
        if title:
            lines += [f"# {title}", ""]
        meta = self.meta
        if meta:
            desc = []
            if "n_pool" in meta:
                desc.append(f"pool {meta['n_pool']:,} x {meta.get('dim', '?')}")
            if "n_test" in meta:
                desc.append(f"test {meta['n_test']:,}")
            desc.append(f"seeds {', '.join(map(str, self.seeds))}")
            lines += ["Accuracy (%) on the test set, mean ± std over seeds; " + "; ".join(desc) + ".", ""]
            if meta.get("command"):
                lines += ["Command:", "", "```", str(meta["command"]), "```", ""]
        head = ["method"] + [f"{b} ({counts.get(b, '?')})" for b in self.budgets]
        for p in self.protocols:
            lines += [f"## {PROTOCOL_TITLES.get(p, p)}", "", "| " + " | ".join(head) + " |",
                      "|" + "---|" * len(head)]
            best = {}
            for b in self.budgets:
                means = [summ[(p, m, b)]["mean"] for m in self.methods if (p, m, b) in summ]
                means = [x for x in means if not math.isnan(x)]
                best[b] = round(max(means), digits) if means else None
            for m in self.methods:
                cells = [m]
                for b in self.budgets:
                    s = summ.get((p, m, b))
                    if s is None:
                        cells.append("")
                    elif s["n_runs"] == 0:
                        cells.append(f"failed ({s['n_failed']})")
                    else:
                        txt = f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["n_runs"] > 1 else "")
                        if best[b] is not None and round(s["mean"], digits) == best[b]:
                            txt = f"**{txt}**"
                        if s["n_failed"]:
                            txt += f" ({s['n_runs']}/{s['n_runs'] + s['n_failed']} runs)"
                        elif s["n_runs"] < len(self.seeds):
                            txt += f" (n={s['n_runs']})"
                        cells.append(txt)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += self._paired_markdown(reference, counts, digits)
        # selection time
        sel = [s for s in self.summary() if s["protocol"] == self.protocols[0]]
        if sel:
            lines += ["## selection time (s, mean over seeds)", "", "| " + " | ".join(head) + " |",
                      "|" + "---|" * len(head)]
            for m in self.methods:
                cells = [m]
                for b in self.budgets:
                    s = summ.get((self.protocols[0], m, b))
                    v = s["select_seconds_mean"] if s else float("nan")
                    cells.append("" if math.isnan(v) else f"{v:.1f}")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        fails = self.failures()
        if fails:
            lines += ["## failures", ""]
            by_method: Dict[str, str] = {}
            for m, b, s, err in fails:
                by_method.setdefault(m, f"{err} (first at budget {b}, seed {s})")
            n_by = {m: sum(1 for f in fails if f[0] == m) for m in by_method}
            for m, msg in by_method.items():
                lines.append(f"- `{m}`: {n_by[m]} failed selection(s): {msg}")
            lines.append("")
        hosts: Dict[str, List[float]] = {}
        for r in self.runs:
            if r["protocol"] == self.protocols[0]:
                secs = sum(float(r[k]) for k in ("select_seconds", "eval_seconds")
                           if r[k] is not None and not math.isnan(float(r[k])))
                secs += sum(float(q["eval_seconds"]) for q in self.runs
                            if q is not r and q["method"] == r["method"] and q["budget"] == r["budget"]
                            and q["seed"] == r["seed"] and q["eval_seconds"] is not None
                            and not math.isnan(float(q["eval_seconds"])))
                hosts.setdefault(r.get("host") or "unrecorded", []).append(secs)
        codes = sorted({str(r.get("code") or "") for r in self.runs} - {""})
        if codes:
            lines += ["Code: " + ", ".join(f"`{c}`" for c in codes) + ".", ""]
        if hosts:
            lines += ["Compute: " + "; ".join(f"{len(v)} selections on {h}, {sum(v):.0f} s of selection and "
                                              f"evaluation" for h, v in hosts.items()) + ".", ""]
        if self.other_runs:
            lines += [f"{len(self.other_runs)} earlier run(s) outside this table's methods, budgets, seeds and "
                      f"protocols are kept in the runs file.", ""]
        if meta.get("wall_seconds") is not None:
            extra = f" on {meta['host']}" if meta.get("host") else ""
            lines += [f"Wall time of the last invocation: {meta['wall_seconds']:.0f} s{extra}.", ""]
        return "\n".join(lines)

    def _paired_markdown(self, reference: Optional[str], counts: Dict[str, Any], digits: int) -> List[str]:
        from .stats import matrix_markdown

        ref = reference or self.meta.get("reference") or (self.methods[0] if self.methods else None)
        if ref is None or len(self.methods) < 2:
            return []
        if ref not in self.methods:
            raise ValidationError(f"reference method {ref!r} is not in this bench ({', '.join(self.methods)})")
        labels = {b: f"{b} ({counts.get(b, '?')})" for b in self.budgets}
        lines: List[str] = []
        for p in self.protocols:
            table = matrix_markdown(self.runs, self.methods, ref, self.budgets, protocol=p, digits=digits,
                                    budget_labels=labels)
            if table:
                lines += [f"## {PROTOCOL_TITLES.get(p, p)}: paired difference to {ref} (points)", "",
                          f"Method minus `{ref}`, seed by seed over the seeds both have: mean [95% CI, Student t]; "
                          "W / L: the interval lies above / below 0.", "", table]
        return lines

    def runs_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=RUN_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in list(self.runs) + list(self.other_runs):
            w.writerow({k: _fmt(r.get(k)) for k in RUN_FIELDS})
        return buf.getvalue()

    def summary_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self.summary():
            w.writerow({k: _fmt(r.get(k)) for k in SUMMARY_FIELDS})
        return buf.getvalue()

    def figure(self) -> Any:
        """The accuracy-vs-budget figure (a matplotlib ``Figure``): one line per method (mean ± std), one panel
        per protocol, the legend beside the panels (never over a point), a title (``meta["title"]`` or one
        naming the budget)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        summ = self.summary()
        n = len(self.protocols)
        fig, axes = plt.subplots(1, n, figsize=(5.2 * n + 1.8, 4.4), squeeze=False)
        markers = "osD^v<>pP*hX"
        n_m = len(self.methods)
        counts = sorted({int(r["budget_count"]) for r in summ})
        lab = {int(r["budget_count"]): r["budget"] for r in summ}
        for ax, p in zip(axes[0], self.protocols):
            for i, m in enumerate(self.methods):
                rows = [r for r in summ if r["protocol"] == p and r["method"] == m and r["n_runs"] > 0]
                if not rows:
                    continue
                dodge = 1.0 + 0.012 * (i - (n_m - 1) / 2)  # side by side, so the error bars stay readable
                xs = [int(r["budget_count"]) * dodge for r in rows]
                ours = m.split(":")[0] == "bilaf"
                ax.errorbar(xs, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], label=m,
                            marker=markers[i % len(markers)], capsize=2.5, linewidth=2.2 if ours else 1.2,
                            markersize=5, elinewidth=0.9, alpha=0.95)
            if len(counts) > 1 and counts[-1] / max(1, counts[0]) > 4:
                ax.set_xscale("log")
            if len(counts) == 1 and counts[0] > 0:  # one budget: centre the points, well inside the frame
                half = max(0.06, 0.012 * n_m)
                ax.set_xlim(counts[0] * (1 - half), counts[0] * (1 + half))
            ax.set_xticks(counts)
            ax.set_xticklabels([f"{c}\n{lab[c]}" if lab[c] != str(c) else str(c) for c in counts])
            ax.minorticks_off()
            ax.set_xlabel("labeled samples (budget)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(PROTOCOL_TITLES.get(p, p))
            ax.grid(True, alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            axes[0][-1].legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                               borderaxespad=0.0)
        title = self.meta.get("title")
        if not title and counts:
            title = (f"Test accuracy at a budget of {counts[0]}" + (f" ({lab[counts[0]]})" if lab[counts[0]] !=
                                                                   str(counts[0]) else "")
                     if len(counts) == 1 else "Test accuracy vs labeling budget")
        if title:
            fig.suptitle(str(title))
        fig.tight_layout()
        return fig

    def plot(self, path: Union[str, Path]) -> Path:
        """Write :meth:`figure` to ``path`` (format by suffix), atomically."""
        import matplotlib.pyplot as plt

        path = Path(path)
        fig = self.figure()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path

    def write(self, out_dir: Union[str, Path], name: str = "bench", *, plot: bool = True,
              title: Optional[str] = None) -> Dict[str, Path]:
        """Write ``name.md``, ``name.csv`` (summary), ``name_runs.csv`` and ``name.png`` (each atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"runs": out / f"{name}_runs.csv", "csv": out / f"{name}.csv", "md": out / f"{name}.md"}
        with atomic_write(paths["runs"]) as fh:
            fh.write(self.runs_csv())
        with atomic_write(paths["csv"]) as fh:
            fh.write(self.summary_csv())
        with atomic_write(paths["md"]) as fh:
            fh.write(self.to_markdown(title=title or self.meta.get("title")))
        if plot:
            paths["png"] = self.plot(out / f"{name}.png")
        return paths


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def read_runs_csv(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """Read the runs written by :meth:`BenchResult.write` (for ``resume``)."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            missing = set(RUN_FIELDS) - set(r) - {"host", "code"}
            if missing:
                raise ValidationError(f"{path} is not a bench runs file (no column {sorted(missing)[0]!r})")
            rows.append({
                "method": r["method"], "budget": r["budget"], "budget_count": int(r["budget_count"]),
                "seed": int(r["seed"]), "protocol": r["protocol"],
                "accuracy": float(r["accuracy"]) if r["accuracy"] else float("nan"),
                "select_seconds": float(r["select_seconds"]) if r["select_seconds"] else float("nan"),
                "eval_seconds": float(r["eval_seconds"]) if r["eval_seconds"] else float("nan"),
                "error": r["error"], "notes": r["notes"], "host": r.get("host", ""), "code": r.get("code", ""),
            })
    return rows


# -- the run ---------------------------------------------------------------------------------------------
def code_version() -> str:
    """``bilaf <version>``, plus the git commit (and ``+changes`` when src/ differs from it) in a checkout."""
    import subprocess

    from . import __version__

    text = f"bilaf {__version__}"
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0 and commit.stdout.strip():
            text += f" {commit.stdout.strip()}"
            dirty = subprocess.run(["git", "status", "--porcelain", "--", str(src)], cwd=src, capture_output=True,
                                   text=True, timeout=10)
            if dirty.returncode == 0 and dirty.stdout.strip():
                text += "+changes"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}"[:300] if msg else type(exc).__name__


def run_bench(X: Any, y: Any, test_X: Any, test_y: Any, methods: Any, budgets: Any, seeds: Any = 5,
              protocols: Sequence[str] = ("linear", "knn"), *, device: str = "cpu",
              eval_params: Optional[Dict[str, Dict[str, Any]]] = None, previous: Optional[Sequence[Dict]] = None,
              on_progress: Optional[Callable[["BenchResult"], None]] = None, verbose: bool = True,
              log: Optional[Callable[[str], None]] = None, meta: Optional[Dict[str, Any]] = None,
              run_missing: bool = True, finetuner: Optional[Callable[[np.ndarray, np.ndarray, int], float]] = None
              ) -> BenchResult:
    """Run ``methods x budgets x seeds`` selections and score each with every protocol.

    Parameters
    ----------
    X : array-like of shape (n_pool, d)
        Pool features (a float16 memory map is fine; it is read once).
    y : array-like of int, shape (n_pool,)
        Pool labels (used only to score the selected rows; selection never sees them).
    test_X, test_y
        The labeled test set.
    methods : str or list of str or MethodSpec
        Specs such as ``"random"``, ``"bilaf:n_cores=50"`` (see :func:`parse_methods`).
    budgets : str or list
        ``"0.5%,1%"``, fractions or counts (see :func:`parse_budgets`).
    seeds : int, str or list of int, default=5
        A count (seeds 0..n-1) or the seeds. Seed ``s`` is the ``random_state``
        of every method's selection and of every protocol.
    protocols : sequence of {"linear", "knn", "finetune"}
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where selectors that take a ``device`` run, and where kNN runs. With
        ``"cuda"`` the pool is moved to the GPU once.
    eval_params : dict or None
        Extra options per protocol, e.g. ``{"knn": {"k": 10}}``.
    previous : list of run dicts or None
        Runs already done (:func:`read_runs_csv`): those cells are kept and
        not run again (resume). Runs outside the grid asked for are kept in
        ``other_runs`` (written back, not tabulated).
    on_progress : callable or None
        Called with the partial result after every selection (e.g. to save it).
    verbose : bool, default=True
        A progress bar and one log line per selection on stderr.
    log : callable or None
        Where log lines go (default: stderr).
    meta : dict or None
        Stored in the result (command, title...).
    run_missing : bool, default=True
        ``False``: only gather ``previous`` runs into tables (no selection is
        made; cells without runs stay empty or show fewer seeds).
    finetuner : callable or None
        Needed by the ``"finetune"`` protocol: ``finetuner(rows, labels, seed)
        -> accuracy`` trains on the selected pool rows (e.g. a
        :class:`bilaf.evaluation.CachedFinetuner`); seed ``s`` fixes its
        randomness, the same for every method.

    Returns
    -------
    BenchResult
    """
    specs = parse_methods(methods)
    blist = parse_budgets(budgets)
    slist = parse_seeds(seeds)
    protocols = list(protocols)
    if not protocols:
        raise ValidationError("no evaluation protocols given")
    for p in protocols:
        if p == "finetune":
            if finetuner is None:
                raise ValidationError("the finetune protocol needs a finetuner (bilaf.evaluation.CachedFinetuner): "
                                      "it trains the backbone on the raw samples, not on the features")
        elif p not in FEATURE_PROTOCOLS:
            raise ValidationError(f"unknown protocol {p!r} for a feature bench; choose from "
                                  f"{', '.join(FEATURE_PROTOCOLS)} or finetune")
    if len(set(protocols)) != len(protocols):
        raise ValidationError("a protocol is listed twice")
    X = check_features(X, name="pool features")
    test_X = check_features(test_X, min_samples=1, name="test features")
    n = int(X.shape[0])
    if int(test_X.shape[1]) != int(X.shape[1]):
        raise ValidationError(f"pool features have {X.shape[1]} columns but test features have {test_X.shape[1]}")
    y = check_labels(y, n, name="pool labels", rows_name="pool rows")
    test_y = check_labels(test_y, int(test_X.shape[0]), name="test labels", rows_name="test rows")
    counts = {b.label: b.count(n) for b in blist}
    eval_params = dict(eval_params or {})
    unknown = sorted(set(eval_params) - set(protocols))
    if unknown:
        raise ValidationError(f"eval_params for protocol(s) not run: {', '.join(unknown)}")

    import torch

    from .api import select
    from .kernels import resolve_device

    dev = resolve_device(device)
    Xn = np.ascontiguousarray(np.asarray(X, dtype=np.float32)) if not isinstance(X, torch.Tensor) \
        else X.detach().to("cpu", torch.float32).numpy()
    Xsel: Any = torch.from_numpy(Xn).to(dev) if dev.type != "cpu" else Xn
    Tn = np.ascontiguousarray(np.asarray(test_X, dtype=np.float32)) if not isinstance(test_X, torch.Tensor) \
        else test_X.detach().to("cpu", torch.float32).numpy()
    Tsel: Any = torch.from_numpy(Tn).to(dev) if dev.type != "cpu" else Tn

    labels = [s.label for s in specs]
    result = BenchResult(runs=[], methods=labels, budgets=[b.label for b in blist], seeds=slist,
                         protocols=protocols, meta={"n_pool": n, "n_test": int(Tn.shape[0]), "dim": int(Xn.shape[1]),
                                                    "device": str(dev), **(meta or {})})
    done = {}
    for r in previous or []:
        if r["method"] in labels and r["budget"] in counts and r["seed"] in slist and r["protocol"] in protocols:
            if int(r["budget_count"]) != counts[r["budget"]]:
                raise ValidationError(f"the previous runs were made on another pool (budget {r['budget']} was "
                                 f"{r['budget_count']} samples, now {counts[r['budget']]}); use a new output name")
            done[(r["method"], r["budget"], r["seed"], r["protocol"])] = r
        else:
            result.other_runs.append(r)
    host = str(result.meta.get("host") or dev)
    code = code_version()
    result.meta.setdefault("code", code)
    cells = [(s, b, seed) for s in specs for b in blist for seed in slist]  # method by method
    t_start = time.perf_counter()
    from .kernels import progress as _progress

    bar = _progress(total=len(cells), desc="bench", enabled=verbose, unit="selection")
    if log is None:
        if hasattr(bar, "write"):  # a tqdm bar: print above it
            log = lambda s: bar.write(s, file=sys.stderr)  # noqa: E731
        else:
            log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        for i, (spec, b, seed) in enumerate(cells, 1):
            keys = [(spec.label, b.label, seed, p) for p in protocols]
            if all(k in done and not done[k]["error"] for k in keys) or not run_missing:
                result.runs += [done[k] for k in keys if k in done]
                bar.update(1)
                continue
            count = counts[b.label]
            params = dict(spec.params)
            err = ""
            notes = ""
            idx = None
            t0 = time.perf_counter()
            try:
                cls = get_selector_class(spec.method)
                if "device" in cls._param_names() and "device" not in params:
                    params["device"] = str(dev) if dev.type != "cpu" else "cpu"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    res = select(Xsel, count, method=spec.method, random_state=seed, **params)
                idx = np.asarray(res.indices, dtype=np.int64)
                said = [str(w.message) for w in caught] + [str(m) for m in (getattr(res, "notes", None) or [])]
                notes = "; ".join(dict.fromkeys(" ".join(m.split()) for m in said))[:300]
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # a failing method is reported, not fatal
                err = _one_line(exc)
            t_sel = time.perf_counter() - t0
            accs = {}
            for p in protocols:
                acc, e2, t_ev = float("nan"), err, float("nan")
                if idx is not None:
                    t1 = time.perf_counter()
                    try:
                        kw = dict(eval_params.get(p, {}))
                        if p == "finetune":
                            acc = float(finetuner(idx, y[idx], seed))
                        elif p == "knn":
                            kw.setdefault("device", str(dev))
                            acc = evaluate_features(p, Xsel if dev.type != "cpu" else Xn, y, idx, Tsel, test_y,
                                                    random_state=seed, params=kw)
                        else:
                            if p == "linear":
                                kw.setdefault("device", str(dev))
                            acc = evaluate_features(p, Xn, y, idx, Tn, test_y, random_state=seed, params=kw)
                    except (KeyboardInterrupt, MemoryError):
                        raise
                    except Exception as exc:
                        e2 = _one_line(exc)
                    t_ev = time.perf_counter() - t1
                accs[p] = acc
                result.runs.append({"method": spec.label, "budget": b.label, "budget_count": count, "seed": seed,
                                    "protocol": p, "accuracy": acc, "select_seconds": t_sel if not err else float("nan"),
                                    "eval_seconds": t_ev, "error": e2, "notes": notes, "host": host,
                                    "code": code})
            bar.update(1)
            if verbose:
                what = "  ".join(f"{p} {100 * a:.1f}" for p, a in accs.items() if not math.isnan(a))
                status = f"FAILED ({err})" if err else f"{what}  (select {t_sel:.1f} s)"
                log(f"[{i}/{len(cells)}] {spec.label} {b.label} ({count}) seed {seed}: {status}")
            result.meta["wall_seconds"] = time.perf_counter() - t_start
            if on_progress is not None:
                on_progress(result)
    finally:
        bar.close()
    result.meta["wall_seconds"] = time.perf_counter() - t_start if run_missing else None
    if verbose:
        failed = sorted({f[0] for f in result.failures()})
        if failed:
            log(f"bench: {len(result.failures())} failed selection(s), in: {', '.join(failed)} (see the table)")
    return result
