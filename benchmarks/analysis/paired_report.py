"""Default BiLAF against every other method, seed by seed: paired differences on the frozen-feature tables.

Reads every committed run file of the named quality benchmarks (``NAME_runs.csv``: seeds 0-4 of every method;
``NAME_rep_runs.csv`` where it exists: seeds 5-9 of default BiLAF, k-means, ActiveFT and BiLAF with K = 0.1% and
0.5%) and writes ``benchmarks/results/paired_frozen.md``:

* per pool, protocol and budget, default BiLAF (``bilaf``) minus each other method over the seeds both have:
  mean paired difference with its 95% Student t confidence interval (``bilaf.stats.paired_table``); a win / loss
  when the interval lies above / below 0;
* per method, the summary over cells: the mean of the per-cell differences with two 95% intervals, cells as the
  unit (Student t over the cell means; the default of ``bilaf.stats.summarize``) and a seed-blocked bootstrap
  stratified by pool, with the cells' win / tie / loss counts;
* issue 17's target put to these tables: the default at least level with the best single fixed method on average
  (the lower end of the 95% interval of the mean difference above -0.5 point) and ahead of ActiveFT and k-means
  on average.

Example (writes benchmarks/results/paired_frozen.md)::

    python benchmarks/analysis/paired_report.py trec6 sst2 synth100 synth500 mnist split_blobs cifar10
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

from bilaf.bench import read_runs_csv
from bilaf.stats import format_difference, paired_table, summarize

RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULT = "bilaf"
KEYS = ("pool", "protocol", "budget")
LEVEL = -0.5  # the target's margin: "at least level" = the interval's lower end above this (points)
# the methods the issue names for "ahead on average" (k-means as benched on these pools, and spherical k-means)
AHEAD_OF = ("activeft", "kmeans", "kmeans:normalize=true")
N_BOOT = 10000
TITLE = "Default BiLAF against every method, seed by seed (frozen features)"


def load(names: Sequence[str]) -> List[Dict[str, Any]]:
    """Every run of ``NAME_runs.csv`` and ``NAME_rep_runs.csv`` (when present), with ``pool`` = NAME."""
    runs = []
    for name in names:
        path = RESULTS / f"{name}_runs.csv"
        if not path.exists():
            raise SystemExit(f"missing {path}: name a bench in benchmarks/results (NAME_runs.csv)")
        for stem in (name, f"{name}_rep"):
            p = RESULTS / f"{stem}_runs.csv"
            if p.exists():
                runs += [dict(r, pool=name, file=p.name) for r in read_runs_csv(p)]
    return runs


def _budget_key(b: str) -> float:
    return float(b.rstrip("%"))


def methods_of(runs: Sequence[Dict[str, Any]], default: str = DEFAULT) -> List[str]:
    """Methods other than the default, in order of first appearance."""
    out: List[str] = []
    for r in runs:
        if r["method"] != default and r["method"] not in out:
            out.append(r["method"])
    return out


def compare(runs: Sequence[Dict[str, Any]], names: Sequence[str], default: str = DEFAULT
            ) -> Dict[str, List[Dict[str, Any]]]:
    """``{method: paired_table rows of default minus method}``, cells ordered by pool (as named), protocol,
    budget."""
    order = {n: i for i, n in enumerate(names)}
    out = {}
    for m in methods_of(runs, default):
        cells = paired_table(runs, default, m, by=KEYS)
        if cells:
            out[m] = sorted(cells, key=lambda c: (order[c["pool"]], c["protocol"], _budget_key(c["budget"])))
    return out


def summaries(table: Dict[str, List[Dict[str, Any]]], random_state: int = 0) -> Dict[str, Dict[str, Any]]:
    """Per method: the cell-unit summary, with the seed-blocked bootstrap's interval as ``boot_lo``/``boot_hi``."""
    out = {}
    for m, cells in table.items():
        s = summarize(cells)
        b = summarize(cells, unit="seed", strata="pool", n_boot=N_BOOT, random_state=random_state)
        out[m] = dict(s, boot_lo=b["lo"], boot_hi=b["hi"], seeds=sorted({c["n"] for c in cells}),
                      pools=sorted({c["pool"] for c in cells}))
    return out


def target(table: Dict[str, List[Dict[str, Any]]], summ: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Issue 17's target on these cells.

    The *best single fixed method* is, among the methods benched in every cell the default was, the one the
    default is furthest behind (or least ahead of) on average over those cells. Choosing it on the same runs
    favours it (the best of several noisy averages), so a miss by a small margin is a weak verdict.
    """
    n_all = max(len(c) for c in table.values())
    full = [m for m, c in table.items() if len(c) == n_all]
    best = min(full, key=lambda m: summ[m]["mean"])
    rows = [("best single fixed method: " + best, best)] + [(m, m) for m in AHEAD_OF if m in summ and m != best]
    out = []
    for label, m in rows:
        s = summ[m]
        out.append(dict(label=label, method=m, cells=s["n_cells"], mean=s["mean"], lo=s["lo"], hi=s["hi"],
                        boot_lo=s["boot_lo"], boot_hi=s["boot_hi"], level=s["lo"] > LEVEL, ahead=s["lo"] > 0.0,
                        level_boot=s["boot_lo"] > LEVEL, ahead_boot=s["boot_lo"] > 0.0))
    return dict(best=best, full=full, n_cells=n_all, rows=out)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render(runs: Sequence[Dict[str, Any]], names: Sequence[str], command: str, random_state: int = 0,
           default: str = DEFAULT, title: str = TITLE) -> str:
    table = compare(runs, names, default)
    if not table:
        raise SystemExit(f"no cell has runs of both {default!r} and another method")
    summ = summaries(table, random_state)
    tgt = target(table, summ)
    files = sorted({r["file"] for r in runs})
    out = [f"# {title}", "",
           f"Made by `{command}` from the committed run files (" + ", ".join(f"`{f}`" for f in files) + "). "
           f"The default is the `{default}` row" + (" (`n_cores=\"auto\"`)" if default == DEFAULT else "") + ". "
           "Accuracy in points (%). Every method of a bench "
           "ran with the same seeds (seed s is the `random_state` of every selection and of every protocol), so "
           "each comparison is paired: in each cell (pool, protocol, budget), the difference default minus method "
           "is taken seed by seed over the seeds both have (the *seeds* columns below: more where a replicate file "
           "holds further seeds of a method), and its mean gets a 95% Student t confidence "
           "interval (`bilaf.stats.paired_table`). A cell is a **win** for the default when the interval lies "
           "above 0, a **loss** when it lies below 0, else a tie.", "",
           "## Summary over cells", "",
           "Mean over cells of the per-cell mean difference (every cell weighs the same), with two 95% intervals "
           "(`bilaf.stats.summarize`): *cells as the unit* (Student t over the cell means: the spread of the gain "
           "between settings counts, the question is \"ahead on average over settings like these?\"; cells of one "
           "pool are not independent, so it is if anything too narrow for new pools), and a *seed-blocked "
           f"bootstrap* ({N_BOOT:,} draws of whole seeds with replacement within each pool, percentile interval: "
           "only seed noise counts, the question is \"beyond seed noise on exactly these cells?\").", "",
           "| default minus | cells | pools | seeds per cell | wins | ties | losses | mean difference | "
           "95% CI, cells | 95% CI, seed bootstrap |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for m, s in sorted(summ.items(), key=lambda kv: kv[1]["mean"]):
        out.append(f"| {m} | {s['n_cells']} | {len(s['pools'])} | {'/'.join(map(str, s['seeds']))} | {s['win']} | "
                   f"{s['tie']} | {s['loss']} | {s['mean']:+.2f} | [{s['lo']:+.2f}, {s['hi']:+.2f}] | "
                   f"[{s['boot_lo']:+.2f}, {s['boot_hi']:+.2f}] |")
    out += ["", "## Issue 17's target on these tables", "",
            f"The default at least level with the best single fixed method on average (the lower end of the 95% "
            f"interval of the mean difference above {LEVEL} point) and ahead of ActiveFT and k-means on average (the "
            "interval above 0). The best single fixed method is, among the methods benched in all "
            f"{tgt['n_cells']} cells of the default ({', '.join(tgt['full'])}), the one the default is furthest "
            "behind on average; choosing it on these same runs favours it.", "",
            "| default minus | cells | mean difference | 95% CI, cells | level (> -0.5) | ahead (> 0) | "
            "95% CI, seed bootstrap | level | ahead |", "|---|---|---|---|---|---|---|---|---|"]
    for r in tgt["rows"]:
        out.append(f"| {r['label']} | {r['cells']} | {r['mean']:+.2f} | [{r['lo']:+.2f}, {r['hi']:+.2f}] | "
                   f"{_yes(r['level'])} | {_yes(r['ahead'])} | [{r['boot_lo']:+.2f}, {r['boot_hi']:+.2f}] | "
                   f"{_yes(r['level_boot'])} | {_yes(r['ahead_boot'])} |")
    # per pool
    out += ["", "## By pool", "", "Mean difference over the pool's cells (wins / ties / losses of its cells).", "",
            "| default minus | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in sorted(summ, key=lambda k: summ[k]["mean"]):
        cells = []
        for n in names:
            sub = [c for c in table[m] if c["pool"] == n]
            if not sub:
                cells.append("")
                continue
            v = [c["verdict"] for c in sub]
            cells.append(f"{sum(c['mean'] for c in sub) / len(sub):+.2f} ({v.count('win')}/{v.count('tie')}/"
                         f"{v.count('loss')})")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    # every cell
    methods = list(table)
    out += ["", "## Every cell", "",
            "Default minus each method: mean paired difference [95% CI] (points); W / L: the interval lies above / "
            "below 0; *seeds*: the seeds the default and the method share (`n=` in a cell that has fewer). "
            "An end printed as -0.0 / +0.0 lies just below / above 0.", ""]
    by_cell: Dict[tuple, Dict[str, Dict[str, Any]]] = defaultdict(dict)
    for m, cells in table.items():
        for c in cells:
            by_cell[tuple(c[k] for k in KEYS)][m] = c
    order = {n: i for i, n in enumerate(names)}
    cell_keys = sorted(by_cell, key=lambda k: (order[k[0]], k[1], _budget_key(k[2])))
    for name in names:
        for protocol in sorted({k[1] for k in cell_keys if k[0] == name}):
            keys = [k for k in cell_keys if k[0] == name and k[1] == protocol]
            present = [m for m in methods if any(m in by_cell[k] for k in keys)]
            out += [f"### {name}, {protocol}", "",
                    "| default minus | seeds | " + " | ".join(k[2] for k in keys) + " |",
                    "|---|---|" + "---|" * len(keys)]
            for m in present:
                most = max(by_cell[k][m]["n"] for k in keys if m in by_cell[k])
                row = [str(most)]
                for k in keys:
                    c = by_cell[k].get(m)
                    if c is None:
                        row.append("")
                        continue
                    mark = {"win": " W", "loss": " L"}.get(c["verdict"], "")
                    row.append(format_difference(c["mean"], c["lo"], c["hi"]) + mark
                               + (f" (n={c['n']})" if c["n"] < most else ""))
                out.append(f"| {m} | " + " | ".join(row) + " |")
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="bench names in benchmarks/results (NAME_runs.csv, NAME_rep_runs.csv)")
    p.add_argument("--out", default="paired_frozen", help="output stem in benchmarks/results")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    p.add_argument("--default", default=DEFAULT, metavar="METHOD",
                   help=f"the method put against every other, as in the runs' method column (default {DEFAULT})")
    p.add_argument("--title", default=TITLE, help="the report's title")
    p.add_argument("--protocol", help="only the runs of this protocol (e.g. finetune); default every protocol")
    p.add_argument("--min-seeds", type=int, default=1, metavar="N",
                   help="leave out cells where the default has fewer than N seeds (runs still in progress)")
    p.add_argument("--alias", action="append", default=[], metavar="OLD=NEW",
                   help="read method OLD as NEW (one setting named differently per pool, e.g. the paper's K)")
    a = p.parse_args(argv)
    runs = load(a.names)
    aliases = {}
    for item in a.alias:
        old, sep, new = item.rpartition("=")
        if not sep or not old or not new:
            raise SystemExit(f"--alias takes OLD=NEW, got {item!r}")
        aliases[old] = new
    runs = [dict(r, method=aliases.get(r["method"], r["method"])) for r in runs]
    if a.protocol:
        runs = [r for r in runs if r["protocol"] == a.protocol]
        if not runs:
            raise SystemExit(f"no runs of protocol {a.protocol!r} in {', '.join(a.names)}")
    if a.min_seeds > 1:
        seeds: Dict[tuple, set] = defaultdict(set)
        for r in runs:
            if r["method"] == a.default and not r["error"]:
                seeds[(r["pool"], r["protocol"], r["budget"])].add(r["seed"])
        runs = [r for r in runs if len(seeds[(r["pool"], r["protocol"], r["budget"])]) >= a.min_seeds]
    command = "python benchmarks/analysis/paired_report.py " + " ".join(a.names) + (f" --seed {a.seed}" if a.seed else "")
    if a.protocol:
        command += f" --protocol {a.protocol}"
    if a.min_seeds > 1:
        command += f" --min-seeds {a.min_seeds}"
    for item in a.alias:
        command += f" --alias {item}"
    if a.default != DEFAULT:
        command += f" --default {a.default}"
    if a.title != TITLE:
        command += f" --title '{a.title}'"
    if a.out != "paired_frozen":
        command += f" --out {a.out}"
    text = render(runs, a.names, command, a.seed, a.default, a.title)
    (RESULTS / f"{a.out}.md").write_text(text)
    print(f"wrote {RESULTS / (a.out + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
