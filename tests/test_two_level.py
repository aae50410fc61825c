"""Two-level k-means (``KMeansSelector(algorithm="twolevel")``, the "auto" k-means above 100,000 rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilaf import KMeansSelector
from bilaf.algorithms.kmeans import (MINIBATCH_ABOVE, TWO_LEVEL_FROM, allocate_proportional, lloyd_centers,
                                     resolve_algorithm, two_level_kmeans)


def _blobs(n_blobs: int, per_blob: int, dim: int, seed: int, spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_blobs, dim)) * 3.0
    sizes = rng.integers(per_blob // 2, 2 * per_blob, size=n_blobs)  # uneven blobs
    return np.concatenate([c + spread * rng.normal(size=(s, dim)) for c, s in zip(centers, sizes)]).astype(np.float32)


def _inertia(X: np.ndarray, C: np.ndarray) -> float:
    d2 = (X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :]
    return float(np.maximum(d2.min(1), 0).sum())


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=30), data=st.data())
def test_allocate_proportional_invariants(sizes, data):
    sizes = np.array(sizes)
    k = data.draw(st.integers(0, int(sizes.sum())))
    share = allocate_proportional(sizes, k)
    assert share.sum() == k
    assert np.all(share >= 0) and np.all(share <= sizes)
    if k >= np.count_nonzero(sizes):
        assert np.all(share[sizes > 0] >= 1)
    # proportional: where no cap binds, a group gets at most its rounded-up quota plus the one every group gets
    if sizes.sum() > 0 and k >= np.count_nonzero(sizes) and np.all(sizes[sizes > 0] >= k):
        quota = k * sizes / sizes.sum()
        assert np.all(share <= np.maximum(np.ceil(quota), 1) + 1)


def test_allocate_proportional_exact_when_divisible():
    np.testing.assert_array_equal(allocate_proportional(np.array([100, 300, 600]), 10), [1, 3, 6])
    np.testing.assert_array_equal(allocate_proportional(np.array([5, 0, 5]), 10), [5, 0, 5])
    with pytest.raises(ValueError, match="cannot split 11"):
        allocate_proportional(np.array([5, 5]), 11)


def test_resolve_algorithm_rule():
    assert resolve_algorithm("auto", MINIBATCH_ABOVE, 50_000) == "lloyd"
    assert resolve_algorithm("auto", MINIBATCH_ABOVE + 1, TWO_LEVEL_FROM) == "twolevel"
    assert resolve_algorithm("auto", MINIBATCH_ABOVE + 1, TWO_LEVEL_FROM - 1) == "minibatch"
    assert resolve_algorithm("lloyd", 10**7, 10**4) == "lloyd"


@pytest.mark.parametrize("seed", [0, 1])
def test_two_level_inertia_close_to_flat_lloyd(seed):
    # 40 uneven blobs, 4 centres each on average: the two-level answer is within 3% of flat Lloyd's
    X = _blobs(40, 150, 6, seed, spread=0.3)
    k = 160
    flat = lloyd_centers(torch.as_tensor(X), k, seed)
    tl = two_level_kmeans(torch.as_tensor(X), k, seed)
    assert tl.centers.shape == (k, 6) and tl.centers.dtype == np.float32
    assert len(tl.row_group) == len(X) and tl.center_group.shape == (k,)
    assert _inertia(X, tl.centers) <= 1.03 * _inertia(X, flat)


def test_two_level_shares_follow_group_sizes():
    X = _blobs(30, 100, 4, 3)
    k = 90
    tl = two_level_kmeans(torch.as_tensor(X), k, 0)
    sizes = np.bincount(tl.row_group)
    np.testing.assert_array_equal(np.bincount(tl.center_group, minlength=len(sizes)), allocate_proportional(sizes, k))
    assert len(sizes) == int(np.ceil(np.sqrt(k)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 120), frac=st.floats(0.01, 1.0), dup=st.booleans(),
       normalize=st.booleans())
def test_twolevel_selector_picks_distinct_rows(seed, n, frac, dup, normalize):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    if dup:
        X[n // 3:] = X[0]  # fewer distinct points than picks
    b = max(1, int(frac * n))
    sel = KMeansSelector(algorithm="twolevel", random_state=seed, normalize=normalize)
    idx = sel.select(X, b).indices
    assert idx.shape == (b,) and len(np.unique(idx)) == b and idx.min() >= 0 and idx.max() < n
    again = KMeansSelector(algorithm="twolevel", random_state=seed, normalize=normalize).select(X, b).indices
    np.testing.assert_array_equal(idx, again)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twolevel_selector_covers_every_blob(seed):
    # 25 tight, far-apart blobs of uneven size and 100 picks: every blob gets at least one. (With as many picks
    # as blobs it may not: a coarse cluster holding a few small blobs can get fewer picks than it has blobs.)
    X = _blobs(25, 40, 5, seed, spread=0.01)
    centres = np.random.default_rng(seed).normal(size=(25, 5)) * 3.0  # _blobs' first draw with that seed
    blob_of = np.argmin(((X[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
    idx = KMeansSelector(algorithm="twolevel", random_state=seed).select(X, 100).indices
    assert set(blob_of[idx].tolist()) == set(range(25))


def test_unknown_algorithm_names_twolevel():
    with pytest.raises(ValueError, match="twolevel"):
        KMeansSelector(algorithm="nope").select(np.zeros((5, 2), dtype=np.float32) + np.arange(5)[:, None], 2)


def test_auto_dispatches_to_two_level_above_the_threshold(monkeypatch):
    from bilaf.algorithms import kmeans as km
    from bilaf.selectors import kmeans as selector

    calls = []
    real = km.two_level_kmeans

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(selector, "two_level_kmeans", spy)  # where the selector calls it
    monkeypatch.setattr(km, "MINIBATCH_ABOVE", 300)  # the rule, on a pool small enough for a test
    monkeypatch.setattr(km, "TWO_LEVEL_FROM", 20)
    X = np.random.default_rng(0).normal(size=(301, 2)).astype(np.float32)
    idx = KMeansSelector(random_state=0).select(X, 20).indices
    assert calls == [20] and len(np.unique(idx)) == 20
    KMeansSelector(random_state=0).select(X, 19)  # below TWO_LEVEL_FROM: MiniBatchKMeans
    KMeansSelector(random_state=0).select(X[:300], 20)  # not above MINIBATCH_ABOVE: flat Lloyd's
    assert calls == [20]
