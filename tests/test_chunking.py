"""Memory-bounded chunked passes give the same answer as one-block computation.

Every kernel of ``bilaf.kernels`` is run twice on the same small input: with a
memory budget so small that the pass is cut into many row blocks (down to one
row per block), and with ``"8GB"`` (one block). Integer-valued features make
every squared distance exact in float32 and float64, so the two runs, and a
brute-force numpy reference, must agree exactly, ties included (ties are
frequent with integers and must go to the lower index in every chunking).
Means are compared with a tolerance of a few ulps. Whole selections (BiLAF with
several options, ActiveFT) must be identical with ``memory_budget="1MB"`` and
``"8GB"``, and with budgets shrunk to a few hundred bytes.

Budgets below the public minimum of 1 MB are reached by patching the parser
that ``bilaf.kernels.chunks`` and ``bilaf.kernels.distances`` use (only inside these tests).
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bilaf.algorithms.tracked_argmax import TrackedArgmax
from bilaf.kernels import chunks, distances
from bilaf.selectors.activeft import ActiveFT
from bilaf.selectors.bilaf import BiLAF

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ONE_BLOCK = "8GB"
DTYPES = {"float32": torch.float32, "float64": torch.float64}

_parse = chunks.parse_memory_budget


def _small_ok(value):
    """``parse_memory_budget`` that also takes byte counts below 1 MB (tests only)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 < value < 2**20:
        return int(value)
    return _parse(value)


@contextmanager
def tiny_budgets(shrink: int = 1) -> Iterator[None]:
    """Let the kernels take budgets below 1 MB; with ``shrink`` > 1 every budget is divided by it."""
    def parse(value):
        return max(1, _small_ok(value) // shrink)

    with mock.patch.object(chunks, "parse_memory_budget", parse), \
            mock.patch.object(distances, "parse_memory_budget", parse):
        yield


@contextmanager
def count_chunks() -> Iterator[List[int]]:
    """Record the number of blocks of every ``row_chunks`` call, in every bilaf module that uses it."""
    counts: List[int] = []
    original = chunks.row_chunks

    def spy(*args, **kwargs):
        slices = list(original(*args, **kwargs))
        counts.append(len(slices))
        return iter(slices)

    patches = [mock.patch.object(mod, "row_chunks", spy) for name, mod in list(sys.modules.items())
               if name.startswith("bilaf") and getattr(mod, "row_chunks", None) is original]
    for p in patches:
        p.start()
    try:
        yield counts
    finally:
        for p in patches:
            p.stop()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny inputs gain nothing from intra-op threads, and on a shared machine threads cost a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------------
def int_matrix(max_rows: int = 40, max_cols: int = 6, lo: int = -3, hi: int = 3):
    shape = st.tuples(st.integers(1, max_rows), st.integers(1, max_cols))
    return arrays(np.int64, shape, elements=st.integers(lo, hi))


budgets = st.integers(1, 4096)  # bytes: from one row per block to a few blocks
dtypes = st.sampled_from(sorted(DTYPES))


def _exact_sq(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Exact squared distances between integer rows (int64)."""
    diff = A[:, None, :].astype(np.int64) - B[None, :, :].astype(np.int64)
    return (diff * diff).sum(axis=2)


def _t(a: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(DTYPES[dtype])


def _sqrt(sq: np.ndarray, dtype: str) -> np.ndarray:
    """Square roots of exact squared distances, by torch's own sqrt (its float32 sqrt is not always
    correctly rounded, so numpy's could differ in the last bit)."""
    return torch.as_tensor(sq).to(DTYPES[dtype]).sqrt().numpy()


# ------------------------------------------------------------------------------------------------
# row_chunks
# ------------------------------------------------------------------------------------------------
@settings(max_examples=200, **SETTINGS)
@given(n_rows=st.integers(0, 500), n_cols=st.integers(0, 300), budget=st.integers(1, 10**6),
       itemsize=st.sampled_from([4, 8]), temporaries=st.integers(1, 5))
def test_row_chunks_cover_rows_once_within_budget(n_rows, n_cols, budget, itemsize, temporaries):
    with tiny_budgets():
        slices = list(chunks.row_chunks(n_rows, n_cols, budget, itemsize=itemsize, temporaries=temporaries))
    covered = [i for sl in slices for i in range(sl.start, sl.stop)]
    assert covered == list(range(n_rows))
    per_row = max(1, n_cols) * itemsize * temporaries
    for sl in slices:
        rows = sl.stop - sl.start
        assert rows >= 1
        assert rows == 1 or rows * per_row <= budget


def test_real_budgets_chunk_and_one_block_does_not():
    with count_chunks() as counts:
        list(chunks.row_chunks(100_000, 1_000, "1MB", itemsize=4))
        list(chunks.row_chunks(100_000, 1_000, ONE_BLOCK, itemsize=4))
    assert counts[0] > 1 and counts[1] == 1


# ------------------------------------------------------------------------------------------------
# the kernels, chunked against one block against brute force
# ------------------------------------------------------------------------------------------------
@settings(max_examples=60, **SETTINGS)
@given(A=int_matrix(), data=st.data(), dtype=dtypes)
def test_pairwise_and_point_distances_are_exact(A, data, dtype):
    B = data.draw(arrays(np.int64, (data.draw(st.integers(1, 20)), A.shape[1]), elements=st.integers(-3, 3)))
    want = _sqrt(_exact_sq(A, B), dtype)
    got = distances.pairwise_distances(_t(A, dtype), _t(B, dtype)).numpy()
    np.testing.assert_array_equal(got, want)
    sq = distances.pairwise_distances(_t(A, dtype), _t(B, dtype), squared=True).numpy()
    np.testing.assert_array_equal(sq, _exact_sq(A, B).astype(np.dtype(dtype)))
    np.testing.assert_array_equal(distances.distances_to_point(_t(A, dtype), _t(B[0], dtype)).numpy(), want[:, 0])
    np.testing.assert_array_equal(distances.sq_norms(_t(A, dtype)).numpy(), (A * A).sum(1).astype(np.dtype(dtype)))


@settings(max_examples=80, **SETTINGS)
@given(X=int_matrix(max_rows=60), data=st.data(), k=st.integers(1, 4), budget=budgets, dtype=dtypes)
def test_nearest_centers_chunked_equals_one_block(X, data, k, budget, dtype):
    C = data.draw(arrays(np.int64, (data.draw(st.integers(1, 12)), X.shape[1]), elements=st.integers(-3, 3)))
    Xt, Ct, dt = _t(X, dtype), _t(C, dtype), DTYPES[dtype]
    with tiny_budgets(), count_chunks() as counts:
        d_small, i_small = distances.nearest_centers(Xt, Ct, k=k, dtype=dt, memory_budget=budget)
    d_one, i_one = distances.nearest_centers(Xt, Ct, k=k, dtype=dt, memory_budget=ONE_BLOCK)
    assert torch.equal(i_small, i_one) and torch.equal(d_small, d_one)
    # brute force: exact squared distances, ties to the lower centre index
    sq = _exact_sq(X, C)
    kk = min(k, len(C))
    want_i = np.argsort(sq, axis=1, kind="stable")[:, :kk]
    np.testing.assert_array_equal(i_one.numpy(), want_i)
    want_d = _sqrt(np.take_along_axis(sq, want_i, 1), dtype)
    np.testing.assert_array_equal(d_one.numpy(), want_d)
    if len(X) > 1 and budget < len(X) * len(C) * 4 * np.dtype(dtype).itemsize:
        assert counts[0] > 1  # the small budget really cut the pass


@settings(max_examples=80, **SETTINGS)
@given(G=int_matrix(max_rows=50), budget=budgets, dtype=dtypes)
def test_mean_distances_within_chunked_equals_one_block(G, budget, dtype):
    Gt = _t(G, dtype)
    with tiny_budgets():
        small = distances.mean_distances_within(Gt, memory_budget=budget)
    one = distances.mean_distances_within(Gt, memory_budget=ONE_BLOCK)
    want = np.sqrt(_exact_sq(G, G).astype(np.float64)).mean(axis=1)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(small.numpy(), one.numpy(), rtol=rtol, atol=0)
    np.testing.assert_allclose(one.numpy(), want, rtol=rtol, atol=0)


@settings(max_examples=80, **SETTINGS)
@given(G=int_matrix(max_rows=50), k=st.integers(1, 12), exclude_self=st.booleans(), budget=budgets, dtype=dtypes)
def test_knn_distances_within_chunked_equals_one_block(G, k, exclude_self, budget, dtype):
    Gt = _t(G, dtype)
    with tiny_budgets():
        small = distances.knn_distances_within(Gt, k, memory_budget=budget, exclude_self=exclude_self)
    one = distances.knn_distances_within(Gt, k, memory_budget=ONE_BLOCK, exclude_self=exclude_self)
    assert torch.equal(small, one)
    D = _sqrt(_exact_sq(G, G), dtype)
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    kk = min(k, len(G) - 1 if exclude_self else len(G))
    np.testing.assert_array_equal(one.numpy(), np.sort(D, axis=1)[:, :max(kk, 0)])


def _greedy_nearest_distinct(sq: np.ndarray) -> np.ndarray:
    """For each centre in order, the nearest sample not yet taken (ties: lower index). ``sq``: (K, n)."""
    taken = np.zeros(sq.shape[1], dtype=bool)
    out = []
    for row in sq:
        masked = np.where(taken, np.iinfo(np.int64).max, row)
        j = int(np.argmin(masked))
        taken[j] = True
        out.append(j)
    return np.asarray(out, dtype=np.int64)


@settings(max_examples=80, **SETTINGS)
@given(X=int_matrix(max_rows=50, lo=-2, hi=2), data=st.data(), extra=st.integers(0, 5), budget=budgets,
       dtype=dtypes)
def test_nearest_distinct_samples_euclidean_ties_chunked_equals_one_block(X, data, extra, budget, dtype):
    # integer features: many exact ties; a shortlist as long as the pool keeps every tied sample
    n_centres = data.draw(st.integers(1, len(X)))
    C = data.draw(arrays(np.int64, (n_centres, X.shape[1]), elements=st.integers(-2, 2)))
    Xt, Ct, dt = _t(X, dtype), _t(C, dtype), DTYPES[dtype]
    shortlist = len(X) + extra
    with tiny_budgets():
        small = distances.nearest_distinct_samples(Xt, Ct, metric="euclidean", dtype=dt, memory_budget=budget,
                                                 shortlist=shortlist)
    one = distances.nearest_distinct_samples(Xt, Ct, metric="euclidean", dtype=dt, memory_budget=ONE_BLOCK,
                                           shortlist=shortlist)
    np.testing.assert_array_equal(small, one)
    np.testing.assert_array_equal(one, _greedy_nearest_distinct(_exact_sq(C, X)))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 80), d=st.integers(2, 8), data=st.data(),
       shortlist=st.integers(1, 20), budget=budgets)
def test_nearest_distinct_samples_short_shortlist_chunked_equals_one_block(metric, seed, n, d, data, shortlist,
                                                                           budget):
    # continuous float64 data, d >= 2 (no ties, even in cosine), shortlists shorter than the pool: the exhausted-shortlist pass runs too
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    C = rng.normal(size=(data.draw(st.integers(1, n)), d))
    if data.draw(st.booleans()):  # centres on top of each other exhaust short shortlists
        C[:] = C[0]
    Xt, Ct = torch.as_tensor(X), torch.as_tensor(C)
    with tiny_budgets():
        small = distances.nearest_distinct_samples(Xt, Ct, metric=metric, dtype=torch.float64, memory_budget=budget,
                                                 shortlist=shortlist)
    one = distances.nearest_distinct_samples(Xt, Ct, metric=metric, dtype=torch.float64, memory_budget=ONE_BLOCK,
                                           shortlist=shortlist)
    np.testing.assert_array_equal(small, one)
    if metric == "cosine":
        score = -(C / np.linalg.norm(C, axis=1, keepdims=True)) @ (X / np.linalg.norm(X, axis=1, keepdims=True)).T
    else:
        score = ((C[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    taken = np.zeros(n, dtype=bool)
    want = []
    for row in score:
        j = int(np.argmin(np.where(taken, np.inf, row)))
        taken[j] = True
        want.append(j)
    np.testing.assert_array_equal(one, want)


def test_nearest_distinct_samples_more_duplicates_than_shortlist():
    X = torch.zeros((40, 3))
    C = torch.zeros((1, 3))
    one = distances.nearest_distinct_samples(X, C, memory_budget=ONE_BLOCK, shortlist=16)
    with tiny_budgets():
        small = distances.nearest_distinct_samples(X, C, memory_budget=1, shortlist=16)
    assert small.tolist() == [0]  # one row per block: the lowest index, as documented
    assert one.tolist() == [0]


# ------------------------------------------------------------------------------------------------
# whole selections
# ------------------------------------------------------------------------------------------------
def _mixture(seed: int, n: int, d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    return centres[y] + rng.normal(size=(n, d)) * rng.uniform(0.3, 1.0, size=k)[y, None]


def _run_bilaf(X, budget, memory_budget, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BiLAF(memory_budget=memory_budget, **params).select(X, budget)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.pseudo_labels, b.pseudo_labels)
    np.testing.assert_array_equal(a.core_indices, b.core_indices)


OPTIONS: List[Dict] = [
    {},
    {"opponent": "min"},
    {"denoise": "density"},
    {"process": "oneshot", "criterion": "distance"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@settings(max_examples=12, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(30, 200), d=st.integers(2, 12), data=st.data())
def test_bilaf_selection_tiny_budgets_equal_one_block(options, seed, n, d, data):
    X = _mixture(seed, n, d, data.draw(st.integers(2, 8)))
    n_cores = data.draw(st.integers(1, max(1, n // 10)))
    budget = data.draw(st.integers(n_cores, min(n, 4 * n_cores + 5)))
    cores = np.random.default_rng(seed).choice(n, n_cores, replace=False)
    params = dict({"dtype": "float64", "density_k": 5, "core_selector": cores}, **options)
    one = _run_bilaf(X, budget, ONE_BLOCK, **params)
    with tiny_budgets(shrink=4096), count_chunks() as counts:  # "1MB" becomes 256 bytes: a few rows per block
        small = _run_bilaf(X, budget, "1MB", **params)
    assert max(counts) > 1
    _same(small, one)


def test_bilaf_float32_selection_depends_on_blocks_only_through_rounding():
    """Known limitation, pinned: in float32 a different block size can round a distance differently, and where
    two candidates agree to float32 precision the denoising or a pick can flip (here one pick of ten; found by
    the float64 property above when it also drew float32). float64 is exact at any block size."""
    X = _mixture(2, 117, 5, 2)
    cores = np.random.default_rng(2).choice(117, 4, replace=False)
    params = dict(density_k=5, cores=cores)
    one64 = _run_bilaf(X, 10, ONE_BLOCK, dtype="float64", **params)
    with tiny_budgets(shrink=4096):
        small64 = _run_bilaf(X, 10, "1MB", dtype="float64", **params)
    _same(small64, one64)
    one32 = _run_bilaf(X, 10, ONE_BLOCK, dtype="float32", **params)
    with tiny_budgets(shrink=4096):
        small32 = _run_bilaf(X, 10, "1MB", dtype="float32", **params)
    np.testing.assert_array_equal(one32.core_indices, small32.core_indices)
    assert len(np.intersect1d(one32.indices, small32.indices)) >= 9  # at most one pick flips
    np.testing.assert_allclose(one32.scores[~np.isnan(one32.scores)], one64.scores[~np.isnan(one64.scores)],
                               atol=1e-4)  # the unchunked float32 run agrees with float64


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bilaf_selection_1mb_equals_8gb(dtype):
    """Public budgets, no patching: "1MB" cuts the assignment pass, "8GB" runs every pass in one block."""
    X = _mixture(0, 3000, 48, 40)
    cores = np.random.default_rng(1).choice(len(X), 30, replace=False)
    params = dict(cores=cores, dtype=dtype)
    with count_chunks() as counts_one:
        one = _run_bilaf(X, 150, ONE_BLOCK, **params)
    with count_chunks() as counts_small:
        small = _run_bilaf(X, 150, "1MB", **params)
    assert max(counts_one) == 1 and max(counts_small) > 1
    _same(small, one)


@settings(max_examples=8, **SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(20, 200), d=st.integers(2, 10), data=st.data())
def test_activeft_selection_tiny_budgets_equal_one_block(seed, n, d, data):
    X = _mixture(seed, n, d, 5)
    budget = data.draw(st.integers(1, max(1, n // 5)))

    def run(mb):
        return ActiveFT(n_iter=15, random_state=seed, dtype="float64", memory_budget=mb).select(X, budget)

    one = run(ONE_BLOCK)
    with tiny_budgets(shrink=4096), count_chunks() as counts:
        small = run("1MB")
    assert max(counts) > 1
    np.testing.assert_array_equal(small.indices, one.indices)


# ------------------------------------------------------------------------------------------------
# TrackedArgmax: the pruned argmax that ActiveFT uses across its steps
# ------------------------------------------------------------------------------------------------
@settings(max_examples=40, **SETTINGS)
@given(F=int_matrix(max_rows=60, max_cols=5), data=st.data(), L=st.integers(1, 5),
       refresh=st.sampled_from([0.0, 0.3, 1.0]), budget=budgets, dtype=dtypes)
def test_tracked_argmax_equals_full_argmax_every_step(F, data, L, refresh, budget, dtype):
    """Integer rows and centres make every similarity exact, so the pruned answer must equal
    ``torch.max(F @ C.T)`` exactly at every step, ties to the lower centre included, whatever the
    number of candidates, the refresh policy, the chunking and the rows asked for."""
    d = F.shape[1]
    K = data.draw(st.integers(1, 12))
    C = data.draw(arrays(np.int64, (K, d), elements=st.integers(-3, 3)))
    Ft = _t(F, dtype)
    with tiny_budgets():
        tracker = TrackedArgmax(Ft, n_candidates=L, refresh_fraction=refresh, memory_budget=budget)
        for _ in range(data.draw(st.integers(1, 8))):
            # a step moves a few centres by small integer amounts (sometimes onto each other)
            moves = data.draw(arrays(np.int64, (K, d), elements=st.integers(-1, 1)))
            keep = data.draw(arrays(np.bool_, (K,)))
            C = C + moves * (~keep)[:, None]
            if data.draw(st.booleans()):  # all rows
                rows, Fr = None, Ft
            else:  # a mini-batch of rows, in any order
                r = data.draw(st.lists(st.integers(0, len(F) - 1), min_size=1, max_size=len(F), unique=True))
                rows, Fr = torch.as_tensor(r), Ft[torch.as_tensor(r)]
            s, pos = tracker(_t(C, dtype), rows)
            want_s, want_pos = torch.max(Fr @ _t(C, dtype).T, dim=1)
            np.testing.assert_array_equal(pos.numpy(), want_pos.numpy())
            np.testing.assert_array_equal(s.numpy(), want_s.numpy())


def test_tracked_argmax_prunes_slow_moves():
    """Slowly moving centres: most steps prove most rows from their candidates."""
    g = torch.Generator().manual_seed(0)
    F = torch.nn.functional.normalize(torch.randn(2000, 8, generator=g, dtype=torch.float64), dim=1)
    C = torch.nn.functional.normalize(torch.randn(30, 8, generator=g, dtype=torch.float64), dim=1)
    tracker = TrackedArgmax(F)
    for _ in range(50):
        C = torch.nn.functional.normalize(C + 1e-3 * torch.randn(C.shape, generator=g, dtype=torch.float64), dim=1)
        s, pos = tracker(C)
        want_s, want_pos = torch.max(F @ C.T, dim=1)
        assert torch.equal(pos, want_pos)
        torch.testing.assert_close(s, want_s, rtol=0, atol=1e-12)
    assert tracker.n_full_ == 1  # only the first call
    assert tracker.n_rows_recomputed_ < 50 * 2000 / 10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [None, 150])
def test_activeft_pruned_argmax_selects_as_full(dtype, batch_size):
    X = _mixture(3, 600, 8, 6)
    kw = dict(n_iter=60, random_state=3, dtype=dtype, batch_size=batch_size)
    pruned = ActiveFT(argmax="pruned", **kw).select(X, 20)
    full = ActiveFT(argmax="full", **kw).select(X, 20)
    np.testing.assert_array_equal(pruned.indices, full.indices)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), d=st.integers(1, 30), seed=st.integers(0, 2**16),
       double=st.booleans(), dup=st.booleans())
def test_pairwise_distances_bit_for_bit_the_textbook_expression(n, m, d, seed, double, dup):
    # the in-place form must round exactly as (|a|^2 + |b|^2) - 2 AB, clamped at 0: selections depend on it
    import torch

    from bilaf.kernels.distances import pairwise_distances

    rng = np.random.default_rng(seed)
    dt = torch.float64 if double else torch.float32
    A = torch.as_tensor(rng.normal(size=(n, d))).to(dt)
    B = torch.as_tensor(rng.normal(size=(m, d))).to(dt)
    if dup:
        B[: m // 2] = A[0]
    a_sq, b_sq = (A * A).sum(1), (B * B).sum(1)
    ref = (a_sq[:, None] + b_sq[None, :] - 2.0 * (A @ B.T)).clamp(min=0.0)
    assert torch.equal(pairwise_distances(A, B, squared=True), ref)
    assert torch.equal(pairwise_distances(A, B), ref.sqrt())
