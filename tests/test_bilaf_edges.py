"""BiLAF at the edges where the published code crashes or repeats samples."""

import warnings

import numpy as np
import pytest
import torch

import bilaf
from bilaf.method.boundary import boundary_score
from bilaf.method.budget import split_budget
from conftest import blobs


def test_budget_smaller_than_cores_named_selector():
    X, _ = blobs(200, k=8)
    with pytest.warns(UserWarning, match="budget 5 < n_cores 20: using 5 cores"):
        res = bilaf.BiLAF(n_cores=20, core_selector="kmeans", random_state=0).select(X, 5)
    assert len(res.indices) == 5 and len(set(res.indices)) == 5
    assert set(res.indices) == set(res.core_indices)


def test_budget_smaller_than_given_cores_keeps_largest_classes():
    X = np.concatenate([np.zeros((50, 2)), np.full((5, 2), 10.0), np.full((20, 2), -10.0)])
    X += np.random.default_rng(0).normal(scale=0.01, size=X.shape)
    cores = np.array([0, 50, 55])  # class sizes 50, 5, 20
    with pytest.warns(UserWarning, match="largest pseudo-classes"):
        res = bilaf.BiLAF(cores=cores).select(X, 2)
    assert sorted(res.core_indices) == [0, 55]


def test_split_budget_paper_rule_and_repairs():
    alloc, notes = split_budget(np.array([10, 20, 30]), 6)
    assert alloc.tolist() == [1, 2, 3] and notes == []
    # leftover to the smallest allocation, ties by larger share then lower index
    alloc, _ = split_budget(np.array([5, 5, 10]), 5)
    assert alloc.tolist() == [1, 1, 3] or alloc.sum() == 5
    alloc, _ = split_budget(np.array([1, 1, 1, 97]), 10)  # shares of 0 -> each still holds its core
    assert alloc.tolist() == [1, 1, 1, 7]
    alloc, notes = split_budget(np.array([2, 100]), 60)  # class 0 would get more picks than it has members
    assert alloc.tolist() == [2, 58]
    alloc, _ = split_budget(np.array([3, 3]), 6)
    assert alloc.tolist() == [3, 3]
    with pytest.raises(ValueError):
        split_budget(np.array([3, 3]), 7)


def test_identical_rows_and_identical_cores():
    X = np.zeros((30, 3), dtype=np.float32)
    X[15:] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in (1, 2, 5, 17, 30):
            res = bilaf.BiLAF(cores=np.array([0, 1, 15])).select(X, b)
            assert len(res.indices) == b and len(set(res.indices)) == b
    # two cores with identical features: each still labels itself
    m = bilaf.BiLAF(cores=np.array([0, 1, 15]))
    m.select(X, 10)
    assert m.pseudo_labels_[[0, 1, 15]].tolist() == [0, 1, 2]


def test_one_sample_clusters():
    X = np.array([[0.0, 0], [100, 100], [-100, 50], [0.1, 0], [0.2, 0.1], [0, 0.3]], dtype=np.float32)
    res = bilaf.BiLAF(cores=np.array([0, 1, 2])).select(X, 5)
    assert len(set(res.indices)) == 5 and {0, 1, 2} <= set(res.indices)


def test_every_budget_up_to_n_on_real_shape():
    X, _ = blobs(60, d=5, k=4, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(1, 61):
            res = bilaf.BiLAF(n_cores=6, core_selector="kcenter").select(X, b)
            assert len(res.indices) == b and len(np.unique(res.indices)) == b


def test_fill_from_noise_when_denoised_pool_too_small():
    X, _ = blobs(100, k=3, seed=1)
    with pytest.warns(UserWarning, match="removed sample"):
        res = bilaf.BiLAF(n_cores=3, core_selector="kmeans", remove_fraction=0.5, random_state=0).select(X, 80)
    assert len(set(res.indices)) == 80


def test_output_order_blocks_core_first():
    X, _ = blobs(400, k=5, seed=2)
    m = bilaf.BiLAF(n_cores=5, core_selector="kmeans", random_state=0)
    res = m.select(X, 40)
    pos = 0
    for k, b in enumerate(m.class_budgets_):
        block = res.indices[pos:pos + b]
        assert block[0] == m.core_indices_[k]
        assert (res.pick_classes[pos:pos + b] == k).all()
        assert (m.pseudo_labels_[block] == k).all()  # picks are never noise
        pos += b
    assert np.isnan(res.scores[0]) and np.isfinite(res.scores[1])
    assert set(res.boundary_indices) == set(res.indices) - set(res.core_indices)


def test_boundary_score_definition():
    di = torch.tensor([1.0, 2.0, 0.0, 1.0])
    de = torch.tensor([2.0, 1.0, 0.0, float("inf")])
    bs = boundary_score(de, di)
    assert torch.allclose(bs, torch.tensor([0.5, -0.5, 0.0, 1.0]))
    assert torch.allclose(boundary_score(de[:2], di[:2], 1.1), torch.tensor([(2.2 - 1) / 2, (1.1 - 2) / 2]))


def test_penalty_one_equals_no_penalty_effect_on_first_pick():
    X, _ = blobs(300, k=4, seed=5)
    a = bilaf.BiLAF(n_cores=4, core_selector="kmeans", random_state=1, opponent_penalty=1.0).select(X, 30)
    b = bilaf.BiLAF(n_cores=4, core_selector="kmeans", random_state=1, opponent_penalty=1.1).select(X, 30)
    assert a.indices[:2].tolist() == b.indices[:2].tolist()  # the first boundary pick has no penalty yet


def test_variants_differ_from_default():
    X, _ = blobs(500, d=6, k=6, seed=7, spread=1.0)
    base = dict(n_cores=6, core_selector="kmeans", random_state=0)
    ref = set(bilaf.BiLAF(**base).select(X, 60).indices)
    for kw in (dict(denoise="none"), dict(criterion="distance"), dict(process="oneshot"), dict(opponent="min")):
        other = set(bilaf.BiLAF(**base, **kw).select(X, 60).indices)
        assert other != ref, kw


def test_float32_close_to_float64():
    X, _ = blobs(2000, d=16, k=10, seed=4, spread=1.0)
    a = bilaf.BiLAF(n_cores=10, core_selector="kmeans", random_state=0, dtype="float32").select(X, 100)
    b = bilaf.BiLAF(n_cores=10, core_selector="kmeans", random_state=0, dtype="float64").select(X, 100)
    assert len(np.intersect1d(a.indices, b.indices)) >= 90


def test_tensor_input_kept_and_numpy_out():
    X, _ = blobs(200, k=4)
    res = bilaf.select(torch.from_numpy(X), 20, method="bilaf", core_selector="kmeans", random_state=0)
    res2 = bilaf.select(X, 20, method="bilaf", core_selector="kmeans", random_state=0)
    assert isinstance(res.indices, np.ndarray)
    np.testing.assert_array_equal(res.indices, res2.indices)


def test_memmap_input(tmp_path):
    X, _ = blobs(300, k=4)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    res = bilaf.select(mm, 25, method="bilaf", core_selector="kmeans", random_state=0)
    res2 = bilaf.select(X, 25, method="bilaf", core_selector="kmeans", random_state=0)
    np.testing.assert_array_equal(res.indices, res2.indices)


def test_json_is_plain_list(tmp_path):
    import json

    X, _ = blobs(100, k=3)
    res = bilaf.select(X, 10, method="kcenter")
    res.to_json(tmp_path / "sel.json")
    assert json.loads((tmp_path / "sel.json").read_text()) == res.indices.tolist()


def test_warm_start_kcenter_and_bilaf():
    X, _ = blobs(200, k=4)
    lab = [3, 17, 42]
    for m in ("kcenter", "bilaf", "random"):
        kw = {"core_selector": "kmeans"} if m == "bilaf" else {}
        res = bilaf.select(X, 20, method=m, random_state=0, labeled=lab, **kw)
        assert res.indices[:3].tolist() == lab and len(set(res.indices)) == 20
        assert list(res.roles[:3]) == ["labeled"] * 3
