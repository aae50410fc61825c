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

import numbers
import os
from typing import Any, Dict, Optional

import torch

from ..errors import ValidationError
from ..method.pipeline import Executor, LocalExecutor
from ..params import Interval, Param, validate_param
from ..result import SelectionResult
from ..selectors.bilaf import BiLAF
from .ray_executor import RayExecutor, _largest_node_cpus
from .runtime import import_ray, init_ray

__all__ = ["RayBiLAF", "RayExecutor", "select_with_ray", "init_ray", "import_ray", "cli_selector"]

ENGINE_PARAMS = ("classes_per_task", "rows_per_task", "max_in_flight", "task_threads", "task_cpus", "task_gpus")


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
