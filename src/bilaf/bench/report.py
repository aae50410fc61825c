"""A bench's result and its reports: the summary over seeds, Markdown tables, CSV files, the plot.

:class:`BenchResult` holds every run (one row per method, budget, seed and
protocol, with the fields of :data:`RUN_FIELDS`); :func:`read_runs_csv` reads
a runs file back (for ``resume``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ValidationError
from ..result import atomic_path, atomic_write

__all__ = ["BenchResult", "read_runs_csv", "RUN_FIELDS", "SUMMARY_FIELDS", "PROTOCOL_TITLES"]

RUN_FIELDS = ["method", "budget", "budget_count", "seed", "protocol", "accuracy", "select_seconds",
              "eval_seconds", "error", "notes", "host", "code"]
SUMMARY_FIELDS = ["protocol", "method", "budget", "budget_count", "n_runs", "n_failed", "mean", "std",
                  "select_seconds_mean"]
PROTOCOL_TITLES = {"linear": "linear probe", "knn": "kNN (k=20, cosine, weighted)", "finetune": "finetuning"}


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
        from ..stats import matrix_markdown

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
