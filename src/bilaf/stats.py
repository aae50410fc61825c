"""Paired comparisons of selection methods over shared seeds.

A bench runs every method with the same seeds (seed ``s`` is the ``random_state`` of every method's selection
and of every protocol), so two methods are compared seed by seed: the difference ``method - reference`` is
taken within each seed both have, and its mean gets a Student t confidence interval over those seeds. That
removes the variation the two share (how hard the seed's draw of the pool, the split or the training is) and
answers "is the gap beyond seed noise?" directly, where comparing two means with their own standard errors
does not.

* :func:`paired_difference` - mean paired difference and its confidence interval, from two aligned arrays.
* :func:`welch_difference` - the same for two means that share no seed (Welch's t), where nothing pairs.
* :func:`paired_table` - the same per cell (by default per protocol and budget) from bench run rows.
* :func:`summarize` - one mean difference over many cells, with its interval and win / tie / loss counts.
* :func:`verdict`, :func:`format_difference`, :func:`cells_markdown`, :func:`summary_markdown`,
  :func:`matrix_markdown` - the verdict rule and Markdown for reports.

A cell is a *win* when the interval of ``method - reference`` lies above 0, a *loss* when it lies below 0,
and a *tie* otherwise (one seed only: no interval, always a tie).

Only numpy and scipy are used; run rows are plain dicts with the fields of
:data:`bilaf.bench.RUN_FIELDS` (``bilaf.bench.read_runs_csv`` returns them).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import stats as _st

from .errors import ValidationError

__all__ = ["PairedDifference", "paired_difference", "welch_difference", "paired_table", "summarize", "verdict",
           "format_difference", "cells_markdown", "summary_markdown", "matrix_markdown"]


class PairedDifference(NamedTuple):
    """Mean of ``a - b`` over paired values, its confidence interval ``[lo, hi]`` and the number of pairs."""

    mean: float
    lo: float
    hi: float
    n: int


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValidationError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return c


def paired_difference(a: Any, b: Any, *, confidence: float = 0.95) -> PairedDifference:
    """Mean paired difference ``a - b`` with a Student t confidence interval.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Values of two methods, aligned: ``a[i]`` and ``b[i]`` come from the same seed.
    confidence : float, default 0.95
        Coverage of the two-sided interval.

    Returns
    -------
    PairedDifference
        ``(mean, lo, hi, n)`` with ``d = a - b``: ``mean = d.mean()`` and
        ``mean -/+ t_{(1 + confidence) / 2, n - 1} * d.std(ddof=1) / sqrt(n)``, the interval of
        ``scipy.stats.ttest_rel(a, b).confidence_interval(confidence)``. Two cases are handled explicitly:
        one pair has no interval (``lo = -inf``, ``hi = +inf``: nothing is known about the spread), and
        differences that are all equal (n >= 2) give the zero-width interval ``[mean, mean]``.

    Raises
    ------
    ValueError
        When ``a`` and ``b`` are not 1-d arrays of one length, are empty, or hold a NaN or an infinity.
    """
    c = _check_confidence(confidence)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValidationError(f"paired values must be two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    n = int(a.shape[0])
    if n == 0:
        raise ValidationError("no paired values: the two methods share no seed")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValidationError("paired values must be finite (a failed run has no value: leave its seed out)")
    d = a - b
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(mean, -math.inf, math.inf, 1)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return PairedDifference(mean, mean, mean, n)
    half = float(_st.t.ppf(0.5 + c / 2.0, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(mean, mean - half, mean + half, n)


def welch_difference(a: Any, b: Any, *, confidence: float = 0.95) -> PairedDifference:
    """Difference of two means from *different* seeds, with Welch's t confidence interval.

    For comparisons that share no seed (e.g. one method's new seeds against another's old ones), where
    nothing can be paired: ``mean(a) - mean(b)`` with the interval of
    ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)``.

    Returns
    -------
    PairedDifference
        ``(mean, lo, hi, n)`` with ``n = min(len(a), len(b))``. A side with one value has no spread: the
        interval is then ``(-inf, +inf)``; two sides without any spread give ``[mean, mean]``.

    Raises
    ------
    ValueError
        When ``a`` or ``b`` is not a non-empty 1-d array of finite values.
    """
    c = _check_confidence(confidence)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValidationError(f"values must be two non-empty 1-d arrays, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValidationError("values must be finite (a failed run has no value: leave it out)")
    mean = float(a.mean() - b.mean())
    n = min(a.size, b.size)
    if n == 1:
        return PairedDifference(mean, -math.inf, math.inf, n)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    if va + vb == 0.0:
        return PairedDifference(mean, mean, mean, n)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = float(_st.t.ppf(0.5 + c / 2.0, df)) * math.sqrt(va + vb)
    return PairedDifference(mean, mean - half, mean + half, n)


def verdict(lo: float, hi: float) -> str:
    """``"win"`` when the interval ``[lo, hi]`` lies above 0, ``"loss"`` when below 0, else ``"tie"``."""
    return "win" if lo > 0.0 else "loss" if hi < 0.0 else "tie"


def _usable(r: Mapping[str, Any], value: str) -> bool:
    if r.get("error"):
        return False
    v = r.get(value)
    if v is None or v == "":
        return False
    return math.isfinite(float(v))


def _by_seed(runs: Iterable[Mapping[str, Any]], methods: Sequence[str], by: Sequence[str], value: str, scale: float
             ) -> Tuple[List[tuple], Dict[tuple, Dict[str, Dict[int, float]]]]:
    """Cells in order of first appearance, and ``{cell: {method: {seed: value * scale}}}`` (failed runs out)."""
    order: List[tuple] = []
    seen = set()
    acc: Dict[tuple, Dict[str, Dict[int, float]]] = {}
    for r in runs:
        for k in ("method", "seed", value, *by):
            if k not in r:
                raise ValidationError(f"a run row has no field {k!r}")
        if r["method"] not in methods or not _usable(r, value):
            continue
        cell = tuple(r[k] for k in by)
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
        seed = int(r["seed"])
        v = float(r[value]) * scale
        slot = acc.setdefault(cell, {}).setdefault(r["method"], {})
        if seed in slot and slot[seed] != v:
            where = ", ".join(f"{k} {c}" for k, c in zip(by, cell))
            raise ValidationError(f"two different runs of {r['method']} with seed {seed} ({where}): "
                             f"{slot[seed]:g} and {v:g}")
        slot[seed] = v
    return order, acc


def paired_table(runs: Iterable[Mapping[str, Any]], method: str, reference: str, *,
                 by: Sequence[str] = ("protocol", "budget"), value: str = "accuracy", scale: float = 100.0,
                 confidence: float = 0.95) -> List[Dict[str, Any]]:
    """Per cell, ``method - reference`` over the seeds both have, with its confidence interval.

    Parameters
    ----------
    runs : iterable of dict
        Bench run rows (``method``, ``seed``, the ``by`` fields, ``value``; ``error`` when failed), as
        ``bilaf.bench.read_runs_csv`` returns them. Rows of other methods are ignored; failed runs and runs
        without a finite value are left out (their seed is then not shared).
    method, reference : str
        Method labels as in the runs' ``method`` column.
    by : sequence of str, default ("protocol", "budget")
        Fields that define a cell; add e.g. ``"pool"`` when the rows of several benches are pooled.
    value : str, default "accuracy"
        Field compared.
    scale : float, default 100.0
        Factor applied to ``value`` (accuracy fractions to points).
    confidence : float, default 0.95

    Returns
    -------
    list of dict
        One row per cell where both methods have at least one common seed, in the order the cells first
        appear in ``runs``: the ``by`` fields, ``method``, ``reference``, ``n`` (common seeds), ``seeds``
        (tuple, ascending), ``diffs`` (tuple of per-seed differences), ``method_mean`` and
        ``reference_mean`` (over the common seeds), ``mean``, ``lo``, ``hi`` and ``verdict``.

    Raises
    ------
    ValueError
        When a row lacks a field, or one method has two different values for one seed in one cell.
    """
    by = tuple(by)
    order, acc = _by_seed(runs, (method, reference), by, value, float(scale))
    out = []
    for cell in order:
        m, r = acc[cell].get(method, {}), acc[cell].get(reference, {})
        seeds = tuple(sorted(set(m) & set(r)))
        if not seeds:
            continue
        a = np.array([m[s] for s in seeds])
        b = np.array([r[s] for s in seeds])
        pd = paired_difference(a, b, confidence=confidence)
        row: Dict[str, Any] = dict(zip(by, cell))
        row.update(method=method, reference=reference, n=pd.n, seeds=seeds, diffs=tuple(float(x) for x in a - b),
                   method_mean=float(a.mean()), reference_mean=float(b.mean()), mean=pd.mean, lo=pd.lo, hi=pd.hi,
                   verdict=verdict(pd.lo, pd.hi))
        out.append(row)
    return out


def summarize(cells: Sequence[Mapping[str, Any]], *, unit: str = "cell", confidence: float = 0.95,
              strata: Union[None, str, Sequence[str]] = None, n_boot: int = 10000,
              random_state: Optional[int] = 0) -> Dict[str, Any]:
    """One mean difference over many cells, its confidence interval, and the cells' win / tie / loss counts.

    The estimate is the plain mean over cells of the per-cell mean differences (every cell weighs the same,
    whatever its number of seeds). Two intervals are offered, for two questions:

    ``unit="cell"`` (the default): the cells are the sample. Student t interval over the per-cell means
        (``paired_difference(means, 0)``). A cell is a setting a user could be in (a pool, a protocol, a
        budget), and what a method gains differs far more between settings than between seeds, so this
        interval carries that spread, and the seed noise inside each cell's mean with it: it asks whether the
        method is ahead *on average over settings like these*, which is what a recommendation rests on. It
        treats cells as independent; cells of one pool are not quite (linear and kNN score the same picks,
        budgets share seeds), so read it as a lower bound on the uncertainty about other pools.
    ``unit="seed"``: the seeds are the sample, the cells fixed. Seed-blocked bootstrap: each replicate draws
        seeds with replacement (within each stratum, e.g. each pool, whose seeds are independent of the other
        pools'), gives every cell the mean of its differences over the drawn seeds it has (counted with
        their multiplicity), and averages over cells; the interval is the percentile interval of
        ``n_boot`` replicates. Drawing whole seeds keeps what the cells of one seed share (the same picks
        scored by two protocols, the same seed at every budget). It asks whether the gap on *exactly these
        cells* is beyond seed noise, and is much narrower than the cell interval.

    Parameters
    ----------
    cells : sequence of dict
        Rows of :func:`paired_table` (``mean``, ``lo``, ``hi``; ``seeds`` and ``diffs`` for ``unit="seed"``).
    unit : {"cell", "seed"}, default "cell"
    confidence : float, default 0.95
    strata : str or sequence of str, optional
        Fields of the cells whose values define independent seed sets (``unit="seed"``); ``None``: one set.
    n_boot : int, default 10000
        Bootstrap replicates (``unit="seed"``).
    random_state : int, optional
        Seed of the bootstrap draws (``unit="seed"``).

    Returns
    -------
    dict
        ``unit``, ``n_cells``, ``mean``, ``lo``, ``hi`` (``-inf`` / ``+inf`` with one cell and
        ``unit="cell"``), ``verdict`` (of that interval) and the cells' ``win``, ``tie``, ``loss``.

    Raises
    ------
    ValueError
        No cells, an unknown ``unit``, or ``n_boot < 1``.
    """
    c = _check_confidence(confidence)
    if not cells:
        raise ValidationError("no cells to summarize: the two methods share no cell")
    means = np.array([float(r["mean"]) for r in cells])
    tally = [verdict(float(r["lo"]), float(r["hi"])) for r in cells]
    if unit == "cell":
        pd = paired_difference(means, np.zeros_like(means), confidence=c)
        mean, lo, hi = pd.mean, pd.lo, pd.hi
    elif unit == "seed":
        if int(n_boot) < 1:
            raise ValidationError(f"n_boot must be at least 1, got {n_boot}")
        mean, lo, hi = _seed_bootstrap(cells, c, strata, int(n_boot), random_state)
    else:
        raise ValidationError(f"unit must be 'cell' or 'seed', got {unit!r}")
    return dict(unit=unit, n_cells=len(cells), mean=mean, lo=lo, hi=hi, verdict=verdict(lo, hi),
                win=tally.count("win"), tie=tally.count("tie"), loss=tally.count("loss"))


def _seed_bootstrap(cells: Sequence[Mapping[str, Any]], confidence: float, strata: Union[None, str, Sequence[str]],
                    n_boot: int, random_state: Optional[int]) -> Tuple[float, float, float]:
    keys: Tuple[str, ...] = () if strata is None else (strata,) if isinstance(strata, str) else tuple(strata)
    groups: Dict[tuple, List[int]] = {}
    for i, r in enumerate(cells):
        groups.setdefault(tuple(r[k] for k in keys), []).append(i)
    rng = np.random.default_rng(random_state)
    num = np.zeros((n_boot, len(cells)))
    den = np.zeros((n_boot, len(cells)))
    for idx in groups.values():
        seeds = sorted({int(s) for i in idx for s in cells[i]["seeds"]})
        col = {s: j for j, s in enumerate(seeds)}
        counts = rng.multinomial(len(seeds), np.full(len(seeds), 1.0 / len(seeds)), size=n_boot).astype(np.float64)
        for i in idx:
            d = np.zeros(len(seeds))
            m = np.zeros(len(seeds))
            for s, v in zip(cells[i]["seeds"], cells[i]["diffs"]):
                d[col[int(s)]] = float(v)
                m[col[int(s)]] = 1.0
            num[:, i] = counts @ d
            den[:, i] = counts @ m
    has = den > 0  # a cell none of whose seeds was drawn sits that replicate out
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.where(has, num / np.where(has, den, 1.0), 0.0).sum(axis=1) / has.sum(axis=1)
    mean = float(np.mean([float(r["mean"]) for r in cells]))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stat, [tail, 1.0 - tail])
    return mean, float(lo), float(hi)


# -- Markdown ---------------------------------------------------------------------------------------------
def _signed(x: float, digits: int) -> str:
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:+.{digits}f}"


def format_difference(mean: float, lo: float, hi: float, *, digits: int = 1) -> str:
    """``"+1.2 [-0.3, +2.7]"``; an undefined interval (one seed) reads ``"+1.2 [no interval, n=1]"``."""
    if math.isinf(lo) or math.isinf(hi):
        return f"{_signed(mean, digits)} [no interval, n=1]"
    return f"{_signed(mean, digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"


def cells_markdown(cells: Sequence[Mapping[str, Any]], *, keys: Sequence[str] = ("protocol", "budget"),
                   digits: int = 1, confidence: float = 0.95) -> str:
    """A Markdown table of :func:`paired_table` rows: the ``keys`` columns, seeds, both means, the
    difference with its interval, the verdict."""
    pct = f"{100 * confidence:g}%"
    head = list(keys) + ["seeds", "method", "reference", f"difference [{pct} CI]", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in cells:
        lines.append("| " + " | ".join([str(r[k]) for k in keys] + [
            str(r["n"]), f"{r['method_mean']:.{digits}f}", f"{r['reference_mean']:.{digits}f}",
            format_difference(r["mean"], r["lo"], r["hi"], digits=digits), r["verdict"]]) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(summary: Mapping[str, Any], *, digits: int = 2, confidence: float = 0.95) -> str:
    """One line: mean difference over cells with its interval (and its unit), and the win / tie / loss counts."""
    how = "cells as the unit, Student t" if summary["unit"] == "cell" else "seed-blocked bootstrap"
    return (f"{summary['n_cells']} cells: mean difference "
            f"{format_difference(summary['mean'], summary['lo'], summary['hi'], digits=digits)} "
            f"({100 * confidence:g}% CI, {how}); {summary['win']} wins, {summary['tie']} ties, "
            f"{summary['loss']} losses (a cell's CI above / below 0).")


def matrix_markdown(runs: Sequence[Mapping[str, Any]], methods: Sequence[str], reference: str, budgets: Sequence[str],
                    *, protocol: str, digits: int = 1, confidence: float = 0.95,
                    budget_labels: Optional[Mapping[str, str]] = None) -> str:
    """A Markdown table for one protocol: a row per method (the reference left out), a column per budget,
    each cell ``method - reference`` over the shared seeds as :func:`format_difference`, with ``W`` / ``L``
    after a win / loss; a last column counts wins, ties and losses. Empty when there is nothing to compare."""
    rows = [r for r in runs if r.get("protocol") == protocol]
    labels = budget_labels or {}
    head = ["method"] + [labels.get(b, b) for b in budgets] + ["W / T / L"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    any_cell = False
    for m in methods:
        if m == reference:
            continue
        table = {r["budget"]: r for r in paired_table(rows, m, reference, by=("budget",), confidence=confidence)}
        if not table:
            continue
        any_cell = True
        cells = [m]
        for b in budgets:
            t = table.get(b)
            if t is None:
                cells.append("")
                continue
            mark = {"win": " W", "loss": " L"}.get(t["verdict"], "")
            cells.append(format_difference(t["mean"], t["lo"], t["hi"], digits=digits) + mark
                         + (f" (n={t['n']})" if t["n"] < max(x["n"] for x in table.values()) else ""))
        v = [t["verdict"] for t in table.values()]
        cells.append(f"{v.count('win')} / {v.count('tie')} / {v.count('loss')}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if any_cell else ""
