"""Selection constraints: candidates, exclude and near-duplicate removal, for every method."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bilaf
from bilaf.cli import main
from bilaf.constraints import SIMILARITY_TOLERANCE, near_duplicates

from conftest import blobs

FAST = {"bilaf": {"core_selector": "kmeans", "n_cores": 4}, "activeft": {"n_iter": 30}}


def _reference_dedup(X, t, order):
    """Greedy near-duplicate removal with the full similarity matrix (small inputs only)."""
    U = X.astype(np.float64)
    nrm = np.linalg.norm(U, axis=1, keepdims=True)
    U = np.divide(U, nrm, out=np.zeros_like(U), where=nrm > 0)
    kept, dropped, dup = [], [], []
    for i in order:
        if kept:
            hit = np.flatnonzero(U[kept] @ U[i] >= t - SIMILARITY_TOLERANCE)
            if len(hit):
                dropped.append(int(i))
                dup.append(kept[hit[0]])
                continue
        kept.append(int(i))
    return dropped, dup


def _with_duplicates(seed, n=120, d=5, n_dup=30, noise=1e-2):
    """Random rows, then scaled copies: half exact (same direction), half with noise (cosine mostly 0.999 to 0.99999)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    src = rng.choice(n - n_dup, size=n_dup)
    jitter = noise * rng.normal(size=(n_dup, d)) * (np.arange(n_dup) % 2)[:, None]
    X[n - n_dup:] = X[src] * rng.uniform(0.5, 2.0, size=(n_dup, 1)) + jitter
    return X


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.sampled_from([0.9, 0.99, 0.9999, 1.0]), block=st.integers(1, 50),
       shuffle=st.booleans())
def test_near_duplicates_matches_the_full_matrix_greedy(seed, t, block, shuffle):
    X = _with_duplicates(seed)
    # exactness is defined away from float32 rounding: no pair may sit within 1e-5 of the threshold
    U = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    S = U @ U.T
    assume(not np.any(np.abs(S[np.triu_indices(len(X), 1)] - (t - SIMILARITY_TOLERANCE)) < 1e-5))
    order = np.random.default_rng(seed).permutation(len(X)) if shuffle else np.arange(len(X))
    dropped, dup_of = near_duplicates(X, t, order=order, block_rows=block)
    ref_d, ref_o = _reference_dedup(X, t, order)
    assert dropped.tolist() == ref_d
    assert dup_of.tolist() == ref_o
    # whatever the blocks, the same answer
    d2, o2 = near_duplicates(X, t, order=order)
    assert d2.tolist() == dropped.tolist() and o2.tolist() == dup_of.tolist()
    # every kept pair is below the threshold; every dropped row is a duplicate of a kept one
    kept = np.setdiff1d(order, dropped)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U[kept] @ U[kept].T
    np.fill_diagonal(S, -1)
    assert (S < t).all()
    assert np.isin(dup_of, kept).all()
    assert (np.einsum("ij,ij->i", U[dropped], U[dup_of]) >= t - 2 * SIMILARITY_TOLERANCE).all()


def test_near_duplicates_finds_planted_copies_with_a_small_memory_budget():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    X[2000:2100] = X[:100] * 3.0
    dropped, dup_of = near_duplicates(X, 0.999, memory_budget="1MB")
    assert dropped.tolist() == list(range(2000, 2100))
    assert dup_of.tolist() == list(range(100))


def test_threshold_one_catches_exact_copies():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 384)).astype(np.float32)
    X[40:] = X[:10]
    X[30] = X[0] * 7.0  # same direction
    dropped, dup_of = near_duplicates(X, 1.0)
    assert dropped.tolist() == [30] + list(range(40, 50))
    assert dup_of.tolist() == [0] + list(range(10))


def test_zero_rows_are_never_dropped():
    X = np.zeros((5, 3), np.float32)
    X[0] = 1.0
    dropped, _ = near_duplicates(X, 0.5)
    assert dropped.size == 0


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), "0.9", True])
def test_dedup_rejects_bad_thresholds(bad):
    X, _ = blobs(n=50, d=4, k=2)
    with pytest.raises((ValueError, TypeError), match="dedup must be"):
        bilaf.select(X, 5, method="random", dedup=bad)


@pytest.mark.parametrize("method", bilaf.METHODS)
def test_every_method_respects_the_constraints(method):
    X, _ = blobs(n=240, d=6, k=4)
    X[200:230] = X[:30] * 1.5  # near-duplicates (same direction)
    rng = np.random.default_rng(0)
    candidates = np.sort(rng.choice(240, size=180, replace=False))
    exclude = candidates[:20]
    labeled = np.array([exclude[0], 7, 11])  # labeled samples stay whatever the constraints say
    res = bilaf.select(X, 20, method=method, random_state=0, labeled=labeled, candidates=candidates,
                       exclude=exclude, dedup=0.999, **FAST.get(method, {}))
    info = res.params["constraints"]
    dropped = np.asarray(info["dedup_dropped"])
    allowed = np.setdiff1d(np.setdiff1d(candidates, exclude), dropped)
    assert len(res) == 20 and len(np.unique(res.indices)) == 20
    assert res.indices[:3].tolist() == labeled.tolist()
    assert list(res.roles[:3]) == ["labeled"] * 3
    assert np.isin(res.indices[3:], allowed).all()
    assert not np.isin(res.indices, dropped).any()
    assert len(dropped) > 0 and info["dedup"] == 0.999
    assert info["selected_from"] == len(np.union1d(allowed, labeled))
    assert res.n_samples == 240
    assert any("dedup: dropped" in s for s in res.notes)
    if res.pseudo_labels is not None:
        assert res.pseudo_labels.shape == (240,)
        outside = np.setdiff1d(np.arange(240), np.union1d(allowed, labeled))
        assert (res.pseudo_labels[outside] == -1).all()
    assert np.isin(res.core_indices, res.indices).all() and np.isin(res.boundary_indices, res.indices).all()


@pytest.mark.parametrize("method", ["random", "kcenter", "kmeans", "bilaf"])
def test_candidates_equal_selecting_on_the_sub_pool(method):
    X, _ = blobs(n=200, d=5, k=4)
    cand = np.arange(3, 200, 3)
    got = bilaf.select(X, 12, method=method, random_state=4, candidates=cand, **FAST.get(method, {}))
    sub = bilaf.select(X[cand], 12, method=method, random_state=4, **FAST.get(method, {}))
    assert got.indices.tolist() == cand[sub.indices].tolist()
    assert got.core_indices.tolist() == cand[sub.core_indices].tolist()
    np.testing.assert_array_equal(got.scores, sub.scores)


def test_no_constraint_is_the_plain_selection():
    X, _ = blobs(n=200, d=5, k=4)
    a = bilaf.select(X, 12, method="bilaf", random_state=1, **FAST["bilaf"])
    b = bilaf.BiLAF(random_state=1, **FAST["bilaf"]).select(X, 12)
    assert a.indices.tolist() == b.indices.tolist() and "constraints" not in a.params


def test_fraction_budget_is_of_the_whole_pool():
    X, _ = blobs(n=200, d=5, k=4)
    res = bilaf.select(X, 0.05, method="random", random_state=0, candidates=np.arange(100))
    assert len(res) == 10 and (res.indices < 100).all()


def test_budget_larger_than_the_allowed_pool_is_one_clear_error():
    X, _ = blobs(n=100, d=5, k=4)
    with pytest.raises(ValueError, match="budget 30 exceeds the 20 samples left"):
        bilaf.select(X, 30, method="random", candidates=np.arange(20))


def test_index_parameters_follow_the_sub_pool():
    X, _ = blobs(n=200, d=5, k=4)
    cores = [150, 20, 90, 60]
    res = bilaf.select(X, 10, method="bilaf", random_state=0, cores=cores, exclude=[0, 1, 2, 3])
    assert sorted(res.core_indices.tolist()) == sorted(cores) and res.params["cores"] == cores
    with pytest.raises(ValueError, match="cores holds pool index 20"):
        bilaf.select(X, 10, method="bilaf", random_state=0, cores=cores, exclude=[20])


# -- the command line ---------------------------------------------------------------------------------

@pytest.fixture
def pool(tmp_path):
    X = np.random.default_rng(0).normal(size=(240, 8)).astype(np.float32)
    X[200:220] = X[:20] * 2.0
    np.save(tmp_path / "p.npy", X)
    (tmp_path / "p_ids.txt").write_text("".join(f"img{i}.jpg\n" for i in range(240)))
    return tmp_path / "p.npy"


def run(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_constraints_reach_the_selection_and_the_manifest(pool, tmp_path, capsys):
    (tmp_path / "ex.txt").write_text("img5.jpg\nimg6.jpg\n")  # ids
    (tmp_path / "cand.txt").write_text("".join(f"{i}\n" for i in range(0, 240, 2)))  # row numbers
    out = tmp_path / "s.csv"
    rc, _, err = run(["select", pool, "-b", "12", "-m", "kcenter", "--exclude", tmp_path / "ex.txt",
                      "--candidates", tmp_path / "cand.txt", "--dedup", "0.999", "-o", out], capsys)
    assert rc == 0, err
    idx = [int(line.split(",")[1]) for line in out.read_text().splitlines()[1:]]
    assert all(i % 2 == 0 and i != 6 for i in idx)
    man = json.loads((tmp_path / "s.csv.manifest.json").read_text())
    dropped = man["result"]["derived"]["constraints"]["dedup_dropped"]
    # even rows 200..218 copy even rows 0..18; row 6 is excluded, so its copy 206 stays
    assert dropped == [i for i in range(200, 220, 2) if i != 206]
    assert f"dropped {len(dropped)} near-duplicate(s)" in err and "img200.jpg" in err
    assert man["constraints"]["exclude"]["indices"] == [5, 6] and man["constraints"]["dedup"] == 0.999
    assert not set(idx) & set(dropped)
    # the manifest reproduces it, constraints included (CLI and Python)
    rc, _, err = run(["select", "--manifest", tmp_path / "s.csv.manifest.json"], capsys)
    assert rc == 0 and "identical" in err
    from bilaf.manifest import reproduce

    assert reproduce(tmp_path / "s.csv.manifest.json")[1]


@pytest.mark.parametrize("args,msg", [
    (["--dedup", "2"], "--dedup must be a number in (0, 1]"),
    (["--dedup", "x"], "--dedup must be a number in (0, 1]"),
    (["--exclude", "missing.txt"], "exclude file not found"),
    (["--candidates", "CAND"], "budget 12 exceeds the 3 samples left"),
])
def test_cli_bad_constraints_are_one_line(pool, tmp_path, capsys, args, msg):
    (tmp_path / "cand.txt").write_text("1\n2\n3\n")
    args = [str(tmp_path / "cand.txt") if a == "CAND" else a for a in args]
    rc, _, err = run(["select", pool, "-b", "12", "-m", "random", *args, "-o", tmp_path / "s.csv"], capsys)
    assert rc == 2 and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()


def test_dedup_device_and_tensor_input():
    import torch

    X = _with_duplicates(5)
    ref = near_duplicates(X, 0.99)
    for got in (near_duplicates(X, 0.99, device="auto"), near_duplicates(torch.from_numpy(X), 0.99)):
        assert got[0].tolist() == ref[0].tolist() and got[1].tolist() == ref[1].tolist()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            near_duplicates(X, 0.99, device="cuda")
    # a tensor pool through bilaf.select: same picks as the array
    a = bilaf.select(X, 10, method="kcenter", random_state=0, exclude=[0, 1], dedup=0.99)
    b = bilaf.select(torch.from_numpy(X), 10, method="kcenter", random_state=0, exclude=[0, 1], dedup=0.99)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.params["constraints"]["dedup_dropped"] == ref[0].tolist()
