"""benchmarks/analysis/merge_runs.py: one runs file from the runs files of a grid split into jobs."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from bilaf.bench import RUN_FIELDS, read_runs_csv
from conftest import BENCHMARKS


@pytest.fixture(scope="module")
def mr():
    spec = importlib.util.spec_from_file_location("merge_runs", BENCHMARKS / "analysis" / "merge_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write(path: Path, runs) -> Path:
    """runs: (method, budget, seed, accuracy) tuples, each as a finetune run."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RUN_FIELDS, lineterminator="\n")
        w.writeheader()
        for method, budget, seed, acc in runs:
            w.writerow(dict(method=method, budget=budget, budget_count=budget, seed=seed, protocol="finetune",
                            accuracy=acc, select_seconds=0.1, eval_seconds=0.1, error="", notes="", host="h",
                            code="c"))
    return path


def test_merges_jobs_keeps_only_the_named_seeds_and_drops_exact_repeats(mr, tmp_path):
    a = write(tmp_path / "a.csv", [("random", 500, 0, 0.5), ("bilaf", 500, 0, 0.6)])
    # job b was stopped after starting seed 3, which job c ran in full
    b = write(tmp_path / "b.csv", [("random", 1000, 1, 0.7), ("random", 1000, 3, 0.1)])
    c = write(tmp_path / "c.csv", [("random", 1000, 3, 0.71)])
    out = tmp_path / "m.csv"
    assert mr.main([str(out), str(a), f"{b}:0-2", str(c), str(a)]) == 0
    runs = read_runs_csv(out)
    got = {(r["method"], r["budget"], int(r["seed"])): float(r["accuracy"]) for r in runs}
    assert got == {("random", "500", 0): 0.5, ("bilaf", "500", 0): 0.6, ("random", "1000", 1): 0.7,
                   ("random", "1000", 3): 0.71}
    assert len(runs) == 4 and list(csv.reader(open(out)))[0] == RUN_FIELDS
    assert not list(tmp_path.glob("*.tmp"))


def test_two_results_for_one_run_are_an_error_and_nothing_is_written(mr, tmp_path, capsys):
    b = write(tmp_path / "b.csv", [("random", 1000, 3, 0.1)])
    c = write(tmp_path / "c.csv", [("random", 1000, 3, 0.71)])
    out = tmp_path / "m.csv"
    with pytest.raises(SystemExit, match="another result for"):
        mr.main([str(out), str(b), str(c)])
    with pytest.raises(SystemExit, match="no runs file"):
        mr.main([str(out), str(tmp_path / "missing.csv")])
    assert not out.exists()


def test_seed_lists_and_ranges(mr):
    assert mr.parse_input("x/r.csv:0,2,5-6") == (Path("x/r.csv"), {0, 2, 5, 6})
    assert mr.parse_input("x/r.csv") == (Path("x/r.csv"), None)
    assert mr.parse_input("C:/runs.csv") == (Path("C:/runs.csv"), None)
