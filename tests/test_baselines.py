"""TypiClust and ProbCover: exact budgets, determinism, the papers' defining behaviour, option checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bilaf
from bilaf.selectors.probcover import ProbCover, _gather_rows, _Screen, _symmetric_csr
from bilaf.selectors.typiclust import TypiClust, mean_knn_distances

METHODS = ("typiclust", "probcover")


def _blobs(n_blobs: int, per_blob: int, dim: int = 8, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_blobs, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    # unit-norm blob centres spread apart; points stay close to them (also after L2 normalisation)
    X = np.concatenate([c + spread * rng.normal(size=(per_blob, dim)) for c in centers])
    return X.astype(np.float32)


@st.composite
def pools(draw):
    n_distinct = draw(st.integers(1, 12))
    dim = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_distinct, dim))
    reps = draw(st.lists(st.integers(1, 4), min_size=n_distinct, max_size=n_distinct))
    X = np.repeat(base, reps, axis=0)  # duplicate rows on purpose
    if len(X) < 2:
        X = np.concatenate([X, X])
    X = X[rng.permutation(len(X))].astype(np.float32)
    budget = draw(st.integers(1, len(X)))
    return X, budget


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=pools(), seed=st.integers(0, 1000))
def test_exact_budget_distinct(method, data, seed):
    X, budget = data
    res = bilaf.select(X, budget, method=method, random_state=seed)
    assert res.indices.dtype == np.int64
    assert len(res.indices) == budget
    assert len(np.unique(res.indices)) == budget
    assert res.indices.min() >= 0 and res.indices.max() < len(X)
    assert len(res.scores) == budget and len(res.pick_classes) == budget


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [1, 7, 60, 119, 120])
def test_budget_edges_on_blobs(method, budget):
    X = _blobs(6, 20)
    res = bilaf.select(X, budget, method=method, random_state=3)
    assert len(np.unique(res.indices)) == len(res.indices) == budget


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result(method):
    X = np.random.default_rng(1).normal(size=(400, 12)).astype(np.float32)
    a = bilaf.select(X, 25, method=method, random_state=7)
    b = bilaf.select(X, 25, method=method, random_state=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_typicality_picks_the_dense_point():
    rng = np.random.default_rng(0)
    # one cluster: a tight core of 30 points around the origin plus a sparse halo of 30
    core = 0.01 * rng.normal(size=(30, 5))
    halo = rng.normal(size=(30, 5))
    halo *= (3.0 / np.linalg.norm(halo, axis=1, keepdims=True))
    centre = np.zeros((1, 5))
    X = np.concatenate([halo, core, centre]).astype(np.float64)
    sel = TypiClust(random_state=0, dtype="float64", normalize=False)
    res = sel.select(X, 1)
    assert 30 <= res.indices[0] <= 60  # a core point, never the halo
    # the most typical sample is the one with the smallest mean distance to its 20 nearest neighbours
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(D, np.inf)
    mean_knn = np.sort(D, axis=1)[:, :20].mean(axis=1)
    assert res.indices[0] == int(np.argmin(mean_knn))
    np.testing.assert_allclose(sel.typicality_, 1.0 / mean_knn, rtol=1e-9)


def test_mean_knn_distances_matches_brute_force():
    import torch

    rng = np.random.default_rng(4)
    X = rng.normal(size=(700, 5))
    perm = rng.permutation(700)
    sizes = [1, 2, 3, 7, 21, 40, 40, 90, 250, 246]  # 250 is too big for 1MB: the chunked kernel
    groups, start = [], 0
    for s in sizes:
        groups.append(np.sort(perm[start:start + s]))
        start += s
    got = mean_knn_distances(torch.from_numpy(X), groups, 20, dtype=torch.float64, memory_budget="1MB")
    for g in groups:
        if len(g) == 1:
            assert np.isnan(got[g]).all()
            continue
        D = np.linalg.norm(X[g][:, None] - X[g][None], axis=2)
        np.fill_diagonal(D, np.inf)
        k = min(20, len(g) - 1)
        np.testing.assert_allclose(got[g], np.sort(D, axis=1)[:, :k].mean(axis=1), rtol=1e-9)


def test_typiclust_one_pick_per_blob():
    X = _blobs(8, 25)
    res = bilaf.select(X, 8, method="typiclust", random_state=0)
    assert sorted(res.indices // 25) == list(range(8))
    assert len(np.unique(res.pick_classes)) == 8
    assert res.pseudo_labels.shape == (len(X),)


def test_typiclust_small_clusters_come_last():
    rng = np.random.default_rng(0)
    big = [c + 0.05 * rng.normal(size=(30, 2)) for c in ([0, 0], [10, 0])]
    outliers = np.array([[100.0, 100.0], [-100.0, 100.0]])  # two singleton clusters
    X = np.concatenate(big + [outliers]).astype(np.float32)
    res = bilaf.select(X, 4, method="typiclust", random_state=0, normalize=False)
    # 4 clusters: the two blobs and the two outliers; the outliers are skipped, each blob gives two picks
    assert not np.isin(res.indices, [60, 61]).any()
    assert sorted(res.indices // 30) == [0, 0, 1, 1]
    assert any("fewer than 5" in n for n in res.notes)


def test_typiclust_max_clusters_round_robin():
    X = _blobs(3, 30)
    res = TypiClust(max_clusters=3, random_state=0).select(X, 9)
    assert res.params["n_clusters_used"] == 3
    assert sorted(np.bincount(res.indices // 30)) == [3, 3, 3]
    # uncapped: budget clusters
    res = TypiClust(max_clusters=None, random_state=0).select(X, 9)
    assert res.params["n_clusters_used"] == 9


def test_probcover_one_pick_per_blob():
    X = _blobs(7, 30, spread=0.02)
    sel = ProbCover(delta=0.3, random_state=0)
    res = sel.select(X, 7)
    assert sorted(res.indices // 30) == list(range(7))
    assert sel.coverage_ == 1.0
    np.testing.assert_array_equal(res.scores, np.full(7, 30.0))  # each ball covers its whole blob
    assert res.params["delta_used"] == 0.3


def test_probcover_fills_budget_after_full_cover():
    X = _blobs(4, 10, spread=0.02)
    res = ProbCover(delta=0.3, random_state=0).select(X, 12)
    assert sorted(res.indices[:4] // 10) == [0, 1, 2, 3]
    assert np.isnan(res.scores[4:]).all()
    assert any("drawn at random" in n for n in res.notes)


def test_probcover_low_coverage_note():
    X = np.random.default_rng(0).normal(size=(100, 8))
    res = ProbCover(delta=0.01, random_state=0).select(X, 5)
    np.testing.assert_array_equal(res.scores, np.ones(5))  # every ball holds only its centre
    assert any("cover only" in n for n in res.notes)


def test_probcover_greedy_matches_brute_force():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(150, 3))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    delta = 0.4
    res = ProbCover(delta=delta, random_state=0, dtype="float64").select(X, 10)
    D = np.linalg.norm(Xn[:, None] - Xn[None], axis=2)
    A = D <= delta
    covered = np.zeros(len(X), bool)
    expect = []
    for _ in range(10):
        gains = (A & ~covered[None, :]).sum(axis=1)
        p = int(np.argmax(gains))
        if gains[p] <= 1:
            break
        expect.append(p)
        covered |= A[p]
    assert len(expect) >= 3  # the greedy phase is exercised
    np.testing.assert_array_equal(res.indices[: len(expect)], expect)
    # after it, each pick is a sample no earlier ball covered (gain exactly 1)
    rest = res.indices[len(expect):]
    assert not covered[rest].any() and len(set(rest)) == len(rest)
    np.testing.assert_array_equal(res.scores[len(expect):], 1.0)


def test_probcover_singleton_phase_is_random_not_file_order():
    """When no ball adds more than its centre, the picks must not follow the row order (a class-sorted pool
    would give one class): they are drawn at random among the uncovered samples, seeded."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 32))  # in 32-d, balls of radius 0.05 hold only their centre
    a = ProbCover(delta=0.05, random_state=0).select(X, 40)
    b = ProbCover(delta=0.05, random_state=0).select(X, 40)
    c = ProbCover(delta=0.05, random_state=1).select(X, 40)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(np.sort(a.indices), np.sort(c.indices))
    assert len(set(a.indices)) == 40 and a.indices.max() >= 200  # not the first 40 rows
    assert any("drawn at random among the 400 uncovered" in n for n in a.notes)


def test_probcover_graph_matches_dense():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 4))
    sel = ProbCover(delta=0.7, random_state=0, dtype="float64", memory_budget="1MB")
    sel.select(X, 3)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = np.linalg.norm(Xn[:, None] - Xn[None], axis=2)
    n_expected = int((D <= 0.7).sum()) - len(X)
    assert sel.n_edges_ == n_expected
    # CSR helpers
    indptr, indices = _symmetric_csr(4, [np.array([0, 0, 2], np.int32)], [np.array([1, 3, 3], np.int32)])
    assert indptr.tolist() == [0, 2, 3, 4, 6]
    assert [sorted(indices[indptr[i]:indptr[i + 1]].tolist()) for i in range(4)] == [[1, 3], [0], [3], [0, 2]]
    assert sorted(_gather_rows(indptr, indices, np.array([3, 1])).tolist()) == [0, 0, 2]


def test_probcover_auto_delta_purity():
    X = _blobs(5, 40, spread=0.03)
    sel = ProbCover(n_clusters=5, random_state=0, purity_samples=None)
    res = sel.select(X, 5)
    # with the true number of groups, balls stay pure up to the gap between blobs: one pick per blob
    assert sel.purity_ >= 0.95
    assert sel.delta_ > 0.1
    assert sorted(res.indices // 40) == list(range(5))


def test_probcover_edge_cap():
    X = _blobs(3, 40, spread=0.05)
    with pytest.raises(ValueError, match="graph edges"):
        ProbCover(delta=1.0, max_edges=100, random_state=0).select(X, 3)
    sel = ProbCover(n_clusters=2, max_edges=200, random_state=0, purity_samples=None)
    res = sel.select(X, 3)
    assert sel.n_edges_ <= 200
    assert len(res.indices) == 3


@pytest.mark.parametrize("method,params", [
    ("typiclust", {"k_neighbors": 0}),
    ("typiclust", {"k_neighbors": 2.5}),
    ("typiclust", {"min_cluster_size": -1}),
    ("typiclust", {"max_clusters": 0}),
    ("typiclust", {"algorithm": "nope"}),
    ("typiclust", {"dtype": "float16"}),
    ("probcover", {"delta": -0.1}),
    ("probcover", {"delta": float("nan")}),
    ("probcover", {"delta": "big"}),
    ("probcover", {"alpha": 0.0}),
    ("probcover", {"alpha": 1.5}),
    ("probcover", {"n_clusters": 1}),
    ("probcover", {"n_clusters": 10_000}),
    ("probcover", {"purity_samples": 0}),
    ("probcover", {"max_edges": 0}),
    ("probcover", {"screen": "fp8"}),
    ("probcover", {"memory_budget": "lots"}),
])
def test_bad_options_raise(method, params):
    X = _blobs(2, 10)
    with pytest.raises(ValueError):
        bilaf.select(X, 3, method=method, random_state=0, **params)


@pytest.mark.parametrize("method", METHODS)
def test_bad_budget_and_unknown_option(method):
    X = _blobs(2, 10)
    with pytest.raises(ValueError):
        bilaf.select(X, 21, method=method)
    with pytest.raises(TypeError):
        bilaf.select(X, 3, method=method, bogus=1)


@pytest.mark.parametrize("method", METHODS)
def test_warm_start_keeps_labeled(method):
    X = _blobs(4, 15)
    sel = TypiClust(random_state=0) if method == "typiclust" else ProbCover(random_state=0)
    out = sel.select(X, 6, labeled=[0, 15])
    assert out.indices[:2].tolist() == [0, 15]
    assert len(np.unique(out.indices)) == 6


@pytest.mark.parametrize("method", METHODS)
def test_row_scale_invariant_by_default(method):
    # both methods work on L2-normalised features by default: scaling rows changes nothing
    X = _blobs(5, 20, spread=0.1)
    scale = np.random.default_rng(0).uniform(0.5, 3.0, size=(len(X), 1)).astype(np.float32)
    a = bilaf.select(X, 6, method=method, random_state=0, dtype="float64")
    b = bilaf.select(X * scale, 6, method=method, random_state=0, dtype="float64")
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bf16_screen_error_bound(dtype):
    import torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 200)) * rng.uniform(0.1, 3.0, size=(300, 1))  # uneven norms: the bound uses the largest
    T = torch.as_tensor(X, dtype=getattr(torch, dtype))
    scr = _Screen(T, "64MB")
    approx = scr.approx_sq(slice(0, 300), None).double().numpy()
    exact = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    assert np.abs(approx - exact).max() <= scr.margin
    i, j = np.triu_indices(300, 1)
    got = scr.exact_sq(torch.as_tensor(i), torch.as_tensor(j)).double().numpy()
    np.testing.assert_allclose(got, exact[i, j], rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-3)


@pytest.mark.parametrize("recheck_share", [0.0, 1.0])  # 0: every block recomputed whole; 1: pairs rechecked
@pytest.mark.parametrize("kw", [{}, {"delta": 0.9}, {"n_clusters": 4, "purity_samples": 50}])
def test_bf16_screen_same_result(kw, recheck_share, monkeypatch):
    import bilaf.selectors.probcover as pc

    monkeypatch.setattr(pc, "SCREEN_MAX_CANDIDATES", recheck_share)
    X = _blobs(6, 40, dim=32, spread=0.3, seed=2)
    a = ProbCover(random_state=0, screen="off", dtype="float64", **kw)
    b = ProbCover(random_state=0, screen="bf16", dtype="float64", **kw)
    ra, rb = a.select(X, 12), b.select(X, 12)
    assert rb.params["screen"] == "bf16" and ra.params["screen"] == "off"
    assert a.n_edges_ == b.n_edges_
    np.testing.assert_allclose(a.delta_, b.delta_, rtol=1e-12)
    np.testing.assert_array_equal(ra.indices, rb.indices)


# ------------------------------------------------------------------------------------------------
# K-Means: the torch Lloyd iterations (pruned assignment) and the k-means++ seeding
# ------------------------------------------------------------------------------------------------
def _gauss_blobs(seed: int, n: int, d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(k, d))
    return (centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


class _FullArgmax:
    """The unpruned argmax (every row, every call): the reference for TrackedArgmax."""

    def __init__(self, F, **kwargs):
        self.F = F

    def __call__(self, C):
        import torch

        return torch.max(self.F @ C.T, dim=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lloyd_pruned_equals_plain_lloyd(seed, monkeypatch):
    import torch

    from bilaf.algorithms import kmeans as km

    X = torch.as_tensor(_gauss_blobs(seed, 1500, 6, 12))
    pruned = km.lloyd_centers(X, 20, seed, memory_budget="1MB")
    monkeypatch.setattr(km, "TrackedArgmax", _FullArgmax)
    plain = km.lloyd_centers(X, 20, seed)
    np.testing.assert_allclose(pruned, plain, rtol=0, atol=1e-4)


def test_lloyd_inertia_matches_scikit_learn():
    import torch
    from sklearn.cluster import KMeans

    from bilaf.algorithms.kmeans import lloyd_centers

    X = _gauss_blobs(5, 3000, 8, 30)
    ours = lloyd_centers(torch.as_tensor(X), 30, 0)
    theirs = KMeans(30, n_init=1, random_state=0).fit(X).cluster_centers_

    def inertia(C):
        return float((((X[:, None, :] - C[None, :, :]) ** 2).sum(-1).min(1)).sum())

    assert inertia(ours) <= 1.02 * inertia(theirs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), k=st.integers(1, 60), dup=st.booleans())
@example(seed=0, n=28, k=15, dup=True)  # regression: a float32 residue at a seed drew it twice
def test_kmeans_plusplus_seeds_are_distinct_rows(seed, n, k, dup):
    import torch

    from bilaf.algorithms.kmeans import kmeans_plusplus

    k = min(k, n)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    if dup:
        X[n // 2:] = X[0]  # many copies of one point
    idx = kmeans_plusplus(torch.as_tensor(X), k, np.random.default_rng(seed))
    assert idx.shape == (k,) and idx.min() >= 0 and idx.max() < n
    assert len(np.unique(idx)) == k
    # distinct points come first: seeds cover min(k, distinct points) distinct values
    assert len(np.unique(X[idx], axis=0)) == min(k, len(np.unique(X, axis=0)))
