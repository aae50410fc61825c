"""bilaf.stats: paired differences over shared seeds, their summary over cells, and their Markdown."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import assume, given, settings
from hypothesis import strategies as hs

from bilaf.stats import (cells_markdown, format_difference, matrix_markdown, paired_difference, paired_table,
                         summarize, summary_markdown, verdict, welch_difference)

values = hs.floats(min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False)


@hs.composite
def pairs(draw, min_size=1, max_size=12):
    n = draw(hs.integers(min_value=min_size, max_value=max_size))
    a = draw(hs.lists(values, min_size=n, max_size=n))
    b = draw(hs.lists(values, min_size=n, max_size=n))
    return np.array(a), np.array(b)


@settings(max_examples=200, deadline=None)
@given(pairs(), hs.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_interval_contains_the_mean_and_n_counts_pairs(ab, confidence):
    a, b = ab
    r = paired_difference(a, b, confidence=confidence)
    assert r.n == len(a)
    assert r.lo <= r.mean <= r.hi
    assert r.mean == pytest.approx(float(np.mean(a - b)), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_swapping_the_methods_flips_the_sign_exactly(ab):
    a, b = ab
    r, s = paired_difference(a, b), paired_difference(b, a)
    assert (s.mean, s.lo, s.hi, s.n) == (-r.mean, -r.hi, -r.lo, r.n)
    assert verdict(s.lo, s.hi) == {"win": "loss", "loss": "win", "tie": "tie"}[verdict(r.lo, r.hi)]


@settings(max_examples=200, deadline=None)
@given(pairs(min_size=2), hs.floats(min_value=-50.0, max_value=50.0))
def test_shifting_one_method_shifts_the_difference(ab, shift):
    a, b = ab
    r, s = paired_difference(a, b), paired_difference(a + shift, b)
    assert s.mean == pytest.approx(r.mean + shift, abs=1e-9)
    if r.hi > r.lo + 1e-6:  # a spread the shift's rounding cannot swamp
        assert s.lo == pytest.approx(r.lo + shift, abs=1e-7) and s.hi == pytest.approx(r.hi + shift, abs=1e-7)


def test_shift_by_a_constant_is_exact_on_dyadic_values():
    a = np.array([70.25, 71.5, 69.75, 72.0])
    b = np.array([69.0, 70.0, 70.5, 70.25])
    r, s = paired_difference(a, b), paired_difference(a + 2.5, b)
    assert s.mean == r.mean + 2.5 and s.hi - s.lo == r.hi - r.lo


@settings(max_examples=200, deadline=None)
@given(pairs(min_size=2), hs.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_interval_equals_scipy_ttest_rel(ab, confidence):
    a, b = ab
    d = a - b
    assume(np.std(d, ddof=1) > 1e-6 * max(1.0, float(np.abs(d).max())))  # scipy gives NaN at zero spread
    ci = st.ttest_rel(a, b).confidence_interval(confidence)
    r = paired_difference(a, b, confidence=confidence)
    np.testing.assert_allclose([r.lo, r.hi], [ci.low, ci.high], rtol=1e-10, atol=1e-10)


@settings(max_examples=200, deadline=None)
@given(pairs(min_size=2), pairs(min_size=2), hs.sampled_from([0.9, 0.95]))
def test_welch_interval_equals_scipy_ttest_ind(ab, cd, confidence):
    a, b = ab[0], cd[1]
    assume(np.std(a, ddof=1) > 1e-6 and np.std(b, ddof=1) > 1e-6)
    ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    r = welch_difference(a, b, confidence=confidence)
    np.testing.assert_allclose([r.lo, r.hi], [ci.low, ci.high], rtol=1e-9, atol=1e-9)
    assert r.lo <= r.mean <= r.hi and r.mean == pytest.approx(a.mean() - b.mean(), abs=1e-9)
    s = welch_difference(b, a, confidence=confidence)
    assert (s.mean, s.lo, s.hi) == pytest.approx((-r.mean, -r.hi, -r.lo), abs=1e-9)


def test_welch_edge_cases():
    assert welch_difference([70.0], [60.0, 61.0]) == (pytest.approx(9.5), -math.inf, math.inf, 1)
    assert welch_difference([70.0, 70.0], [60.0, 60.0, 60.0]) == (10.0, 10.0, 10.0, 2)
    with pytest.raises(ValueError, match="non-empty"):
        welch_difference([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        welch_difference([1.0, float("inf")], [1.0])


def test_known_values_against_scipy():
    a = np.array([68.2, 70.1, 69.5, 71.0, 67.9])
    b = np.array([67.0, 69.8, 68.1, 70.2, 68.0])
    ci = st.ttest_rel(a, b).confidence_interval(0.95)
    r = paired_difference(a, b)
    assert r.mean == pytest.approx(0.72)
    assert (r.lo, r.hi) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    # by hand: t(0.975, 4) = 2.7764451051977987
    sd = np.std(a - b, ddof=1)
    assert r.hi - r.mean == pytest.approx(2.7764451051977987 * sd / math.sqrt(5), rel=1e-12)


def test_one_pair_has_no_interval_and_is_a_tie():
    r = paired_difference([72.0], [60.0])
    assert (r.mean, r.lo, r.hi, r.n) == (12.0, -math.inf, math.inf, 1)
    assert verdict(r.lo, r.hi) == "tie"
    assert format_difference(r.mean, r.lo, r.hi) == "+12.0 [no interval, n=1]"


def test_equal_differences_give_a_zero_width_interval():
    r = paired_difference([71.0, 72.0, 73.0], [70.0, 71.0, 72.0])
    assert (r.mean, r.lo, r.hi, r.n) == (1.0, 1.0, 1.0, 3)
    assert verdict(r.lo, r.hi) == "win"
    r = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert verdict(r.lo, r.hi) == "tie"


@pytest.mark.parametrize("a, b, match", [([], [], "share no seed"), ([1.0, 2.0], [1.0], "one length"),
                                         ([[1.0]], [[1.0]], "1-d"), ([1.0, float("nan")], [1.0, 2.0], "finite")])
def test_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b)


def test_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [0.0, 0.0], confidence=95)


def run(method, budget, seed, acc, protocol="linear", error="", **extra):
    return dict(method=method, budget=budget, seed=seed, protocol=protocol, accuracy=acc, error=error, **extra)


def test_paired_table_pairs_by_seed_and_skips_failures():
    runs = [run("a", "1%", s, v) for s, v in zip(range(4), (0.70, 0.72, 0.71, 0.73))]
    runs += [run("ref", "1%", s, v) for s, v in zip((3, 2, 1, 0), (0.70, 0.70, 0.70, 0.69))]  # any order
    runs += [run("a", "1%", 9, 0.99)]  # seed 9: the reference has none, left out
    runs += [run("ref", "1%", 1, float("nan"), protocol="knn", error="boom"), run("a", "1%", 1, 0.5, protocol="knn")]
    runs += [run("other", "1%", 0, 0.1)]
    t = paired_table(runs, "a", "ref")
    assert len(t) == 1  # the knn cell: the reference failed, no common seed
    r = t[0]
    assert (r["protocol"], r["budget"], r["seeds"], r["n"]) == ("linear", "1%", (0, 1, 2, 3), 4)
    np.testing.assert_allclose(r["diffs"], [1.0, 2.0, 1.0, 3.0], atol=1e-9)
    expect = paired_difference([70.0, 72.0, 71.0, 73.0], [69.0, 70.0, 70.0, 70.0])
    assert (r["mean"], r["lo"], r["hi"]) == pytest.approx((expect.mean, expect.lo, expect.hi))
    assert r["method_mean"] == pytest.approx(71.5) and r["reference_mean"] == pytest.approx(69.75)
    assert r["verdict"] == "win"


def test_paired_table_cells_by_pool_and_conflicting_duplicates():
    runs = [run("a", "1%", s, 0.5 + 0.01 * s, pool=p) for p in ("x", "y") for s in range(3)]
    runs += [run("b", "1%", s, 0.5, pool=p) for p in ("x", "y") for s in range(3)]
    t = paired_table(runs, "a", "b", by=("pool", "protocol", "budget"))
    assert [(r["pool"], r["n"]) for r in t] == [("x", 3), ("y", 3)]
    assert paired_table(runs + [run("a", "1%", 0, 0.5, pool="x")], "a", "b", by=("pool", "budget"))  # same value
    with pytest.raises(ValueError, match="two different runs of a with seed 0"):
        paired_table(runs + [run("a", "1%", 0, 0.6, pool="x")], "a", "b", by=("pool", "budget"))
    with pytest.raises(ValueError, match="no field 'pool'"):
        paired_table([run("a", "1%", 0, 0.5)], "a", "b", by=("pool",))


def cells_from(diffs_by_cell, pool=None):
    out = []
    for i, diffs in enumerate(diffs_by_cell):
        pd = paired_difference(np.array(diffs), np.zeros(len(diffs)))
        out.append(dict(pool=pool if pool is not None else f"p{i}", budget=f"{i}%", seeds=tuple(range(len(diffs))),
                        diffs=tuple(diffs), mean=pd.mean, lo=pd.lo, hi=pd.hi, n=pd.n))
    return out


def test_summary_over_cells_is_a_t_interval_over_cell_means():
    cells = cells_from([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [4.0, 5.0, 3.0], [0.5, 0.4, 0.6]])
    s = summarize(cells)
    means = np.array([2.0, 0.0, 4.0, 0.5])
    ci = st.ttest_1samp(means, 0.0).confidence_interval(0.95)
    assert s["mean"] == pytest.approx(means.mean())
    assert (s["lo"], s["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # [4, 5, 3] and [0.5, 0.4, 0.6] clear 0 (half-widths 2.48 and 0.25); [1, 2, 3] does not (2.48)
    assert (s["n_cells"], s["win"], s["tie"], s["loss"]) == (4, 2, 2, 0)
    assert "4 cells: mean difference +1.62 [" in summary_markdown(s)
    one = summarize(cells[:1])
    assert (one["lo"], one["hi"], one["verdict"]) == (-math.inf, math.inf, "tie")


def test_seed_bootstrap_summary():
    # every cell of one pool shares its seeds; seed 2 is bad in every cell
    cells = cells_from([[1.0, 1.2, -3.0, 1.1], [0.9, 1.0, -2.0, 1.2]], pool="x")
    s = summarize(cells, unit="seed", strata="pool", n_boot=4000, random_state=1)
    assert s["mean"] == pytest.approx(np.mean([c["mean"] for c in cells]))
    assert s["lo"] <= s["mean"] <= s["hi"]
    # the exact bootstrap distribution: all 4**4 equally likely draws of four seeds (both cells have every seed,
    # so a draw's statistic is the mean over its seeds of the two cells' average difference)
    per_seed = np.array([0.95, 1.1, -2.5, 1.15])
    draws = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T
    exact = np.sort(per_seed[draws].mean(axis=1))
    assert s["lo"] == pytest.approx(np.quantile(exact, 0.025), abs=0.05)  # three draws of seed 2: -1.6
    assert s["hi"] == pytest.approx(np.quantile(exact, 0.975), abs=0.05)
    # a constant difference has a zero-width interval; a fixed random_state repeats itself
    flat = cells_from([[2.0, 2.0, 2.0]] * 3, pool="x")
    f = summarize(flat, unit="seed", strata="pool", n_boot=200)
    assert (f["lo"], f["hi"], f["verdict"]) == (pytest.approx(2.0), pytest.approx(2.0), "win")
    assert summarize(cells, unit="seed", n_boot=300, random_state=5) == summarize(cells, unit="seed", n_boot=300,
                                                                                  random_state=5)


@settings(max_examples=50, deadline=None)
@given(hs.lists(hs.lists(values, min_size=1, max_size=6), min_size=1, max_size=6), hs.integers(0, 10))
def test_seed_bootstrap_interval_lies_within_the_cell_extremes(diffs_by_cell, seed):
    cells = cells_from(diffs_by_cell, pool="x")
    s = summarize(cells, unit="seed", strata="pool", n_boot=100, random_state=seed)
    # every replicate averages cell means of drawn differences: it cannot leave the range of the differences
    assert min(min(d) for d in diffs_by_cell) - 1e-9 <= s["lo"] <= s["hi"] <= max(max(d) for d in diffs_by_cell) + 1e-9


def test_summarize_bad_input():
    with pytest.raises(ValueError, match="no cells"):
        summarize([])
    with pytest.raises(ValueError, match="unit"):
        summarize(cells_from([[1.0]]), unit="pool")
    with pytest.raises(ValueError, match="n_boot"):
        summarize(cells_from([[1.0]]), unit="seed", n_boot=0)


def test_markdown():
    runs = [run(m, b, s, v / 100) for m, base in (("ref", 70.0), ("a", 71.0), ("b", 68.0)) for b in ("1%", "2%")
            for s, v in zip(range(3), (base, base + 1.0, base + 0.5))]
    runs += [run("a", "5%", 0, 0.80), run("ref", "5%", 0, 0.70)]
    cells = paired_table(runs, "a", "ref")
    md = cells_markdown(cells)
    assert "| linear | 1% | 3 | 71.5 | 70.5 | +1.0 [+1.0, +1.0] | win |" in md
    assert "| linear | 5% | 1 | 80.0 | 70.0 | +10.0 [no interval, n=1] | tie |" in md
    mx = matrix_markdown(runs, ["ref", "a", "b"], "ref", ["1%", "2%", "5%"], protocol="linear",
                         budget_labels={"1%": "1% (10)"})
    lines = mx.splitlines()
    assert lines[0] == "| method | 1% (10) | 2% | 5% | W / T / L |"
    assert lines[2] == "| a | +1.0 [+1.0, +1.0] W | +1.0 [+1.0, +1.0] W | +10.0 [no interval, n=1] (n=1) | 2 / 1 / 0 |"
    assert lines[3] == "| b | -2.0 [-2.0, -2.0] L | -2.0 [-2.0, -2.0] L |  | 0 / 0 / 2 |"
    assert matrix_markdown(runs, ["ref"], "ref", ["1%"], protocol="linear") == ""
