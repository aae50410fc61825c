"""The Ray executor of BiLAF's stage 2: the pipeline's assignment and per-class map as Ray tasks.

:class:`RayExecutor` implements :class:`~bilaf.method.pipeline.Executor`; the
functions here are what its tasks run (``_assign_shard``, ``_run_group``) and
how tensors travel (as numpy arrays, zero-copy in Ray's object store). See
:mod:`bilaf.engines.ray` for the estimator that uses it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..method.assign import assign_to_cores
from ..method.pipeline import Assignment, Stage2Config, single_thread_task

__all__ = ["RayExecutor"]


def _cluster_cpus(ray) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # pragma: no cover - a client without cluster info
        return 1


def _largest_node_cpus(ray) -> float:
    try:
        cpus = [float(nd.get("Resources", {}).get("CPU", 0)) for nd in ray.nodes() if nd.get("Alive", True)]
        return max(cpus) if cpus and max(cpus) > 0 else 1.0
    except Exception:  # pragma: no cover - a client without node info
        return 1.0


# -- transport: torch tensors travel as numpy arrays (zero-copy in Ray's object store) -----------------------

class _Array:
    """A tensor in transit: its values as a numpy array (back to a torch tensor in the task)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __reduce__(self):
        return (_Array, (self.a,))


def _pack(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return _Array(v.detach().cpu().numpy())
    return v


def _unpack(v: Any, device: str) -> Any:
    if isinstance(v, _Array):
        # a writable copy: arrays read from the object store are read-only views
        return torch.from_numpy(np.array(v.a, copy=True)).to(device)
    return v


def _to_cpu(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.cpu()
    if isinstance(v, tuple):
        return tuple(_to_cpu(x) for x in v)
    return v


def _set_threads(threads: int) -> None:
    # torch's thread count changes how MKL splits its sums, hence the last bits of a distance:
    # a task uses as many threads as the local run it must match
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _unpack_task(task: Any, device: str) -> Any:
    """A per-class task (a named tuple) with its tensors back in torch."""
    return type(task)(*(_unpack(v, device) for v in task))


def _pack_task(task: Any) -> Any:
    return type(task)(*(_pack(v) for v in task))


def _run_group(fn, group: Sequence[Any], shared: Any, config: Any, device: str, threads: int) -> List[Any]:
    """In a Ray task: ``fn(task, shared, config)`` for each task of a group of pseudo-classes, in order."""
    _set_threads(threads)
    shared_t = _unpack(shared, device)
    return [_to_cpu(fn(_unpack_task(task, device), shared_t, config)) for task in group]


def _assign_shard(Xs: np.ndarray, C: np.ndarray, local_cores: np.ndarray, dtype: str, memory_budget: Any,
                  device: str, threads: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In a Ray task: nearest-core assignment of one row shard.

    The core vectors ``C`` are put in front of the shard and the cores are
    numbered in that block: core k is row k of ``C``, or its own row in the
    shard when it lies there (``local_cores[k] = K + its position``), so a core
    in the shard joins its own pseudo-class exactly as in
    :func:`~bilaf.method.assign.assign_to_cores` on the whole pool.
    """
    _set_threads(threads)
    K = C.shape[0]
    T = torch.from_numpy(np.concatenate([C, Xs])).to(device)
    local_cores = np.array(local_cores, dtype=np.int64)  # writable (object-store arrays are read-only)
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    labels, d_inter, opp = assign_to_cores(T, local_cores, dtype=tdtype, memory_budget=memory_budget)
    return labels[K:], d_inter[K:].cpu().numpy(), opp[K:].cpu().numpy()


def _bounded_submit(ray, submit, jobs: Iterable[Any], max_in_flight: int) -> List[Any]:
    """Submit ``submit(job)`` for each job, at most ``max_in_flight`` unfinished at once; refs in job order."""
    refs: List[Any] = []
    pending: List[Any] = []
    for job in jobs:
        if len(pending) >= max_in_flight:
            _, pending = ray.wait(pending, num_returns=1)
        ref = submit(job)
        refs.append(ref)
        pending.append(ref)
    return refs


def _get_all(ray, refs: List[Any]) -> List[Any]:
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise


class RayExecutor:
    """Runs BiLAF's stage 2 as Ray tasks (the :class:`~bilaf.method.pipeline.Executor` of :class:`RayBiLAF`).

    The assignment is a map over row shards of the features; the per-class
    work goes in groups of pseudo-classes, the shared argument (the core
    vectors) once through the object store.

    Parameters
    ----------
    ray : module
        The connected ``ray`` module.
    threads : int
        torch threads in each task.
    cpus, gpus : float
        Resources Ray reserves for each task (above 0 GPUs, the tasks compute on CUDA).
    classes_per_task, rows_per_task, max_in_flight : int or None
        How the work is cut (see :class:`RayBiLAF`).
    """

    def __init__(self, ray: Any, *, threads: int, cpus: float, gpus: float = 0,
                 classes_per_task: Optional[int] = None, rows_per_task: Optional[int] = None,
                 max_in_flight: Optional[int] = None) -> None:
        self.ray = ray
        self.threads = threads
        self.cpus = cpus
        self.gpus = gpus
        self.classes_per_task = classes_per_task
        self.rows_per_task = rows_per_task
        self.max_in_flight = max_in_flight

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    def _remote(self, fn):
        return self.ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=3)(fn)

    def _slots(self) -> int:
        """Tasks the cluster runs at once."""
        if self.gpus > 0:
            return max(1, int(self.ray.cluster_resources().get("GPU", 1) // self.gpus))
        return max(1, int(_cluster_cpus(self.ray) // max(self.cpus, 1e-3)))

    def _window(self) -> int:
        if self.max_in_flight is not None:
            return int(self.max_in_flight)
        return max(4, 2 * self._slots())

    def assign(self, X: torch.Tensor, cores: np.ndarray, config: Stage2Config) -> Assignment:
        """Nearest-core assignment as a distributed map over row shards of ``X``."""
        ray = self.ray
        n, K = int(X.shape[0]), len(cores)
        rows = self.rows_per_task or max(4096, math.ceil(n / (4 * self._slots())))
        C_ref = ray.put(X[torch.as_tensor(cores, device=X.device)].detach().cpu().numpy())
        task = self._remote(_assign_shard)
        dtype = "float64" if config.dtype == torch.float64 else "float32"

        def submit(start: int):
            stop = min(n, start + rows)
            local = np.arange(K, dtype=np.int64)
            inside = (cores >= start) & (cores < stop)
            local[inside] = K + cores[inside] - start
            shard = X[start:stop].detach().cpu().numpy()
            return task.remote(shard, C_ref, local, dtype, config.memory_budget, self.device, self.threads)

        parts = _get_all(ray, _bounded_submit(ray, submit, range(0, n, rows), self._window()))
        labels = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
        d_inter = torch.from_numpy(np.concatenate([p[1] for p in parts])).to(X.device)
        opp = torch.from_numpy(np.concatenate([p[2] for p in parts])).to(X.device)
        return Assignment(labels, d_inter, opp)

    def map_classes(self, fn: Callable[[Any, Any, Stage2Config], Any], tasks: Iterable[Any], n_tasks: int,
                    config: Stage2Config, *, shared: Any = None, desc: str = "") -> List[Any]:
        """``fn(task, shared, config)`` for every pseudo-class as Ray tasks over groups of classes; in order."""
        if n_tasks == 0:
            return []
        ray = self.ray
        per_task = self.classes_per_task or max(1, math.ceil(n_tasks / (4 * self._slots())))
        remote = self._remote(_run_group)
        shared_ref = ray.put(_pack(shared))
        config_ref = ray.put(config)

        def grouped():
            # a group of small classes runs on one thread, as the local engine runs each of them
            group: List[Any] = []
            small = True
            for t in tasks:
                small = small and single_thread_task(t)
                group.append(_pack_task(t))
                if len(group) == per_task:
                    yield group, (1 if small else self.threads)
                    group, small = [], True
            if group:
                yield group, (1 if small else self.threads)

        refs = _bounded_submit(ray, lambda g: remote.remote(fn, g[0], shared_ref, config_ref, self.device, g[1]),
                               grouped(), self._window())
        out: List[Any] = []
        for part in _get_all(ray, refs):
            out.extend(part)
        if len(out) != n_tasks:  # pragma: no cover - a bug if reached
            raise RuntimeError(f"internal error: {len(out)} results for {n_tasks} pseudo-classes")
        return out
