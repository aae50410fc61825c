"""Where BiLAF's automatic K stands: a table and a plot from the quality benchmarks' summary files.

For every data set, protocol and budget it compares the default BiLAF (``n_cores="auto"``, the ``bilaf``
row of ``bilaf bench``) with the best of the references the issue names: k-means, ActiveFT and BiLAF with
the paper's fixed K (``bilaf:n_cores=0.001`` and ``bilaf:n_cores=0.005``, 0.1% and 0.5% of the pool).
A cell counts as a loss when auto is below that best by more than the larger of the two standard errors
of the means (mean over seeds; std / sqrt(seeds)), a win when above it by as much, else a tie.

It also puts the same target to every one of those methods (each against the best of the other four) and to
extra methods a bench may hold (``EXTRA``: spherical k-means, and the default BiLAF before 2026-12-02, whose
cores came from ActiveFT), to show whether any fixed method meets it.

Example (writes benchmarks/results/auto_k.md and auto_k.png)::

    python benchmarks/auto_k_report.py trec6 sst2 synth100 synth500 cifar10
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

RESULTS = Path(__file__).resolve().parent / "results"
AUTO = "bilaf"
REFERENCES = ("kmeans", "activeft", "bilaf:n_cores=0.001", "bilaf:n_cores=0.005")
# methods also put against the same target ("Could one fixed method meet the target?"), where a bench has them
EXTRA = ("kmeans:normalize=true", "bilaf:core_selector=activeft")


def _budget_key(b: str) -> float:
    return float(b.rstrip("%")) if b.endswith("%") else float(b)


def load(name: str) -> Dict[Tuple[str, str, str], dict]:
    cells = {}
    with open(RESULTS / f"{name}.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["mean"] in ("", "nan") or int(r["n_runs"]) - int(r["n_failed"] or 0) < 1:
                continue
            cells[(r["protocol"], r["method"], r["budget"])] = r
    return cells


def compare(names: List[str]) -> List[dict]:
    rows = []
    for name in names:
        cells = load(name)
        for protocol in sorted({k[0] for k in cells}):
            budgets = sorted({k[2] for k in cells if k[0] == protocol}, key=_budget_key)
            for b in budgets:
                auto = cells.get((protocol, AUTO, b))
                refs = {m: cells[(protocol, m, b)] for m in REFERENCES if (protocol, m, b) in cells}
                if auto is None or not refs:
                    continue
                best_m, best = max(refs.items(), key=lambda kv: float(kv[1]["mean"]))

                diff = float(auto["mean"]) - float(best["mean"])
                verdict = _verdict(auto, best)
                every = {AUTO: auto, **refs, **{m: cells[(protocol, m, b)] for m in EXTRA if (protocol, m, b) in cells}}
                rows.append(dict(data=name, protocol=protocol, budget=b, auto=float(auto["mean"]),
                                 auto_std=float(auto["std"] or 0), seeds=int(auto["n_runs"]), best_method=best_m,
                                 best=float(best["mean"]), diff=diff, verdict=verdict,
                                 refs={m: float(r["mean"]) for m, r in refs.items()}, cells=every))
    return rows


def _se(r: dict) -> float:
    n = max(1, int(r["n_runs"]) - int(r["n_failed"] or 0))
    return float(r["std"] or 0.0) / math.sqrt(n)


def _verdict(a: dict, ref: dict) -> str:
    """win / loss when ``a``'s mean is above / below ``ref``'s by more than the larger standard error, else tie."""
    d = float(a["mean"]) - float(ref["mean"])
    margin = max(_se(a), _se(ref))
    return "win" if d > margin else "loss" if d < -margin else "tie"


def one_method_against_the_rest(rows: List[dict]) -> List[dict]:
    """Each of auto, the references and the extra methods against the best of the *other* four of
    {auto, k-means, ActiveFT, K = 0.1%, K = 0.5%}, cell by cell (the issue's target, put to every method)."""
    pool = (AUTO,) + REFERENCES
    out = []
    for m in pool + EXTRA:
        tally, diffs = defaultdict(int), []
        for r in rows:
            cells = r["cells"]
            others = [cells[o] for o in pool if o != m and o in cells]
            if m not in cells or not others:
                continue
            best = max(others, key=lambda c: float(c["mean"]))
            tally[_verdict(cells[m], best)] += 1
            diffs.append(float(cells[m]["mean"]) - float(best["mean"]))
        if diffs:
            out.append(dict(method=m, cells=len(diffs), win=tally["win"], tie=tally["tie"], loss=tally["loss"],
                            mean=sum(diffs) / len(diffs), worst=min(diffs)))
    return out


def render(rows: List[dict], names: List[str], command: str) -> str:
    out = ["# Automatic K against k-means, ActiveFT and fixed-K BiLAF", "",
           "Made by `" + command + "` from the summary files of the quality benchmarks "
           "(`" + "`, `".join(f"{n}.md" for n in names) + "`, each with the command that made it). "
           "`auto` is the default BiLAF (`n_cores=\"auto\"`, `core_selector=\"auto\"`: spherical k-means cores since "
           "2026-12-02; `bilaf:core_selector=activeft` is the earlier default, ActiveFT cores); *best reference* is the best mean of k-means, "
           "ActiveFT, BiLAF with K = 0.1% of the pool and BiLAF with K = 0.5%. Accuracy in %, mean over seeds. "
           "*verdict*: loss / win when auto is below / above the best reference by more than the larger "
           "standard error of the two means, else tie.", ""]
    tally = defaultdict(lambda: defaultdict(int))
    for r in rows:
        tally[(r["data"], r["protocol"])][r["verdict"]] += 1
    out += ["## Summary", "", "| data | protocol | wins | ties | losses | mean difference (points) |", "|---|---|---|---|---|---|"]
    for (d, p), t in tally.items():
        diffs = [r["diff"] for r in rows if r["data"] == d and r["protocol"] == p]
        out.append(f"| {d} | {p} | {t['win']} | {t['tie']} | {t['loss']} | {sum(diffs) / len(diffs):+.1f} |")
    allr = [r["verdict"] for r in rows]
    out += ["", f"All cells: {allr.count('win')} wins, {allr.count('tie')} ties, {allr.count('loss')} losses; "
            f"mean difference {sum(r['diff'] for r in rows) / max(1, len(rows)):+.2f} points.", ""]
    out += ["## Against each reference alone", "",
            "The best of four references per cell is biased upwards (the largest of four noisy means), so here is auto "
            "against each of them alone, and against the extra methods, over the same cells (same verdict rule).", "",
            "| reference | cells | auto wins | ties | auto loses | mean difference (points) |", "|---|---|---|---|---|---|"]
    for m in REFERENCES + EXTRA:
        sub = [r for r in rows if m in r["cells"]]
        if not sub:
            continue
        v = [_verdict(r["cells"][AUTO], r["cells"][m]) for r in sub]
        d = [r["auto"] - float(r["cells"][m]["mean"]) for r in sub]
        out.append(f"| {m} | {len(sub)} | {v.count('win')} | {v.count('tie')} | {v.count('loss')} | "
                   f"{sum(d) / len(d):+.2f} |")
    out += ["", "## Could one fixed method meet the target?", "",
            "The issue's target (never below the best of the others in any cell, above it on average) put to every "
            "method: each against the best of the other four of auto, k-means, ActiveFT, K = 0.1% and K = 0.5%, "
            "same cells and verdict rule. Methods outside those five (spherical k-means: `kmeans:normalize=true`; the "
            "earlier default BiLAF: `bilaf:core_selector=activeft`) "
            "are put against the best of all five, on the cells where they were benched.", "",
            "| method | cells | wins | ties | losses | mean difference (points) | worst cell (points) |",
            "|---|---|---|---|---|---|---|"]
    for t in one_method_against_the_rest(rows):
        out.append(f"| {t['method']} | {t['cells']} | {t['win']} | {t['tie']} | {t['loss']} | {t['mean']:+.2f} | "
                   f"{t['worst']:+.1f} |")
    out += [""]
    out += ["## Every cell", "",
            "| data | protocol | budget | seeds | auto | k-means | ActiveFT | K=0.1% | K=0.5% | best reference | auto - best | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        refs = [f"{r['refs'][m]:.1f}" if m in r["refs"] else "" for m in REFERENCES]
        out.append(f"| {r['data']} | {r['protocol']} | {r['budget']} | {r['seeds']} | {r['auto']:.1f} ± {r['auto_std']:.1f} | "
                   + " | ".join(refs) + f" | {r['best']:.1f} ({r['best_method']}) | {r['diff']:+.1f} | {r['verdict']} |")
    return "\n".join(out) + "\n"


def plot(rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = defaultdict(list)
    for r in rows:
        series[(r["data"], r["protocol"])].append((_budget_key(r["budget"]), r["diff"]))
    for (d, p), pts in sorted(series.items()):
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o" if p == "linear" else "s",
                linestyle="-" if p == "linear" else "--", label=f"{d} ({p})")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("budget (% of the pool)")
    ax.set_ylabel("auto BiLAF minus best reference (points)")
    ax.set_title("Automatic K vs the best of k-means, ActiveFT, fixed-K BiLAF")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="bench names in benchmarks/results (NAME.csv)")
    p.add_argument("--out", default="auto_k", help="output stem in benchmarks/results")
    a = p.parse_args(argv)
    names = [n for n in a.names if (RESULTS / f"{n}.csv").exists()]
    rows = compare(names)
    command = "python benchmarks/auto_k_report.py " + " ".join(a.names)
    (RESULTS / f"{a.out}.md").write_text(render(rows, names, command))
    plot(rows, RESULTS / f"{a.out}.png")
    print(f"wrote {RESULTS / (a.out + '.md')} and .png ({len(rows)} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
