"""BiLAF's stage 2 as a pipeline: the typed configuration, the executor interface and the engines' contract."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import bilaf
from bilaf.method.pipeline import (Assignment, LocalExecutor, SINGLE_THREAD_ROWS, Stage2Config, run_stage2,
                                   single_thread_task)

SRC = Path(bilaf.__file__).resolve().parent


class RecordingExecutor(LocalExecutor):
    """An engine of its own: runs the tasks in reverse order (as another worker pool might finish them),
    through a pickle round trip, and returns the results in order; records what it was asked."""

    def __init__(self) -> None:
        self.calls = []

    def assign(self, X, cores, config):
        self.calls.append(("assign", len(cores)))
        out = super().assign(X, cores, config)
        return Assignment(*pickle.loads(pickle.dumps(tuple(out))))

    def map_classes(self, fn, tasks, n_tasks, config, *, shared=None, desc=""):
        tasks = [pickle.loads(pickle.dumps(t)) for t in tasks]
        assert len(tasks) == n_tasks
        self.calls.append((fn.__name__, n_tasks, [single_thread_task(t) for t in tasks]))
        config = pickle.loads(pickle.dumps(config))
        out = [None] * n_tasks
        for i in reversed(range(n_tasks)):
            out[i] = fn(tasks[i], shared, config)
        return out


class EngineBiLAF(bilaf.BiLAF):
    """BiLAF on another engine through the public hook only."""

    def executor(self):
        self.engine = RecordingExecutor()
        return self.engine


def _pool(n=600, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(6, d))
    return (centres[rng.integers(0, 6, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("kw", [dict(), dict(opponent="min", denoise="density"), dict(dtype="float64"),
                                dict(n_cores=12, core_selector="kmeans", process="oneshot")])
def test_another_executor_gives_the_same_selection(kw):
    X = _pool()
    ref = bilaf.BiLAF(random_state=3, **kw).select(X, 40)
    sel = EngineBiLAF(random_state=3, **kw)
    res = sel.select(X, 40)
    np.testing.assert_array_equal(res.indices, ref.indices)
    np.testing.assert_array_equal(res.pseudo_labels, ref.pseudo_labels)
    np.testing.assert_array_equal(res.scores, ref.scores)
    names = [c[0] for c in sel.engine.calls]
    assert names == ["assign", "denoise_class", "select_class"]


def test_given_cores_trimmed_to_the_budget_through_the_executor():
    X = _pool()
    cores = np.arange(0, 600, 50)  # 12 cores, budget 5
    sel = EngineBiLAF(cores=cores, random_state=0)
    with pytest.warns(UserWarning, match="kept the 5 cores with the largest"):
        res = sel.select(X, 5)
    assert [c[0] for c in sel.engine.calls][:2] == ["assign", "assign"]  # assigned again after the trim
    assert len(res.indices) == 5 and set(res.core_indices) <= set(cores.tolist())


def test_stage2_config_is_typed_picklable_and_follows_the_estimator():
    sel = bilaf.BiLAF(density_k=7, cycle_fraction=0.2, remove_fraction=0.05, opponent_penalty=1.5, opponent="min",
                      denoise="density", criterion="distance", process="oneshot", dtype="float64",
                      memory_budget="64MB")
    cfg = sel.stage2_config()
    assert cfg == Stage2Config(denoise="density", density_k=7, cycle_fraction=0.2, remove_fraction=0.05,
                               opponent_penalty=1.5, opponent="min", criterion="distance", process="oneshot",
                               dtype=torch.float64, memory_budget="64MB", verbose=False)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(Exception):
        cfg.density_k = 3  # frozen


def test_run_stage2_directly_equals_bilaf_with_given_cores():
    X = _pool()
    cores = np.sort(np.random.default_rng(1).choice(600, 9, replace=False))
    ref = bilaf.BiLAF(cores=cores).select(X, 30)
    out = run_stage2(torch.from_numpy(X), cores, 30, bilaf.BiLAF().stage2_config())
    np.testing.assert_array_equal(out.picks, ref.indices)
    np.testing.assert_array_equal(out.pseudo_labels, ref.pseudo_labels)


def test_small_classes_run_single_threaded_and_threads_come_back():
    """Regression: per-class work on small pseudo-classes ran on the whole thread team; on an idle 2-core
    machine a selection with given cores took 8.4x the CPU time of one thread (benchmarks/results/threads.md)."""
    from bilaf.method.pipeline import DenoiseTask

    seen = []

    def probe(task, shared, config):
        seen.append(torch.get_num_threads())
        return 0

    def task(rows):
        return DenoiseTask(torch.zeros(rows, 2), 0)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sizes = [10, 20, SINGLE_THREAD_ROWS, 5, SINGLE_THREAD_ROWS + 1, 7]
        LocalExecutor().map_classes(probe, (task(r) for r in sizes), len(sizes), Stage2Config())
        assert seen == [1, 1, 2, 1, 2, 1]
        assert torch.get_num_threads() == 2  # restored after a run that ended on a small class

        def boom(task, shared, config):
            raise RuntimeError("class failed")

        with pytest.raises(RuntimeError, match="class failed"):
            LocalExecutor().map_classes(boom, iter([task(3)]), 1, Stage2Config())
        assert torch.get_num_threads() == 2  # and after an error
    finally:
        torch.set_num_threads(before)


def test_the_pipeline_marks_classes_by_their_size():
    X = _pool(n=2 * SINGLE_THREAD_ROWS + 200, d=4)
    small = EngineBiLAF(cores=np.arange(0, len(X), 100), remove_fraction=0.1)
    small.select(X, 60)
    maps = [c for c in small.engine.calls if c[0] != "assign"]
    assert len(maps) == 2 and all(all(flags) for _, _, flags in maps)
    big = EngineBiLAF(cores=[0, 1], denoise="none")  # two classes: one holds at least half the pool
    big.select(X, 4)
    maps = [c for c in big.engine.calls if c[0] != "assign"]
    assert all(not all(flags) for _, _, flags in maps)


def test_the_ray_engine_touches_no_private_method_of_bilaf():
    tree = ast.parse((SRC / "engines" / "ray.py").read_text() + "\n" + (SRC / "engines" / "ray_executor.py").read_text())
    bilaf_private = {n.name for n in ast.walk(ast.parse((SRC / "selectors" / "bilaf.py").read_text()))
                     if isinstance(n, ast.FunctionDef) and n.name.startswith("_") and not n.name.startswith("__")}
    bilaf_private |= {n.name for n in ast.walk(ast.parse((SRC / "selectors" / "base.py").read_text()))
                      if isinstance(n, ast.FunctionDef) and n.name.startswith("_") and not n.name.startswith("__")}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RayBiLAF"):
        overridden = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
        assert not overridden & bilaf_private, overridden & bilaf_private
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not used & (bilaf_private - {"_check_engine"}), used & bilaf_private
