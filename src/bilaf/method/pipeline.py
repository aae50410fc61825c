"""BiLAF's stage 2 as a pipeline: assignment, denoising, budget split, boundary selection.

Given the pool's features and the core samples of stage 1, :func:`run_stage2`
runs the four steps of the paper in order, each a function of this module:

1. :func:`assign_stage`: every sample joins its nearest core (its
   pseudo-class) and keeps ``d_inter``, its distance to the nearest other
   core, and which core that is (its opponent);
2. :func:`denoise_stage`: each pseudo-class drops its noisy members (IDC by
   default) and gives ``d_intra`` of the rest;
3. :func:`~bilaf.method.budget.split_budget`: the budget in proportion to the
   denoised sizes;
4. :func:`selection_stage`: within each pseudo-class, boundary samples by the
   Boundary Score with iterative removal and the opponent penalty.

The hyper-parameters travel as one typed, picklable :class:`Stage2Config`.
The two steps that cost the work (the assignment over the whole pool and the
per-pseudo-class map) go through an :class:`Executor`: :class:`LocalExecutor`
runs them here, one pseudo-class after another; another engine (e.g.
:class:`bilaf.engines.ray.RayExecutor`) implements the same two methods and
gives the same selection. Per-class work travels as named tasks
(:class:`DenoiseTask`, :class:`SelectTask`) whose fields are tensors, arrays
and numbers, and the functions that consume them (:func:`denoise_class`,
:func:`select_class`) are module-level, so an executor can ship both.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterable, List, NamedTuple, Optional, Protocol, Tuple, TypeVar

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..threads import single_threaded
from ..utils.progress import progress
from .assign import assign_to_cores
from .boundary import ClassPicks, boundary_score, select_boundary
from .budget import split_budget
from .denoise import denoise_with_intra

__all__ = ["Stage2Config", "Assignment", "DenoiseTask", "SelectTask", "Executor", "LocalExecutor",
           "Stage2Result", "single_thread_task", "assign_stage", "denoise_stage", "selection_stage", "run_stage2", "denoise_class",
           "select_class"]

T = TypeVar("T")
R = TypeVar("R")

#: Pseudo-classes below this many rows are denoised and scored on one thread: their operations are too
#: small for a team of threads (see :func:`bilaf.threads.single_threaded`).
SINGLE_THREAD_ROWS = 2048


def single_thread_task(task: Any) -> bool:
    """Whether a per-class task is small enough to run on one thread (fewer than
    :data:`SINGLE_THREAD_ROWS` member rows)."""
    return int(task.features.shape[0]) < SINGLE_THREAD_ROWS


@dataclass(frozen=True)
class Stage2Config:
    """The hyper-parameters of BiLAF's stage 2 (see :class:`bilaf.BiLAF` for their meaning).

    Parameters
    ----------
    denoise : {"idc", "density", "distance", "none"}
    density_k : int
        k of the kNN density distance in denoising.
    cycle_fraction : float
        P_in, the share of a pseudo-class added per IDC ring.
    remove_fraction : float
        P_rm, the share of a pseudo-class removed as noise.
    opponent_penalty : float
        delta, the score penalty per earlier pick against the same opponent.
    opponent : {"nearest", "min"}
    criterion : {"boundary", "distance"}
    process : {"iterative", "oneshot"}
    dtype : torch.dtype
        Precision of the distance computations.
    memory_budget : str or int
        Bound on the temporary blocks of each step.
    verbose : bool
        Progress bars on long loops.
    """

    denoise: str = "idc"
    density_k: int = 10
    cycle_fraction: float = 0.1
    remove_fraction: float = 0.1
    opponent_penalty: float = 1.1
    opponent: str = "nearest"
    criterion: str = "boundary"
    process: str = "iterative"
    dtype: torch.dtype = torch.float32
    memory_budget: Any = DEFAULT_MEMORY_BUDGET
    verbose: bool = False


class Assignment(NamedTuple):
    """The nearest-core assignment of the pool."""

    #: pseudo-class (position of the nearest core in the sorted cores) of each sample, int64
    labels: np.ndarray
    #: distance of each sample to its nearest *other* core
    d_inter: torch.Tensor
    #: which core that is (its position), int64
    opponent: torch.Tensor


class DenoiseTask(NamedTuple):
    """One pseudo-class to denoise."""

    #: features of its members, in pool order
    features: torch.Tensor
    #: position of its core among the members
    core_position: int


class SelectTask(NamedTuple):
    """One denoised pseudo-class to pick from."""

    features: torch.Tensor
    core_position: int
    #: picks allotted to the class, its core included
    n_pick: int
    #: ``d_intra`` of the members, from :func:`denoise_class`
    d_intra: np.ndarray
    d_inter: torch.Tensor
    opponent: torch.Tensor
    #: the pseudo-class's number (its core's position)
    class_index: int


class Executor(Protocol):
    """Where stage 2's heavy steps run.

    An executor gives the same results as :class:`LocalExecutor`, in the same
    order; only where and how the work is cut may differ.
    """

    def assign(self, X: torch.Tensor, cores: np.ndarray, config: Stage2Config) -> Assignment:
        """Nearest-core assignment of every row of ``X`` (as :func:`~bilaf.method.assign.assign_to_cores`)."""

    def map_classes(self, fn: Callable[[Any, Any, Stage2Config], R], tasks: Iterable[Any], n_tasks: int,
                    config: Stage2Config, *, shared: Any = None, desc: str = "") -> List[R]:
        """``[fn(task, shared, config) for task in tasks]``: ``tasks`` is lazy (one class's features at a
        time); ``shared`` is the same for every task (e.g. the core vectors), sent once. A task for which
        :func:`single_thread_task` holds should run on one thread."""


class LocalExecutor:
    """Runs stage 2 in this process: the assignment in memory-bounded blocks, then one class after another."""

    def assign(self, X: torch.Tensor, cores: np.ndarray, config: Stage2Config) -> Assignment:
        labels, d_inter, opp = assign_to_cores(X, cores, dtype=config.dtype, memory_budget=config.memory_budget,
                                               show_progress=config.verbose)
        return Assignment(labels, d_inter, opp)

    def map_classes(self, fn: Callable[[Any, Any, Stage2Config], R], tasks: Iterable[Any], n_tasks: int,
                    config: Stage2Config, *, shared: Any = None, desc: str = "") -> List[R]:
        bar = progress(tasks, total=n_tasks, desc=desc, enabled=config.verbose and n_tasks > 50, unit="class")
        out: List[R] = []
        one = None  # the single_threaded() context while small tasks run; switched only when the size class changes
        try:
            for task in bar:
                small = single_thread_task(task)
                if small and one is None:
                    one = single_threaded()
                    one.__enter__()
                elif not small and one is not None:
                    one.__exit__(None, None, None)
                    one = None
                out.append(fn(task, shared, config))
        finally:
            if one is not None:
                one.__exit__(None, None, None)
        return out


# -- the per-class functions (module level: an executor ships them to where the tasks run) ----------------------

def denoise_class(task: DenoiseTask, shared: Any, config: Stage2Config) -> Tuple[np.ndarray, np.ndarray]:
    """Denoise one pseudo-class: the kept member positions and their ``d_intra``
    (see :func:`bilaf.method.denoise.denoise_with_intra`); ``shared`` is unused."""
    return denoise_with_intra(task.features, task.core_position, method=config.denoise, k=config.density_k,
                              cycle_fraction=config.cycle_fraction, remove_fraction=config.remove_fraction,
                              memory_budget=config.memory_budget)


def select_class(task: SelectTask, core_features: Optional[torch.Tensor], config: Stage2Config) -> ClassPicks:
    """Pick within one denoised pseudo-class (see :func:`bilaf.method.boundary.select_boundary`).

    ``core_features`` are the core vectors (needed by ``opponent="min"`` only).
    """
    return select_boundary(task.features, task.core_position, task.n_pick, d_intra=task.d_intra,
                           d_inter=task.d_inter, opponent=task.opponent, delta=config.opponent_penalty,
                           criterion=config.criterion, process=config.process, opponent_rule=config.opponent,
                           class_index=task.class_index, core_features=core_features,
                           memory_budget=config.memory_budget)


# -- the stages ------------------------------------------------------------------------------------------------

@dataclass
class Stage2Result:
    """What stage 2 gives :class:`bilaf.BiLAF`."""

    #: the cores used, sorted (given cores may have been trimmed to the budget)
    cores: np.ndarray
    #: pool indices picked, class by class (core first), then any noise added back
    picks: np.ndarray
    #: Boundary Score of each pick (NaN for cores' stand-ins and noise added back)
    pick_scores: np.ndarray
    #: opponent core (position) of each pick, -1 where none
    pick_opponents: np.ndarray
    #: pseudo-class of each pick
    pick_classes: np.ndarray
    #: pseudo-class of each sample after denoising, -1 for removed noise
    pseudo_labels: np.ndarray
    #: initial Boundary Score of each kept sample of a class with picks; NaN elsewhere
    boundary_scores: np.ndarray
    #: picks per pseudo-class, cores included
    class_budgets: np.ndarray
    notes: List[str] = field(default_factory=list)


def _no_timer(name: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


def assign_stage(X: torch.Tensor, cores: np.ndarray, budget: int, config: Stage2Config, executor: Executor, *,
                 trim_to_budget: bool = False, notes: Optional[List[str]] = None) -> Tuple[np.ndarray, Assignment]:
    """Step 1: the nearest-core assignment; with ``trim_to_budget`` and more cores than ``budget``, keep the
    ``budget`` cores with the largest pseudo-classes (ties to the lower position) and assign again."""
    assignment = executor.assign(X, cores, config)
    K = len(cores)
    if trim_to_budget and budget < K:
        sizes = np.bincount(assignment.labels, minlength=K)
        keep = np.sort(np.lexsort((np.arange(K), -sizes))[:budget])
        if notes is not None:
            notes.append(f"budget {budget} < {K} given cores: kept the {budget} cores with the largest "
                         "pseudo-classes")
        cores = cores[keep]
        assignment = executor.assign(X, cores, config)
    return cores, assignment


def _members(labels: np.ndarray, K: int) -> List[np.ndarray]:
    """Pool indices of each pseudo-class, in pool order."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(K + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(K)]


def denoise_stage(X: torch.Tensor, cores: np.ndarray, assignment: Assignment, config: Stage2Config,
                  executor: Executor) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Step 2: each pseudo-class's kept members (pool indices, pool order) and their ``d_intra``."""
    members_of = _members(assignment.labels, len(cores))
    # tasks are made lazily so only one pseudo-class's features are copied at a time
    tasks = (DenoiseTask(X[torch.as_tensor(mem, device=X.device)].to(config.dtype),
                         int(np.searchsorted(mem, cores[i])))
             for i, mem in enumerate(members_of))
    denoised = executor.map_classes(denoise_class, tasks, len(cores), config, desc="denoising")
    kept = [members_of[i][kp] for i, (kp, _) in enumerate(denoised)]
    intra = [di for _, di in denoised]
    return kept, intra


def selection_stage(X: torch.Tensor, cores: np.ndarray, assignment: Assignment, kept: List[np.ndarray],
                    intra: List[np.ndarray], alloc: np.ndarray, config: Stage2Config,
                    executor: Executor) -> Tuple[List[ClassPicks], List[int], torch.Tensor]:
    """Step 4: the picks of every pseudo-class with a share of the budget.

    Returns the picks of the active classes (in class order), those classes,
    and ``d_intra`` scattered over the pool (NaN outside the active classes'
    kept members).
    """
    n, dt = int(X.shape[0]), config.dtype
    active = [i for i in range(len(cores)) if alloc[i] > 0]
    core_feats = X[torch.as_tensor(cores, device=X.device)].to(dt) if config.opponent == "min" else None

    def tasks() -> Iterable[SelectTask]:
        for i in active:
            mem_t = torch.as_tensor(kept[i], device=X.device)
            yield SelectTask(X[mem_t].to(dt), int(np.searchsorted(kept[i], cores[i])), int(alloc[i]), intra[i],
                             assignment.d_inter[mem_t], assignment.opponent[mem_t], i)

    outs = executor.map_classes(select_class, tasks(), len(active), config, shared=core_feats,
                                desc="boundary selection")
    d_intra_all = torch.full((n,), float("nan"), dtype=dt, device=X.device)
    for i in active:
        # a copy: arrays an executor brings back may be read-only (Ray's object store)
        d_intra_all[torch.as_tensor(kept[i], device=X.device)] = torch.tensor(intra[i], device=X.device, dtype=dt)
    return outs, active, d_intra_all


def _distances_to_rows(X: torch.Tensor, rows: np.ndarray, targets: np.ndarray, dt: torch.dtype) -> np.ndarray:
    """``D(X[rows[j]], X[targets[j]])`` for each j (row-wise, O(len(rows) * d))."""
    if len(rows) == 0:
        return np.empty(0)
    A = X[torch.as_tensor(rows, device=X.device)].to(dt)
    B = X[torch.as_tensor(targets, device=X.device)].to(dt)
    return torch.linalg.vector_norm(A - B, dim=1).cpu().numpy()


def run_stage2(X: torch.Tensor, cores: np.ndarray, budget: int, config: Stage2Config, *,
               executor: Optional[Executor] = None, given_cores: bool = False,
               stage: Callable[[str], ContextManager[Any]] = _no_timer) -> Stage2Result:
    """BiLAF's stage 2 on the pool ``X`` from the sorted core indices ``cores``.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    cores : numpy.ndarray of int
        Sorted pool indices of the cores; position k numbers pseudo-class k.
    budget : int
        Picks in all, cores included.
    config : Stage2Config
    executor : Executor or None
        Where the assignment and the per-class work run (default: :class:`LocalExecutor`).
    given_cores : bool
        The cores were given by the user: with more cores than ``budget``, the
        ``budget`` cores with the largest pseudo-classes are kept.
    stage : callable
        ``stage(name)`` gives a context manager around each step (a timer).

    Returns
    -------
    Stage2Result
        ``notes`` says what was done about edge cases (fewer kept samples than
        the budget, classes with no picks, cores trimmed).
    """
    executor = LocalExecutor() if executor is None else executor
    n, dt = int(X.shape[0]), config.dtype
    notes: List[str] = []
    with stage("assignment"):
        cores, assignment = assign_stage(X, cores, budget, config, executor, trim_to_budget=given_cores,
                                         notes=notes)
    pseudo = np.full(n, -1, dtype=np.int64)
    with stage("denoising"):
        kept, intra = denoise_stage(X, cores, assignment, config, executor)
        for i, mem in enumerate(kept):
            pseudo[mem] = i
    sizes = np.array([len(k) for k in kept], dtype=np.int64)
    n_kept = int(sizes.sum())
    alloc, budget_notes = split_budget(sizes, min(budget, n_kept))
    notes += budget_notes

    picks: List[int] = []
    pick_scores: List[float] = []
    pick_opps: List[int] = []
    pick_cls: List[int] = []
    scores_all = np.full(n, np.nan)
    with stage("scores and selection"):
        outs, active, d_intra_all = selection_stage(X, cores, assignment, kept, intra, alloc, config, executor)
        for i, res in zip(active, outs):
            mem = kept[i]
            picks += mem[res.positions].tolist()
            pick_scores += res.scores.tolist()
            pick_opps += res.opponents.tolist()
            pick_cls += [i] * len(res.positions)
        kept_mask = pseudo >= 0
        # classes that got no picks have no d_intra: their scores stay NaN
        scores_all[kept_mask] = boundary_score(assignment.d_inter, d_intra_all).cpu().numpy()[kept_mask]

        if len(picks) < budget:
            # the denoised pool is smaller than the budget: fill from the removed noise, nearest to its core first
            short = budget - len(picks)
            noise = np.flatnonzero(~kept_mask)
            d_own = _distances_to_rows(X, noise, cores[assignment.labels[noise]], dt)
            fill = noise[np.argsort(d_own, kind="stable")[:short]]
            notes.append(f"the denoised pool holds {n_kept} samples < budget {budget}: "
                         f"{short} removed sample(s) added back, nearest to their core first")
            picks += fill.tolist()
            pick_scores += [float("nan")] * short
            pick_opps += [-1] * short
            pick_cls += assignment.labels[fill].tolist()
    return Stage2Result(cores=cores, picks=np.asarray(picks, dtype=np.int64), pick_scores=np.asarray(pick_scores),
                        pick_opponents=np.asarray(pick_opps, dtype=np.int64),
                        pick_classes=np.asarray(pick_cls, dtype=np.int64), pseudo_labels=pseudo,
                        boundary_scores=scores_all, class_budgets=alloc, notes=notes)
