"""benchmarks/analysis/paired_report.py: default BiLAF against every method, seed by seed, from synthetic run files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

from bilaf.bench import RUN_FIELDS
from conftest import load_benchmark_script

NOISE = (0.0, 1.0, -1.0, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75, 0.0)  # per seed, shared by every method


@pytest.fixture()
def pr(tmp_path, monkeypatch):
    return load_benchmark_script("analysis/paired_report", tmp_path, monkeypatch)


def write_runs(path: Path, means: dict, seeds, protocols=("linear",), extra=(), drop=()) -> None:
    """means: {(method, budget): accuracy in points}; seed s adds NOISE[s] to every method (a paired design);
    ``drop``: (method, budget, seed) not written."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RUN_FIELDS, lineterminator="\n")
        w.writeheader()
        for (method, budget), mean in means.items():
            for p in protocols:
                for s in [s for s in seeds if (method, budget, s) not in drop]:
                    w.writerow(dict(method=method, budget=budget, budget_count=10, seed=s, protocol=p,
                                    accuracy=(mean + NOISE[s] + (0.1 * s if method == "bilaf" else 0.0)) / 100,
                                    select_seconds=0.1, eval_seconds=0.1, error="", notes="", host="h", code="c"))
        for row in extra:
            w.writerow(row)


def make(tmp_path: Path) -> None:
    # pool "toy": seeds 0-4 of four methods, seeds 5-9 of the default and k-means only
    toy = {("bilaf", "1%"): 70.0, ("kmeans", "1%"): 69.0, ("activeft", "1%"): 71.0, ("random", "1%"): 60.0,
           ("bilaf", "5%"): 80.0, ("kmeans", "5%"): 80.0, ("activeft", "5%"): 80.5, ("random", "5%"): 75.0}
    failed = dict(method="random", budget="5%", budget_count=10, seed=4, protocol="linear", accuracy="",
                  select_seconds="", eval_seconds="", error="boom", notes="", host="h", code="c")
    write_runs(tmp_path / "toy_runs.csv", toy, range(5), extra=[failed], drop=[("random", "5%", 4)])
    write_runs(tmp_path / "toy_rep_runs.csv", {k: v for k, v in toy.items() if k[0] in ("bilaf", "kmeans")},
               range(5, 10))
    # pool "two": no replicate file, no random
    write_runs(tmp_path / "two_runs.csv", {("bilaf", "2%"): 50.0, ("kmeans", "2%"): 52.0, ("activeft", "2%"): 51.0},
               range(5))


def test_paired_cells_over_the_seeds_both_have(pr, tmp_path):
    make(tmp_path)
    runs = pr.load(["toy", "two"])
    assert {r["file"] for r in runs} == {"toy_runs.csv", "toy_rep_runs.csv", "two_runs.csv"}
    table = pr.compare(runs, ["toy", "two"])
    assert list(table) == ["kmeans", "activeft", "random"]
    km = {(c["pool"], c["budget"]): c for c in table["kmeans"]}
    # the shared per-seed noise cancels: default - k-means = 1 + 0.1 s over seeds 0-9 (replicates included)
    assert km[("toy", "1%")]["seeds"] == tuple(range(10))
    np.testing.assert_allclose(km[("toy", "1%")]["diffs"], 1.0 + 0.1 * np.arange(10), atol=1e-9)
    ci = st.ttest_rel(70.0 + 0.1 * np.arange(10), np.full(10, 69.0)).confidence_interval(0.95)
    assert (km[("toy", "1%")]["lo"], km[("toy", "1%")]["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert km[("toy", "1%")]["verdict"] == "win" and km[("two", "2%")]["verdict"] == "loss"
    rnd = {c["budget"]: c for c in table["random"]}
    assert rnd["1%"]["n"] == 5 and rnd["5%"]["seeds"] == (0, 1, 2, 3)  # seed 4 of random failed
    assert {c["pool"] for c in table["random"]} == {"toy"}


def test_summary_and_target(pr, tmp_path):
    make(tmp_path)
    table = pr.compare(pr.load(["toy", "two"]), ["toy", "two"])
    summ = pr.summaries(table)
    means = np.array([c["mean"] for c in table["kmeans"]])
    ci = st.ttest_1samp(means, 0.0).confidence_interval(0.95)
    s = summ["kmeans"]
    assert (s["n_cells"], s["mean"]) == (3, pytest.approx(means.mean()))
    assert (s["lo"], s["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert (s["win"], s["tie"], s["loss"]) == (2, 0, 1) and s["pools"] == ["toy", "two"]
    assert s["boot_lo"] <= s["mean"] <= s["boot_hi"]
    tgt = pr.target(table, summ)
    # random is benched in 2 of the 3 cells: not a candidate; ActiveFT is the one the default trails most
    assert tgt["full"] == ["kmeans", "activeft"] and tgt["best"] == "activeft"
    rows = {r["method"]: r for r in tgt["rows"]}
    assert rows["activeft"]["label"] == "best single fixed method: activeft"
    assert rows["activeft"]["level"] == (summ["activeft"]["lo"] > -0.5)
    assert rows["kmeans"]["ahead"] == (summ["kmeans"]["lo"] > 0.0)


def test_main_writes_the_report(pr, tmp_path):
    make(tmp_path)
    assert pr.main(["toy", "two"]) == 0
    md = (tmp_path / "paired_frozen.md").read_text()
    assert "`python benchmarks/analysis/paired_report.py toy two`" in md
    assert "| best single fixed method: activeft | 3 |" in md
    assert "### toy, linear" in md and "### two, linear" in md
    # toy 1%: default - k-means = 1 + 0.1 s (s = 0..9): mean +1.45, a win
    assert "| kmeans | 10 | +1.4 [+1.2, +1.7] W |" in md
    # random at 5% shares four seeds with the default: marked n=4 in its row of five-seed cells
    assert "(n=4)" in md.split("### toy, linear")[1]
    with pytest.raises(SystemExit, match="missing .*nope_runs.csv"):
        pr.main(["toy", "nope"])


def test_another_default_and_title(pr, tmp_path):
    make(tmp_path)
    assert pr.main(["toy", "two", "--default", "kmeans", "--title", "Finetuning", "--out", "ft"]) == 0
    md = (tmp_path / "ft.md").read_text()
    assert md.startswith("# Finetuning\n") and "--default kmeans --title 'Finetuning'" in md
    assert "The default is the `kmeans` row." in md
    # toy 1%: k-means - default = -(1 + 0.1 s) over seeds 0-9
    assert "| bilaf | 10 | -1.4 [-1.7, -1.2] L |" in md
    with pytest.raises(SystemExit, match="no cell has runs of both 'typiclust'"):
        pr.main(["toy", "--default", "typiclust"])
