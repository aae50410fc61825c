"""benchmarks/auto_k_report.py: verdicts against the best reference, and the target put to every method."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import load_benchmark_script


@pytest.fixture()
def report(tmp_path, monkeypatch):
    return load_benchmark_script("auto_k_report", tmp_path, monkeypatch)


def write_summary(path: Path, means: dict, std: float = 1.0, n: int = 4) -> None:
    """means: {(protocol, method, budget): mean}."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "method", "budget", "budget_count", "n_runs", "n_failed", "mean", "std",
                    "select_seconds_mean"])
        for (protocol, method, budget), m in means.items():
            w.writerow([protocol, method, budget, 10, n, 0, m, std, 0.1])


def test_verdicts_and_one_method_table(report, tmp_path):
    # std 1 over 4 seeds: standard error 0.5, so a difference of more than 0.5 point decides
    means = {}
    for budget, (auto, km, aft, k1, k5, skm) in {"1%": (70.0, 72.0, 69.0, 60.0, 65.0, 71.0),
                                                  "5%": (80.0, 79.0, 79.8, 70.0, 75.0, 78.0)}.items():
        for m, v in zip(("bilaf", "kmeans", "activeft", "bilaf:n_cores=0.001", "bilaf:n_cores=0.005",
                         "kmeans:normalize=true"), (auto, km, aft, k1, k5, skm)):
            means[("linear", m, budget)] = v
    means[("linear", "random", "1%")] = 99.0  # not a reference: ignored
    means[("linear", "bilaf:core_selector=activeft", "1%")] = 68.0  # an extra method, benched at 1% only
    write_summary(tmp_path / "toy.csv", means)
    rows = report.compare(["toy"])
    assert [(r["budget"], r["best_method"], r["verdict"]) for r in rows] == [("1%", "kmeans", "loss"),
                                                                            ("5%", "activeft", "tie")]
    assert rows[0]["diff"] == pytest.approx(-2.0) and rows[1]["diff"] == pytest.approx(0.2)
    table = {t["method"]: t for t in report.one_method_against_the_rest(rows)}
    # k-means: best at 1% (+2.0 over auto's 70: win), at 5% 1.0 below auto's 80 (loss)
    assert (table["kmeans"]["win"], table["kmeans"]["loss"]) == (1, 1)
    assert table["kmeans"]["mean"] == pytest.approx((2.0 - 1.0) / 2) and table["kmeans"]["worst"] == pytest.approx(-1.0)
    # auto against the best of the other four: -2.0 (loss) and +0.2 (tie)
    assert (table["bilaf"]["win"], table["bilaf"]["tie"], table["bilaf"]["loss"]) == (0, 1, 1)
    # an extra method is put against the best of all five
    assert table["kmeans:normalize=true"]["cells"] == 2
    assert table["kmeans:normalize=true"]["mean"] == pytest.approx(((71.0 - 72.0) + (78.0 - 80.0)) / 2)
    md = report.render(rows, ["toy"], "python benchmarks/auto_k_report.py toy")
    assert "## Could one fixed method meet the target?" in md and "| kmeans | 2 | 1 | 0 | 1 | +0.50 | -1.0 |" in md
    # auto against the extra method alone, on the one cell it has: 70 - 68 = +2 (win)
    assert "| bilaf:core_selector=activeft | 1 | 1 | 0 | 0 | +2.00 |" in md
    assert table["bilaf:core_selector=activeft"]["mean"] == pytest.approx(68.0 - 72.0)


def test_a_bench_without_the_extra_method(report, tmp_path):
    means = {("knn", m, "2%"): v for m, v in (("bilaf", 50.0), ("kmeans", 40.0), ("activeft", 45.0))}
    write_summary(tmp_path / "toy.csv", means)
    rows = report.compare(["toy"])
    assert len(rows) == 1 and rows[0]["verdict"] == "win"
    methods = [t["method"] for t in report.one_method_against_the_rest(rows)]
    assert "kmeans:normalize=true" not in methods and "bilaf:n_cores=0.001" not in methods
    assert methods == ["bilaf", "kmeans", "activeft"]
