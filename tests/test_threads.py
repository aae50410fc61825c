"""The thread policy: bilaf calls run with as many threads as there are free cores, and restore the caller's."""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bilaf import threads
from bilaf.selectors.bilaf import BiLAF
from bilaf.selectors.random import RandomSelector


@pytest.fixture(autouse=True)
def _restore():
    before_threads, before_policy = torch.get_num_threads(), threads.get_thread_policy()
    yield
    torch.set_num_threads(before_threads)
    threads.set_thread_policy(before_policy)


@given(cap=st.integers(1, 256), free=st.floats(0, 300, allow_nan=False), more=st.floats(0, 10, allow_nan=False))
def test_choose_threads_between_one_and_cap_and_monotone(cap, free, more):
    n = threads.choose_threads(cap, free)
    assert 1 <= n <= cap
    assert n <= max(1, int(free) + 1)
    assert threads.choose_threads(cap, free + more) >= n


def test_choose_threads_counts_a_core_only_when_mostly_idle():
    assert threads.choose_threads(2, 2.0) == 2
    assert threads.choose_threads(2, 1.0) == 1  # one of two cores busy: one thread
    assert threads.choose_threads(2, 1.5) == 1  # half a core free is not a core
    assert threads.choose_threads(2, 1.8) == 2
    assert threads.choose_threads(2, 0.0) == 1


def test_busy_elsewhere_reads_proc_stat_and_leaves_out_own_work():
    # two CPUs, 100 jiffies each over the window; 120 busy in all, 20 of them (0.2 s at HZ=100) this process's
    samples = iter([(1000, 10_000), (1120, 10_200)])
    own = iter([5.0, 5.2])
    with mock.patch.object(threads, "_cpu_jiffies", lambda cpus: next(samples)), \
            mock.patch.object(threads, "_own_cpu_seconds", lambda: next(own)), \
            mock.patch.object(threads.time, "sleep", lambda s: None), \
            mock.patch.object(threads.os, "sysconf", lambda name: 100):
        busy = threads._busy_elsewhere([0, 1])
    assert busy == pytest.approx(1.2 - 0.2)


def test_free_cores_falls_back_to_load_average_without_proc_stat():
    with mock.patch.object(threads, "_cpu_jiffies", lambda cpus: None), \
            mock.patch.object(threads, "_allowed_cpus", lambda: [0, 1, 2, 3]), \
            mock.patch.object(threads.os, "getloadavg", lambda: (1.5, 0.0, 0.0)):
        assert threads.free_cores(refresh=True) == pytest.approx(2.5)
    threads.free_cores(refresh=True)  # leave a real measurement in the cache


def test_limit_threads_sets_and_restores():
    torch.set_num_threads(2)
    with mock.patch.object(threads, "free_cores", lambda **kw: 1.0):
        with threads.limit_threads() as n:
            assert n == 1 and torch.get_num_threads() == 1
            with threads.limit_threads() as inner:  # nested: unchanged
                assert inner == 1 and torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_limit_threads_never_exceeds_the_callers_setting():
    torch.set_num_threads(1)
    with mock.patch.object(threads, "free_cores", lambda **kw: 64.0):
        with threads.limit_threads() as n:
            assert n == 1
    assert torch.get_num_threads() == 1


def test_limit_threads_restores_after_an_error():
    torch.set_num_threads(2)
    with mock.patch.object(threads, "free_cores", lambda **kw: 0.0):
        with pytest.raises(RuntimeError):
            with threads.limit_threads():
                raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    with threads.limit_threads() as n:  # the nesting depth was reset too
        assert n >= 1


def test_fixed_policy_and_bad_values():
    threads.set_thread_policy(1)
    torch.set_num_threads(2)
    with threads.limit_threads() as n:
        assert n == 1 == torch.get_num_threads()
    assert threads.get_thread_policy() == 1
    threads.set_thread_policy("auto")
    assert threads.get_thread_policy() == "auto"
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ValueError, match="threads must be 'auto' or a positive integer"):
            threads.set_thread_policy(bad)


def test_bad_environment_value_does_not_break_import(monkeypatch):
    monkeypatch.setenv("BILAF_THREADS", "many")
    assert threads._policy_from_env() == "auto"
    monkeypatch.setenv("BILAF_THREADS", "3")
    assert threads._policy_from_env() == 3


class _Spy(RandomSelector):
    seen: list = []

    def _select(self, X, budget, rng, timer):
        _Spy.seen.append(torch.get_num_threads())
        return super()._select(X, budget, rng, timer)


def test_select_runs_with_the_free_cores_and_restores():
    """Regression: a selection next to a busy neighbour ran with one thread per core (not per free core)."""
    torch.set_num_threads(2)
    _Spy.seen = []
    with mock.patch.object(threads, "free_cores", lambda **kw: 1.0):
        _Spy(random_state=0).select(np.zeros((20, 3), np.float32), 5)
    assert _Spy.seen == [1]
    assert torch.get_num_threads() == 2


def test_selection_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(20, 16))[rng.integers(0, 20, 3000)] * 3 + rng.normal(size=(3000, 16))).astype(np.float32)
    out = []
    for n in (1, 2):
        threads.set_thread_policy(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(BiLAF(n_cores=30, core_selector="kmeans", random_state=0).select(X, 150).indices)
    np.testing.assert_array_equal(out[0], out[1])
