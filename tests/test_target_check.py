"""benchmarks/analysis/target_check.py: half-against-half verdicts (Welch), the oracle, the best chosen on one half and
compared paired on the other, and the ten-seed test (paired)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import load_benchmark_script

PATTERN = (-1.0, 0.0, 0.0, 0.0, 1.0)  # five seeds around a mean, the same for every method: std sqrt(0.5)
WELCH_HALF = 2.306004135204166 * (2 * 0.5 / 5) ** 0.5  # 95% half-width of two such halves' difference (df 8)


@pytest.fixture()
def tc(tmp_path, monkeypatch):
    return load_benchmark_script("analysis/target_check", tmp_path, monkeypatch)


def write_runs(path: Path, halves: dict, seeds: range, budget: str = "1%", extra=()) -> None:
    """halves: {method: mean of these seeds}; accuracies stored as fractions, like bench's runs files."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "budget", "budget_count", "seed", "protocol", "accuracy", "error"])
        for method, mean in halves.items():
            for s, dev in zip(seeds, PATTERN):
                w.writerow([method, budget, 50, s, "linear", (mean + dev) / 100.0, ""])
        for row in extra:
            w.writerow(row)


def make_pool(tmp_path: Path) -> None:
    first = {"bilaf": 69.5, "kmeans": 70.0, "activeft": 69.0, "bilaf:n_cores=0.001": 60.0, "bilaf:n_cores=0.005": 65.0}
    second = {"bilaf": 69.5, "kmeans": 68.0, "activeft": 71.0, "bilaf:n_cores=0.001": 60.0, "bilaf:n_cores=0.005": 65.0}
    # a method outside the five and a failed run are ignored
    write_runs(tmp_path / "toy_runs.csv", first, range(0, 5),
               extra=[("random", "1%", 50, 0, "linear", 0.99, ""), ("kmeans", "1%", 50, 9, "knn", "", "boom")])
    write_runs(tmp_path / "toy_rep_runs.csv", second, range(5, 10))


def test_the_oracle_loses_when_the_best_method_changes_between_halves(tc, tmp_path):
    make_pool(tmp_path)
    acc = tc.load(["toy"])
    cells = tc.complete_cells(acc)
    assert cells == [("toy", "linear", "1%")]  # the knn cell has one failed run only: incomplete
    rows = {(r["table"], r["method"]): r for r in tc.half_against_half(acc, cells)}
    # table = seeds 0-4: k-means is best (70); run again (seeds 5-9) it gives 68: a loss of 2 points
    assert rows[("A", "oracle")]["best"] == "kmeans"
    # the halves share no seed: Welch's interval, -2 +- 1.03
    assert rows[("A", "oracle")]["diff"] == pytest.approx(-2.0) and rows[("A", "oracle")]["verdict"] == "loss"
    assert rows[("A", "oracle")]["hi"] == pytest.approx(-2.0 + WELCH_HALF)
    # +1 and -0.5 lie within 1.03 of 0: ties (the old rule, beyond the larger standard error 0.316, said win / loss)
    assert rows[("A", "activeft")]["diff"] == pytest.approx(1.0) and rows[("A", "activeft")]["verdict"] == "tie"
    assert rows[("A", "bilaf")]["diff"] == pytest.approx(-0.5) and rows[("A", "bilaf")]["verdict"] == "tie"
    # table = seeds 5-9: ActiveFT is best (71); its seeds 0-4 give 69
    assert rows[("B", "oracle")]["best"] == "activeft" and rows[("B", "oracle")]["diff"] == pytest.approx(-2.0)
    assert rows[("B", "kmeans")]["diff"] == pytest.approx(-1.0)
    t = tc.tally([r for r in rows.values() if r["method"] == "oracle"])
    assert (t["n"], t["loss"], t["mean"], t["worst"]) == (2, 2, pytest.approx(-2.0), pytest.approx(-2.0))


def test_best_chosen_on_one_half_compared_paired_on_the_other(tc, tmp_path):
    make_pool(tmp_path)
    acc = tc.load(["toy"])
    rows = {(r["table"], r["method"]): r for r in tc.chosen_then_paired(acc, tc.complete_cells(acc))}
    assert ("A", "oracle") not in rows
    # chosen on seeds 0-4: k-means; on seeds 5-9 it gives 68, and every method's seeds move with it (PATTERN)
    assert rows[("A", "bilaf")]["best"] == "kmeans"
    assert rows[("A", "bilaf")]["diff"] == pytest.approx(1.5) and rows[("A", "bilaf")]["verdict"] == "win"
    assert rows[("A", "kmeans")]["diff"] == pytest.approx(0.0) and rows[("A", "kmeans")]["verdict"] == "tie"
    # chosen on seeds 5-9: ActiveFT (71); on seeds 0-4 (69) k-means's 70 is 1 point above it in every seed
    assert rows[("B", "kmeans")]["best"] == "activeft" and rows[("B", "kmeans")]["verdict"] == "win"
    assert rows[("B", "bilaf:n_cores=0.001")]["diff"] == pytest.approx(-9.0)
    assert rows[("B", "bilaf:n_cores=0.001")]["verdict"] == "loss"


def test_ten_seeds_against_the_best_of_the_others(tc, tmp_path):
    make_pool(tmp_path)
    acc = tc.load(["toy"])
    rows = {r["method"]: r for r in tc.ten_seeds(acc, tc.complete_cells(acc))}
    # ten-seed means: bilaf 69.5, k-means 69, ActiveFT 70 (its two halves differ, so its ten values spread more)
    assert rows["bilaf"]["best"] == "activeft" and rows["bilaf"]["diff"] == pytest.approx(-0.5)
    # paired: +0.5 on seeds 0-4, -1.5 on seeds 5-9: std 1.054, 95% half-width 2.262 * 1.054 / sqrt(10) = 0.754
    assert rows["bilaf"]["verdict"] == "tie"
    assert rows["bilaf"]["lo"] == pytest.approx(-0.5 - 2.2621571628 * (10 / 9) ** 0.5 / 10 ** 0.5)
    # a reference is put against the best of the other four, the default included
    assert rows["activeft"]["best"] == "bilaf" and rows["activeft"]["diff"] == pytest.approx(0.5)
    assert rows["bilaf:n_cores=0.001"]["diff"] == pytest.approx(-10.0)


def test_render_and_missing_replicate(tc, tmp_path):
    make_pool(tmp_path)
    acc = tc.load(["toy"])
    md = tc.render(acc, tc.complete_cells(acc), ["toy"], "python benchmarks/analysis/target_check.py toy")
    assert "| oracle: the cell's best reference, run again | 2 | 0 | 0 | 2 | -2.00 | -2.0 |" in md
    assert "| toy | linear | 1% | 69.5 ± 0.2 |" in md
    (tmp_path / "toy_rep_runs.csv").unlink()
    with pytest.raises(SystemExit, match="toy_rep_runs.csv"):
        tc.load(["toy"])


def test_one_algorithm_against_itself(tc, tmp_path):
    # seeds 0-4 of the default and of spherical k-means at two budgets: 1 point below in every seed (loss), then
    # +0.2 on average with the default's own seed noise (a tie)
    write_runs(tmp_path / "toy_runs.csv", {"bilaf": 70.0, "kmeans:normalize=true": 71.0}, range(0, 5))
    with open(tmp_path / "toy_runs.csv", "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for method, mean, own in (("bilaf", 80.2, (1.0, -1.0, 0.0, 0.5, -0.5)),
                                  ("kmeans:normalize=true", 80.0, (0.0,) * 5)):
            for s, dev, o in zip(range(5), PATTERN, own):
                w.writerow([method, "5%", 250, s, "linear", (mean + dev + o) / 100.0, ""])
    rows = sorted(tc.same_algorithm(["toy"]), key=lambda r: r["cell"][2])
    assert [(r["cell"][2], r["verdict"]) for r in rows] == [("1%", "loss"), ("5%", "tie")]
    assert rows[0]["diff"] == pytest.approx(-1.0) and rows[1]["diff"] == pytest.approx(0.2)
