"""BiLAF's stage 2 on a Ray cluster: the same selection as the local engine, computed by Ray tasks.

What runs where:

* stage 1 (the cores) runs in the driver, as in :class:`~bilaf.selectors.bilaf.BiLAF`;
* the nearest-core assignment is a distributed map over row shards of the
  features: each task gets one shard and the core vectors and returns the
  shard's ``labels``, ``d_inter`` and ``opponent`` (the same
  :func:`~bilaf.method.assign.assign_to_cores` the local engine runs);
* stage 2 (denoising, Boundary Scores, iterative selection) runs one Ray task
  per group of pseudo-classes: each needs only its members' features (and,
  for ``opponent="min"``, the core vectors, put once in the object store).

:class:`RayExecutor` implements the two methods of the pipeline's
:class:`~bilaf.method.pipeline.Executor` (``assign``, ``map_classes``).
Every task runs the very functions the local engine runs
(:func:`~bilaf.method.pipeline.denoise_class`,
:func:`~bilaf.method.pipeline.select_class`, ``assign_to_cores``) on the
very same inputs, with as many torch threads as the driver uses (one on small
pseudo-classes, as locally), so the selection is identical to
:class:`BiLAF`'s on the same input, scores included, bit for bit (the tests
check it on CPU workers of the same machine). Tasks on other hardware, with
another thread count or on GPUs sum in another order: distances then differ
in the last bits, which can reorder near-ties.

The driver still holds the pool's features: stage 1 and the gathering of each
pseudo-class's members need them. What Ray spreads is the work (and the
per-class temporaries), not the storage of the pool.

Ray is an optional extra (``pip install bilaf[ray]``).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ValidationError
from ..method.assign import assign_to_cores
from ..method.pipeline import Assignment, Executor, LocalExecutor, Stage2Config, single_thread_task
from ..result import SelectionResult
from ..selectors.bilaf import BiLAF
from ..params import Interval, Param, validate_param
from .runtime import import_ray, init_ray

__all__ = ["RayBiLAF", "RayExecutor", "select_with_ray", "init_ray", "import_ray", "cli_selector"]

ENGINE_PARAMS = ("classes_per_task", "rows_per_task", "max_in_flight", "task_threads", "task_cpus", "task_gpus")


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


class RayBiLAF(BiLAF):
    """:class:`~bilaf.selectors.bilaf.BiLAF` with its stage 2 run as Ray tasks (:class:`RayExecutor`).

    Takes every :class:`BiLAF` hyper-parameter, and gives the same selection
    as :class:`BiLAF` with them. The engine options below only say how the work
    is cut; they are not hyper-parameters of the method, so they are left out
    of :meth:`get_params` (and of the result's ``params``): a manifest written
    by a Ray run replays on the local engine and back.

    Uses the Ray connection this process has, or makes one with
    :func:`init_ray` (``RAY_ADDRESS`` or a local cluster).

    Parameters
    ----------
    *args, **params
        :class:`BiLAF` hyper-parameters (``n_cores``, ``core_selector``, ...).
    classes_per_task : int or None
        Pseudo-classes handled by one stage-2 task. ``None``: enough groups
        for about four tasks per CPU of the cluster.
    rows_per_task : int or None
        Rows of the features in one assignment task. ``None``: about four
        shards per CPU of the cluster, at least 4,096 rows each.
    max_in_flight : int or None
        Tasks submitted but not finished, at most (bounds the object store's
        load). ``None``: twice the cluster's CPUs, at least 4.
    task_threads : int or None
        torch threads in each task. ``None``: as many as this process uses
        (``torch.get_num_threads()``); per-class tasks on small pseudo-classes
        use one, as the local engine does. MKL splits its sums by thread count,
        so tasks running with another count give distances (and scores) that
        differ from a local run in the last bits; the picks rarely change.
    task_cpus : float or None
        CPUs Ray reserves for each task. ``None``: ``task_threads``, capped at
        the CPUs of the largest node.
    task_gpus : float, default=0
        GPUs Ray reserves for each task; above 0 the tasks compute on CUDA
        (then results may differ from a CPU run in the last bits).
    """

    def __init__(self, *args: Any, classes_per_task: Optional[int] = None, rows_per_task: Optional[int] = None,
                 max_in_flight: Optional[int] = None, task_threads: Optional[int] = None,
                 task_cpus: Optional[float] = None, task_gpus: float = 0, **params: Any) -> None:
        super().__init__(*args, **params)
        self.classes_per_task = classes_per_task
        self.rows_per_task = rows_per_task
        self.max_in_flight = max_in_flight
        self.task_threads = task_threads
        self.task_cpus = task_cpus
        self.task_gpus = task_gpus

    # the engine options are not hyper-parameters of the method: their own table, checked in select
    engine_options = ENGINE_PARAMS
    _engine_constraints: Dict[str, Param] = {
        "classes_per_task": Param(Interval(numbers.Integral, 1, None), None, help="pseudo-classes per stage-2 task"),
        "rows_per_task": Param(Interval(numbers.Integral, 1, None), None, help="feature rows per assignment task"),
        "max_in_flight": Param(Interval(numbers.Integral, 1, None), None, help="unfinished tasks at most"),
        "task_threads": Param(Interval(numbers.Integral, 1, None), None, help="torch threads in each task"),
        "task_cpus": Param(Interval(numbers.Real, 0, None), None, help="CPUs Ray reserves per task"),
        "task_gpus": Param(Interval(numbers.Real, 0, None), help="GPUs Ray reserves per task"),
    }

    def engine_params(self) -> Dict[str, Any]:
        """The engine options (how the work is cut), apart from the method's hyper-parameters."""
        return {p: getattr(self, p) for p in ENGINE_PARAMS}

    def _check_engine(self) -> None:
        for name, spec in self._engine_constraints.items():
            validate_param(name, getattr(self, name), spec)
        if self.task_cpus is not None and self.task_cpus == 0 and self.task_gpus == 0:
            raise ValidationError("{a} and {b} cannot both be 0", a="task_cpus", b="task_gpus")

    def select(self, X: Any, budget: Any, labeled: Any = None) -> SelectionResult:
        self._check_engine()
        ray = init_ray()
        threads = int(self.task_threads or torch.get_num_threads())
        cpus = float(self.task_cpus) if self.task_cpus is not None else float(min(threads, _largest_node_cpus(ray)))
        self._engine = RayExecutor(ray, threads=threads, cpus=cpus, gpus=self.task_gpus,
                                   classes_per_task=self.classes_per_task, rows_per_task=self.rows_per_task,
                                   max_in_flight=self.max_in_flight)
        try:
            return super().select(X, budget, labeled=labeled)
        finally:
            self._engine = None

    def executor(self) -> Executor:
        """The :class:`RayExecutor` of the running :meth:`select` (a local one outside it)."""
        engine = getattr(self, "_engine", None)
        return engine if engine is not None else LocalExecutor()


def select_with_ray(X: Any, budget: Any, *, random_state: Any = None, labeled: Any = None,
                    address: Optional[str] = None, classes_per_task: Optional[int] = None,
                    rows_per_task: Optional[int] = None, max_in_flight: Optional[int] = None,
                    task_threads: Optional[int] = None, task_cpus: Optional[float] = None, task_gpus: float = 0,
                    **params: Any) -> SelectionResult:
    """BiLAF on a Ray cluster: the same selection as ``bilaf.select(X, budget, method="bilaf", ...)``.

    Parameters
    ----------
    X : array-like, torch.Tensor, path or FeatureSet
        Features of the pool: an array (N, d), a feature file (``.npy``,
        ``.npz``, ``.parquet``), or a folder of Parquet shards written by
        :func:`~bilaf.engines.ray_embed.embed_with_ray`.
    budget : int or float
        A count, or a fraction of the pool in (0, 1).
    random_state : None, int or numpy.random.Generator
    labeled : array-like of int or None
        Warm start, as in :func:`bilaf.select`.
    address : str or None
        The Ray cluster (see :func:`init_ray`); ignored when this process is
        already connected.
    classes_per_task, rows_per_task, max_in_flight, task_threads, task_cpus, task_gpus
        Engine options, see :class:`RayBiLAF`.
    **params
        :class:`~bilaf.selectors.bilaf.BiLAF` hyper-parameters.

    Returns
    -------
    SelectionResult
    """
    from ..params import validate_params

    validate_params(RayBiLAF, params, owner="method 'bilaf'", exclude=("random_state",))
    if isinstance(X, (str, os.PathLike)):
        from .ray_embed import load_any_features

        X = load_any_features(X).features
    elif hasattr(X, "features") and hasattr(X, "ids"):
        X = X.features
    init_ray(address)
    sel = RayBiLAF(random_state=random_state, classes_per_task=classes_per_task, rows_per_task=rows_per_task,
                   max_in_flight=max_in_flight, task_threads=task_threads, task_cpus=task_cpus,
                   task_gpus=task_gpus, **params)
    return sel.select(X, budget, labeled=labeled)


def cli_selector(method: str, params: Dict[str, Any], random_state: Any, address: Optional[str] = None) -> RayBiLAF:
    """The selector ``bilaf select --engine ray`` runs: :class:`RayBiLAF` with the command line's options.

    Raises ``ValueError`` (one line) for a method other than ``bilaf``.
    """
    if method != "bilaf":
        raise ValidationError(f"--engine ray runs method bilaf only, not {method!r} (run {method} without --engine ray)")
    try:
        init_ray(address)
    except ImportError as exc:  # the CLI prints one line for a ValueError
        raise ValidationError(str(exc)) from None
    return RayBiLAF(random_state=random_state, **params)
