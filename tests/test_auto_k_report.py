"""benchmarks/analysis/auto_k_report.py: paired verdicts against the best reference, and the target put to every method."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import load_benchmark_script

SHARED = (3.0, -3.0, 1.0, -1.0)  # per-seed accuracy shift common to every method (what pairing removes)


@pytest.fixture()
def report(tmp_path, monkeypatch):
    return load_benchmark_script("analysis/auto_k_report", tmp_path, monkeypatch)


def write_runs(path: Path, means: dict, own: dict = None) -> None:
    """means: {(protocol, method, budget): mean}; seed s of every method adds SHARED[s], and ``own`` adds
    {(protocol, method, budget): per-seed offsets} to one method's runs. Accuracies stored as fractions."""
    own = own or {}
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "budget", "budget_count", "seed", "protocol", "accuracy", "error"])
        for (protocol, method, budget), m in means.items():
            for s, shift in enumerate(SHARED):
                extra = own.get((protocol, method, budget), (0.0,) * len(SHARED))[s]
                w.writerow([method, budget, 10, s, protocol, (m + shift + extra) / 100.0, ""])


def test_verdicts_and_one_method_table(report, tmp_path):
    means = {}
    for budget, (auto, km, aft, k1, k5, skm) in {"1%": (70.0, 72.0, 69.0, 60.0, 65.0, 71.0),
                                                  "5%": (80.0, 79.0, 79.8, 70.0, 75.0, 78.0)}.items():
        for m, v in zip(("bilaf", "kmeans", "activeft", "bilaf:n_cores=0.001", "bilaf:n_cores=0.005",
                         "kmeans:normalize=true"), (auto, km, aft, k1, k5, skm)):
            means[("linear", m, budget)] = v
    means[("linear", "random", "1%")] = 99.0  # not a reference: ignored
    means[("linear", "bilaf:core_selector=activeft", "1%")] = 68.0  # an extra method, benched at 1% only
    # at 5% auto's own seed noise +-0.5: its paired differences spread (std 0.577, 95% half-width 0.92 over 4 seeds)
    write_runs(tmp_path / "toy_runs.csv", means, own={("linear", "bilaf", "5%"): (0.5, -0.5, 0.5, -0.5)})
    rows = report.compare(["toy"])
    # 1%: 2 points below k-means in every seed: a loss; 5%: +0.2 +- 0.92 against ActiveFT: a tie
    assert [(r["budget"], r["best_method"], r["verdict"], r["seeds"]) for r in rows] == [
        ("1%", "kmeans", "loss", 4), ("5%", "activeft", "tie", 4)]
    assert rows[0]["diff"] == pytest.approx(-2.0) and rows[1]["diff"] == pytest.approx(0.2)
    assert rows[1]["lo"] < 0 < rows[1]["hi"]
    table = {t["method"]: t for t in report.one_method_against_the_rest(rows)}
    # k-means: best at 1% (+2.0 over auto's 70 in every seed: win), at 5% 1.0 below auto's 80 (-1 -+ 0.5: loss)
    assert (table["kmeans"]["win"], table["kmeans"]["loss"]) == (1, 1)
    assert table["kmeans"]["mean"] == pytest.approx((2.0 - 1.0) / 2) and table["kmeans"]["worst"] == pytest.approx(-1.0)
    # auto against the best of the other four: -2.0 (loss) and +0.2 (tie)
    assert (table["bilaf"]["win"], table["bilaf"]["tie"], table["bilaf"]["loss"]) == (0, 1, 1)
    # an extra method is put against the best of all five
    assert table["kmeans:normalize=true"]["cells"] == 2
    assert table["kmeans:normalize=true"]["mean"] == pytest.approx(((71.0 - 72.0) + (78.0 - 80.0)) / 2)
    md = report.render(rows, ["toy"], "python benchmarks/analysis/auto_k_report.py toy")
    assert "## Could one fixed method meet the target?" in md and "| kmeans | 2 | 1 | 0 | 1 | +0.50 | -1.0 |" in md
    # auto against the extra method alone, on the one cell it has: 70 - 68 = +2 in every seed (win), no interval
    assert "| bilaf:core_selector=activeft | 1 | 1 | 0 | 0 | +2.00 | no interval (one cell) |" in md
    assert table["bilaf:core_selector=activeft"]["mean"] == pytest.approx(68.0 - 72.0)
    assert "| toy | linear | 5% | 4 | 80.0 ± 3.1 |" in md and "| +0.2 [-0.7, +1.1] | tie |" in md


def test_paired_rule_against_the_standard_error_rule(report, tmp_path):
    """Seed-to-seed swings shared by two methods hide a steady gap from the old rule, not from the paired one."""
    means = {("knn", "bilaf", "1%"): 70.5, ("knn", "kmeans", "1%"): 70.0,  # +0.5 in every seed
             ("knn", "bilaf", "2%"): 72.0, ("knn", "kmeans", "2%"): 70.0}  # +2 on average, but not steady
    write_runs(tmp_path / "toy_runs.csv", means, own={("knn", "bilaf", "2%"): (6.0, -2.0, -2.0, -2.0)})
    rows = {r["budget"]: r for r in report.compare(["toy"])}
    # the old rule called 1% a tie (+0.5 against standard errors of 1.29); the paired one sees +0.5 in every seed
    assert rows["1%"]["verdict"] == "win"
    # a +2 average made by one seed: differences 8, 0, 0, 0, 95% CI [-4.4, +8.4]
    assert rows["2%"]["verdict"] == "tie" and (rows["2%"]["lo"], rows["2%"]["hi"]) == (
        pytest.approx(2.0 - 3.182446305284263 * 2.0), pytest.approx(2.0 + 3.182446305284263 * 2.0))


def test_a_bench_without_the_extra_method(report, tmp_path):
    means = {("knn", m, "2%"): v for m, v in (("bilaf", 50.0), ("kmeans", 40.0), ("activeft", 45.0))}
    write_runs(tmp_path / "toy_runs.csv", means)
    rows = report.compare(["toy"])
    assert len(rows) == 1 and rows[0]["verdict"] == "win"
    methods = [t["method"] for t in report.one_method_against_the_rest(rows)]
    assert "kmeans:normalize=true" not in methods and "bilaf:n_cores=0.001" not in methods
    assert methods == ["bilaf", "kmeans", "activeft"]
    with pytest.raises(SystemExit, match="nope_runs.csv"):
        report.load("nope")
