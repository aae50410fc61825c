"""The automatic number of cores (``n_cores="auto"``, :func:`bilaf.method.n_cores.auto_n_cores`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from bilaf import BiLAF
from bilaf.method.n_cores import auto_n_cores


def _auto(X, budget, seed=0):
    return auto_n_cores(torch.as_tensor(np.asarray(X, dtype=np.float32)), budget, np.random.default_rng(seed))


def test_pool_without_clusters_spends_every_pick_on_cores():
    X = np.random.default_rng(0).standard_normal((3000, 64))
    a = _auto(X, 300)
    assert not a.structured
    assert a.n_cores == 300 and a.knee == 0
    assert max(a.returns) < 0.3


@pytest.mark.parametrize("centers", [10, 25])
def test_separated_clusters_get_cores_first_then_boundary_samples(centers):
    X, _ = make_blobs(6000, 32, centers=centers, cluster_std=1.0, center_box=(-10, 10), random_state=1)
    a = _auto(X, 600)
    assert a.structured and max(a.returns) >= 0.3
    assert centers <= a.knee <= 4 * centers  # about the number of clusters, never fewer
    assert a.n_cores == max(int(np.ceil(0.2 * 600)), 2 * a.knee)
    assert a.n_cores < 600


def test_budget_below_the_clusters_is_all_cores():
    X, _ = make_blobs(6000, 32, centers=50, cluster_std=1.0, center_box=(-10, 10), random_state=2)
    a = _auto(X, 40)
    assert a.n_cores == 40


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 400), d=st.integers(1, 12), budget_frac=st.floats(0.0, 1.0), seed=st.integers(0, 10**6),
       clusters=st.integers(1, 8))
def test_k_is_between_one_and_the_budget(n, d, budget_frac, seed, clusters):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(clusters, d))
    X = centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, d))
    budget = max(1, int(round(budget_frac * n)))
    a = _auto(X, budget, seed)
    assert 1 <= a.n_cores <= budget
    assert a.structured == (bool(a.returns) and max(a.returns) >= 0.3)
    assert len(a.ks) == len(a.returns) == len(a.mean_distance)
    assert all(x >= y - 1e-9 for x, y in zip(a.mean_distance, a.mean_distance[1:]))  # more seeds never cover worse


def test_bilaf_auto_on_clustered_pool_picks_boundary_samples():
    X, _ = make_blobs(3000, 16, centers=8, cluster_std=1.0, center_box=(-10, 10), random_state=3)
    sel = BiLAF(random_state=0)
    res = sel.select(X, 300)
    assert sel.auto_cores_.structured
    assert len(res.indices) == 300 and len(np.unique(res.indices)) == 300
    assert sel.n_cores_ == sel.auto_cores_.n_cores < 300
    assert len(res.boundary_indices) == 300 - sel.n_cores_
    sel.set_params(n_cores=20).select(X, 300)  # a refit with a fixed K drops the earlier automatic choice
    assert sel.auto_cores_ is None and sel.n_cores_ == 20
    with pytest.raises(TypeError, match="BiLAF got unknown option.s. ncores"):
        sel.set_params(ncores=5)


def test_bilaf_auto_on_cifar10_features_is_its_core_selection(shared_dir):
    """Real pretrained features show no clear cluster structure: every pick is a core (spherical k-means')."""
    d = shared_dir / "data" / "cifar10" / "effnet-lite0"
    X = np.load(d / "train_features.npy", mmap_mode="r")
    rows = np.sort(np.random.default_rng(0).choice(len(X), 4000, replace=False))
    X = np.asarray(X[rows], dtype=np.float32)
    sel = BiLAF(random_state=0, core_params={"max_iter": 20})
    res = sel.select(X, 40)
    assert sel.core_selector_ == "kmeans:normalize=True"
    assert not sel.auto_cores_.structured
    assert max(sel.auto_cores_.returns) < 0.3
    assert sel.n_cores_ == 40
    assert np.array_equal(np.sort(res.indices), sel.core_indices_)
    assert len(res.boundary_indices) == 0


def test_core_selector_auto_resolves_by_how_k_is_set():
    """core_selector="auto": spherical k-means with the automatic K, the paper's ActiveFT with a given K."""
    X = np.random.default_rng(3).normal(size=(300, 12)).astype(np.float32)
    auto = BiLAF(random_state=4, core_params={"max_iter": 20})
    spherical = BiLAF(random_state=4, core_selector="kmeans", core_params={"max_iter": 20, "normalize": True})
    assert np.array_equal(auto.select(X, 15).indices, spherical.select(X, 15).indices)
    assert auto.core_selector_ == "kmeans:normalize=True" and spherical.core_selector_ == "kmeans"
    fixed = BiLAF(n_cores=5, random_state=4, core_params={"n_iter": 10})
    paper = BiLAF(n_cores=5, random_state=4, core_selector="activeft", core_params={"n_iter": 10})
    assert np.array_equal(fixed.select(X, 15).indices, paper.select(X, 15).indices)
    assert fixed.core_selector_ == "activeft"
    with pytest.raises(TypeError, match=r"core selector 'kmeans' \(core_selector='auto' runs spherical k-means.*n_iter"):
        BiLAF(core_params={"n_iter": 10}).select(X, 15)  # ActiveFT's option, but auto K runs k-means
