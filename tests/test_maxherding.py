"""MaxHerding: the exact greedy against a dense reference, the kNN kernel, budgets, warm start, options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bilaf
from bilaf.selectors.maxherding import MaxHerding, generalized_coverage, knn_graph


def reference_maxherding(X: np.ndarray, budget: int, sigma: float, labeled=()) -> list:
    """The greedy written out densely: all gains recomputed at every step, float64, distances as differences.

    Each step takes the unpicked row with the largest gain sum_x max(k(x, c) - m(x), 0), the lowest index among
    ties (gains within 1e-9 * (largest + 1)); once every gain is 0, the unpicked row with the smallest m (lowest
    index among ties).
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    D2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    K = np.exp(-D2 / (2.0 * sigma**2))  # K[x, c]
    taken = np.zeros(n, dtype=bool)
    m = np.zeros(n)
    for i in labeled:
        m = np.maximum(m, K[:, i])
        taken[i] = True
    picks = []
    while len(labeled) + len(picks) < budget:
        gains = np.maximum(K - m[:, None], 0.0).sum(axis=0)
        gains[taken] = -1.0
        best = gains.max()
        c = int(np.flatnonzero(gains >= best - 1e-9 * (best + 1.0))[0])
        if best <= 0.0:
            c = int(np.argmin(np.where(taken, np.inf, m)))
        picks.append(c)
        taken[c] = True
        m = np.maximum(m, K[:, c])
    return list(labeled) + picks


@st.composite
def pools(draw, max_distinct=14, duplicates=True):
    """Continuous random rows, some of them duplicated."""
    n_distinct = draw(st.integers(1 if duplicates else 2, max_distinct))
    dim = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_distinct, dim)) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    if not duplicates:
        return base
    reps = draw(st.lists(st.integers(1, 3), min_size=n_distinct, max_size=n_distinct))
    X = np.repeat(base, reps, axis=0)
    if len(X) < 2:
        X = np.concatenate([X, X])
    return X[rng.permutation(len(X))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=pools(), frac=st.floats(0.0, 1.0), sigma_scale=st.sampled_from([0.2, 1.0, 5.0]))
def test_exact_greedy_equals_dense_reference(X, frac, sigma_scale):
    # duplicated rows tie exactly; distinct rows tie too, e.g. two mutually nearest rows nothing else gains from
    budget = max(1, int(round(frac * len(X))))
    sigma = sigma_scale * float(np.std(X) + 1e-3)
    res = bilaf.select(X, budget, method="maxherding", bandwidth=sigma, normalize=False, dtype="float64",
                       random_state=0)
    assert res.params["kernel"] == "exact"
    assert res.indices.tolist() == reference_maxherding(X, budget, sigma)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=pools(), data=st.data())
def test_warm_start_equals_dense_reference_on_random_pools(X, data):
    n = len(X)
    labeled = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    budget = data.draw(st.integers(len(labeled), n))
    sigma = float(np.std(X) + 1e-3)
    res = bilaf.select(X, budget, method="maxherding", bandwidth=sigma, normalize=False, dtype="float64",
                       labeled=labeled)
    assert res.indices.tolist() == reference_maxherding(X, budget, sigma, labeled)
    assert np.isnan(res.scores[:len(labeled)]).all()


def test_warm_start_equals_dense_reference():
    X = np.random.default_rng(13).normal(size=(40, 3))
    res = MaxHerding(bandwidth=0.9, normalize=False, dtype="float64").select(X, 12, labeled=[5, 0, 33])
    assert res.indices.tolist() == reference_maxherding(X, 12, 0.9, [5, 0, 33])


def test_duplicates_tie_to_lowest_index_then_fill():
    # two points, with 2 and 3 copies: the point with more copies first (its lowest index), then the other;
    # then every gain is 0 and the other copies follow in index order
    X = np.array([[5.0, 0.0], [0.0, 0.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    res = bilaf.select(X, 5, method="maxherding", bandwidth=1.0, normalize=False, dtype="float64")
    assert res.indices.tolist() == reference_maxherding(X, 5, 1.0) == [1, 0, 2, 3, 4]
    # an exact tie between two distinct points (same copies, symmetric): the lower index
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    assert bilaf.select(Y, 1, method="maxherding", bandwidth=0.5, normalize=False).indices.tolist() == [0]
    assert any("every gain was 0" in note for note in res.notes)


def test_exact_on_a_pool_of_several_thousand_rows():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(1500, 6)), rng.normal(loc=3.0, size=(500, 6))])
    res = MaxHerding(bandwidth=1.5, normalize=False, dtype="float64").select(X, 12)
    assert res.indices.tolist() == reference_maxherding(X, 12, 1.5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=pools(), frac=st.floats(0.0, 1.0), exact=st.booleans(), n_neighbors=st.integers(1, 6))
def test_every_budget_gives_distinct_picks(X, frac, exact, n_neighbors):
    budget = max(1, int(round(frac * len(X))))
    res = bilaf.select(X, budget, method="maxherding", random_state=0, n_neighbors=n_neighbors,
                       max_exact_samples=5000 if exact else 0)
    assert len(res.indices) == budget == len(np.unique(res.indices))
    assert res.indices.min() >= 0 and res.indices.max() < len(X)
    assert res.params["kernel"] == ("exact" if exact else "knn")
    assert 0.0 <= res.params["coverage"] <= 1.0 + 1e-12


@pytest.mark.parametrize("exact", [True, False])
def test_all_budgets_on_one_pool(exact):
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(7, 3)), [1, 2, 3, 1, 1, 2, 1], axis=0)
    for budget in range(1, len(X) + 1):
        res = MaxHerding(max_exact_samples=100 if exact else 0, n_neighbors=3, random_state=0).select(X, budget)
        assert len(np.unique(res.indices)) == budget


def test_full_neighbour_kernel_is_the_exact_greedy():
    # with every other row as a neighbour the truncated kernel is the whole kernel
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 5))
    a = MaxHerding(bandwidth=0.8, normalize=False, dtype="float64").select(X, 25)
    b = MaxHerding(bandwidth=0.8, normalize=False, dtype="float64", max_exact_samples=0, n_neighbors=79,
                   search_dims=None).select(X, 25)
    assert b.params["kernel"] == "knn"
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-9)


def test_knn_gains_greedy_follows_reference():
    # gains from the kernel truncated to each row's k nearest rows (and itself); coverage m from the full kernel
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    k, sigma, budget = 5, 0.9, 15
    D2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    K = np.exp(-D2 / (2 * sigma**2))
    np.fill_diagonal(D2, np.inf)
    Kt = np.zeros((60, 60))  # Kt[x, c]: kept for c among the k nearest of x, and for c = x
    for x in range(60):
        nn = np.argsort(D2[x], kind="stable")[:k]
        Kt[x, nn] = K[x, nn]
        Kt[x, x] = 1.0
    res = MaxHerding(bandwidth=sigma, normalize=False, dtype="float64", max_exact_samples=0, n_neighbors=k,
                     search_dims=None).select(X, budget, labeled=[7])
    m = K[:, 7].copy()
    taken = np.zeros(60, dtype=bool)
    taken[7] = True
    for c in res.indices[1:]:
        g = np.where(taken, -1.0, np.maximum(Kt - m[:, None], 0).sum(0))
        assert g[c] >= g.max() * (1 - 1e-9)
        assert c == np.flatnonzero(g >= g.max() * (1 - 1e-9)).min() or g[c] < g.max()
        taken[c] = True
        m = np.maximum(m, K[:, c])


def test_knn_gains_exact_coverage_with_reduced_search(monkeypatch):
    # the screened coverage updates (lower bound in the principal-component space) miss no row
    from bilaf.selectors import maxherding as mh

    built = []
    build = mh._KnnKernel.build.__func__
    monkeypatch.setattr(mh._KnnKernel, "build", classmethod(lambda cls, *a, **kw: built.append(build(cls, *a, **kw))
                                                            or built[-1]))
    rng = np.random.default_rng(14)
    X = np.concatenate([rng.normal(size=(250, 12)), rng.normal(loc=2.0, size=(150, 12))])
    for labeled in (None, [0, 399]):
        sel = MaxHerding(bandwidth=1.5, normalize=False, dtype="float64", max_exact_samples=0, n_neighbors=8,
                         search_dims=3)
        res = sel.select(X, 30, labeled=labeled)
        assert res.params["search_dims_used"] == 3
        D2 = ((X[:, None] - X[res.indices][None]) ** 2).sum(-1)
        np.testing.assert_allclose(built[-1].m, np.exp(-D2 / (2 * 1.5**2)).max(axis=1), rtol=1e-12)


def test_knn_graph_exact_and_reduced_search():
    import torch

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 20))
    T = torch.as_tensor(X)
    D2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D2, np.inf)
    nbr, d2 = knn_graph(T, 7, search_dims=None, memory_budget="1MB")
    np.testing.assert_allclose(d2, np.sort(D2, axis=1)[:, :7], rtol=1e-9)
    np.testing.assert_allclose(np.take_along_axis(D2, nbr, 1), d2, rtol=1e-9)
    nbr2, d22 = knn_graph(T, 7, search_dims=5, memory_budget="1MB")
    # the distances returned are the exact ones of the neighbours returned; never the row itself
    np.testing.assert_allclose(np.take_along_axis(D2, nbr2, 1), d22, rtol=1e-9)
    assert (nbr2 != np.arange(300)[:, None]).all()
    # rows near a 5-d subspace: 6 components find the exact neighbours
    Y = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 20)) + 1e-4 * rng.normal(size=(300, 20))
    E2 = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    np.fill_diagonal(E2, np.inf)
    nbr3, _ = knn_graph(torch.as_tensor(Y), 7, search_dims=6, memory_budget="1MB")
    np.testing.assert_array_equal(np.sort(nbr3, axis=1), np.sort(np.argsort(E2, axis=1)[:, :7], axis=1))


def test_coverage_is_the_exact_generalized_coverage():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 6))
    for exact in (True, False):
        sel = MaxHerding(bandwidth=1.1, normalize=False, dtype="float64", max_exact_samples=10_000 if exact else 0,
                         n_neighbors=10)
        res = sel.select(X, 9, labeled=[3])
        D2 = ((X[:, None] - X[res.indices][None]) ** 2).sum(-1)
        want = np.exp(-D2 / (2 * 1.1**2)).max(axis=1).mean()
        assert sel.coverage_ == pytest.approx(want, rel=1e-12)
        assert generalized_coverage(X, res.indices, 1.1, memory_budget="1MB") == pytest.approx(want, rel=1e-12)


def test_exact_gains_are_the_coverage_increments():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(150, 4))
    res = MaxHerding(bandwidth=0.7, normalize=False, dtype="float64").select(X, 10)
    cov = [generalized_coverage(X, res.indices[:i + 1], 0.7) for i in range(10)]
    np.testing.assert_allclose(res.scores, np.diff([0.0] + cov), rtol=1e-9)


def test_auto_bandwidth_rule():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, 5))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = np.sqrt(((Xn[:, None] - Xn[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    want = np.median(np.sort(D, axis=1)[:, 19])
    sel = MaxHerding(dtype="float64")
    sel.select(X, 5)
    assert sel.bandwidth_ == pytest.approx(want, rel=1e-9)
    # tiny pool: the (n - 1)-th neighbour; every row the same: 1.0
    sel.select(X[:6], 2)
    assert sel.bandwidth_ == pytest.approx(np.median(np.sort(D[:6, :6], axis=1)[:, 4]), rel=1e-9)
    sel.select(np.ones((5, 3)), 2)
    assert sel.bandwidth_ == 1.0


def test_auto_bandwidth_sample_is_seeded():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(1500, 3))
    a = MaxHerding(random_state=0, max_exact_samples=0).select(X, 5)
    b = MaxHerding(random_state=0, max_exact_samples=0).select(X, 5)
    c = MaxHerding(random_state=1, max_exact_samples=0).select(X, 5)
    assert a.params["bandwidth_used"] == b.params["bandwidth_used"] != c.params["bandwidth_used"]
    np.testing.assert_array_equal(a.indices, b.indices)


def test_row_scale_invariant_by_default():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(100, 6))
    scale = rng.uniform(0.5, 3.0, size=(100, 1))
    a = bilaf.select(X, 8, method="maxherding", dtype="float64")
    b = bilaf.select(X * scale, 8, method="maxherding", dtype="float64")
    np.testing.assert_array_equal(a.indices, b.indices)


def test_dense_kernel_over_budget_falls_back_to_knn():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(600, 4))  # 2 x 600^2 float32 kernel values: 2.9 MB
    res = MaxHerding(bandwidth=1.0, memory_budget="1MB").select(X, 5)
    assert res.params["kernel"] == "knn"


def test_spreads_over_clusters():
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(5, 8)) * 10
    X = np.concatenate([c + rng.normal(size=(40, 8)) for c in centers])
    for exact in (True, False):
        res = MaxHerding(normalize=False, max_exact_samples=1000 if exact else 0, n_neighbors=10).select(X, 5)
        assert sorted(res.indices // 40) == [0, 1, 2, 3, 4]


def test_bilaf_core_selector():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    b = bilaf.BiLAF(n_cores=6, core_selector="maxherding", core_params={"bandwidth": 0.6}, random_state=0)
    res = b.select(X, 12)
    want = MaxHerding(bandwidth=0.6).select(X, 6).indices
    np.testing.assert_array_equal(b.core_indices_, np.sort(want))
    assert b.core_selector_ == "maxherding" and len(np.unique(res.indices)) == 12


@pytest.mark.parametrize("params", [
    {"bandwidth": 0.0}, {"bandwidth": -1.0}, {"bandwidth": float("nan")}, {"bandwidth": "wide"},
    {"bandwidth": True}, {"n_neighbors": 0}, {"n_neighbors": 2.5}, {"max_exact_samples": -1},
    {"max_exact_samples": 1.5}, {"search_dims": 0}, {"memory_budget": "lots"},
])
def test_bad_options_raise(params):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError):
        bilaf.select(X, 3, method="maxherding", **params)


def test_cli_select_and_bench_spec(tmp_path, capsys):
    from bilaf.bench import parse_method_spec
    from bilaf.cli import main

    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    pool = tmp_path / "pool.npy"
    np.save(pool, X)
    out = tmp_path / "picks.json"
    rc = main(["select", str(pool), "-b", "5", "-m", "maxherding", "--bandwidth", "0.5", "--seed", "0", "-q",
               "-o", str(out)])
    assert rc == 0
    assert json.loads(out.read_text()) == MaxHerding(bandwidth=0.5).select(X, 5).indices.tolist()
    bad = tmp_path / "bad.json"
    capsys.readouterr()
    try:
        rc = main(["select", str(pool), "-b", "5", "-m", "maxherding", "--bandwidth", "-2", "-o", str(bad)])
    except SystemExit as e:  # argparse's errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "bandwidth" in err and "Traceback" not in err and not bad.exists()
    spec = parse_method_spec("maxherding:bandwidth=0.5")
    assert spec.method == "maxherding" and spec.params == {"bandwidth": 0.5}
