"""BiLAF (Lu et al., 2024): core samples for diversity, then boundary samples for uncertainty."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import ValidationError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..method.boundary import CRITERIA, OPPONENTS, PROCESSES
from ..method.denoise import DENOISE_METHODS
from ..method.n_cores import auto_n_cores
from ..method.pipeline import Executor, LocalExecutor, Stage2Config, run_stage2
from ..params import Interval, Options, Param, validate_params
from ..result import SelectionResult
from ..validation import check_indices
from .base import BaseSelector, Timer

CORE_SELECTORS = ("auto", "activeft", "kmeans", "kcenter", "maxherding", "random")
#: What ``core_selector="auto"`` runs with the automatic K: spherical k-means (k-means on L2-normalised features)
AUTO_K_CORES = ("kmeans", {"normalize": True})


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def core_method(core_selector: str, n_cores: Any) -> Tuple[str, Dict[str, Any]]:
    """The core selector BiLAF runs and its default options: ``core_selector``, ``"auto"`` resolved."""
    if core_selector == "auto":
        auto_k = n_cores is None or (isinstance(n_cores, str) and n_cores == "auto")
        return AUTO_K_CORES if auto_k else ("activeft", {})
    return core_selector, {}


def core_selector_class(core_selector: str, n_cores: Any) -> type:
    """The selector class of BiLAF's stage 1 (whose table checks ``core_params``)."""
    from . import get_selector_class

    return get_selector_class(core_method(core_selector, n_cores)[0])


def _parse_n_cores(text: str) -> Any:
    """``"0.2%"`` -> 0.002 and ``"default"`` -> None; other texts are read by the constraints."""
    s = text.strip()
    if s.endswith("%"):
        return float(s[:-1]) / 100.0
    if s.lower() == "default":
        return None
    raise ValueError


class BiLAF(BaseSelector):
    """Bi-Level Active Finetuning.

    Stage 1 picks ``n_cores`` core samples (pseudo-class centres) with
    ``core_selector``, or takes the given ``cores``. Stage 2
    (:func:`bilaf.method.pipeline.run_stage2`) assigns every sample to its
    nearest core, removes noisy members of each pseudo-class (``denoise``),
    splits the remaining budget in proportion to the denoised sizes, and within
    each pseudo-class picks boundary samples by the Boundary Score with
    iterative removal and an opponent penalty. Stage 2's assignment and
    per-class work run through :meth:`executor` (here, in this process).

    Parameters
    ----------
    n_cores : int, float, "auto" or None
        Number of cores K; a float in (0, 1) is a fraction of the pool (the
        paper: 0.1% for CIFAR-10, 0.5% for CIFAR-100 and ImageNet).
        ``"auto"`` (and ``None``, the default): chosen from the pool's coverage
        curve and the budget by :func:`bilaf.method.n_cores.auto_n_cores`: the
        whole budget (every pick a core, no boundary samples) on pools without
        clear cluster structure, which is what every real pool measured showed;
        on clearly clustered pools about two cores per cluster (at least a
        fifth of the budget) and boundary samples for the rest. The curve
        behind the choice is in ``auto_cores_``. When the budget is smaller than
        K, only ``budget`` cores are used (a warning says so).
    core_selector : str
        ``"auto"`` (default), ``"activeft"``, ``"kmeans"``, ``"kcenter"``,
        ``"maxherding"`` or ``"random"``. (Pool indices here are read as
        ``cores``, with a ``FutureWarning``.) ``"auto"`` is the paper's ActiveFT when K is given
        (``n_cores=<int>`` or a fraction), and spherical k-means (``"kmeans"``
        on L2-normalised features) with ``n_cores="auto"``, level with
        ActiveFT cores on the benchmarks in less selection time
        (``docs/results.md``).
    cores : array-like of int or None
        The pool indices of given cores: stage 1 is skipped and K is their
        count (``n_cores``, ``core_selector`` and ``core_params`` stay unset).
        When the budget is smaller than K, the ``budget`` cores with the
        largest pseudo-classes are kept.
    density_k : int, default=10
        k of the kNN density distance in denoising.
    cycle_fraction : float, default=0.1
        P_in: the share of a pseudo-class added per IDC ring.
    remove_fraction : float, default=0.1
        P_rm: the share of a pseudo-class removed as noise.
    opponent_penalty : float, default=1.1
        delta; 1.0 switches the penalty off.
    opponent : {"nearest", "min"}
        ``nearest`` (the published code) or ``min`` (the paper's Eq. 7).
    denoise : {"idc", "density", "distance", "none"}
    criterion : {"boundary", "distance"}
    process : {"iterative", "oneshot"}
    normalize : bool, default=False
        L2-normalise features for stage 2 (ActiveFT always normalises for stage 1).
    dtype : {"float32", "float64"}
        Precision of the distance computations.
    random_state : None, int or Generator
    core_params : dict or None
        Extra constructor arguments for the core selector (e.g. ``{"n_iter": 100}``).
    device, memory_budget, verbose
        See :class:`~bilaf.selectors.base.BaseSelector`.

    Attributes
    ----------
    core_indices_ : numpy.ndarray
        Cores, sorted by pool index; position k numbers pseudo-class k.
    pseudo_labels_ : numpy.ndarray of shape (n_samples,)
        Pseudo-class after denoising, -1 for removed noise.
    boundary_scores_ : numpy.ndarray of shape (n_samples,)
        Initial (unpenalised) Boundary Score of each kept sample; NaN for noise.
    class_budgets_ : numpy.ndarray of shape (K,)
        Picks per pseudo-class, cores included.
    notes_ : list of str
        What was done about edge cases.
    n_cores_ : int
        The number of cores used.
    core_selector_ : str
        The core selector that ran, ``"auto"`` resolved: ``"activeft"``,
        ``"kmeans:normalize=True"`` (spherical k-means), ... or ``"given"``.
    auto_cores_ : AutoCores or None
        With ``n_cores="auto"``: K, whether the pool looked clustered, and the
        coverage curve (see :func:`bilaf.method.n_cores.auto_n_cores`); None
        when K was given.
    """

    name = "bilaf"

    #: the selector class of stage 1 for given ``core_selector`` and ``n_cores`` (its table checks ``core_params``)
    core_selector_class = staticmethod(core_selector_class)

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "n_cores": Param(
            Interval(numbers.Integral, 1, None), Interval(numbers.Real, 0, 1, closed="neither"), Options(("auto",)),
            None, what="'auto', none, a positive int or a fraction in (0, 1)", parse=_parse_n_cores,
            metavar="K", flag=("--n-cores", "-k"),
            help="number of cores K (pseudo-class centres): a count, a fraction of the pool (0.002 or 0.2%), or "
                 "auto: chosen without labels from the pool's coverage curve: the whole budget (every pick a core) "
                 "unless the pool shows clear clusters, then about two cores per cluster and boundary samples for "
                 "the rest"),
        "core_selector": Param(
            Options(CORE_SELECTORS), "indices", metavar="NAME|FILE",
            help="stage 1: auto (spherical k-means with the automatic K, the paper's activeft with a given K), "
                 "activeft, kmeans, kcenter, maxherding or random (a FILE of core indices here is read as --cores)"),
        "cores": Param(None, "indices", metavar="FILE",
                       help="given cores: a FILE of pool indices (.json, .txt, .npy); stage 1 is skipped and K is "
                            "their count"),
        "density_k": Param(Interval(numbers.Integral, 1, None), help="k of the kNN density used in denoising"),
        "cycle_fraction": Param(Interval(numbers.Real, 0, 1, closed="right"),
                                help="P_in: share of a pseudo-class added per IDC ring"),
        "remove_fraction": Param(Interval(numbers.Real, 0, 1, closed="left"),
                                 help="P_rm: share of each pseudo-class removed as noise"),
        "opponent_penalty": Param(Interval(numbers.Real, 1, None),
                                  help="delta >= 1: score penalty per earlier pick against the same opponent class "
                                       "(1 = off)"),
        "opponent": Param(Options(OPPONENTS),
                          help="nearest: the opponent class is the nearest other core (published code); min: the "
                               "paper's Eq. 7"),
        "denoise": Param(Options(DENOISE_METHODS),
                         help="how noisy members of each pseudo-class are removed (idc: the paper's iterative "
                              "density clustering)"),
        "criterion": Param(Options(CRITERIA),
                           help="boundary: the paper's Boundary Score; distance: distance to the opponent core only"),
        "process": Param(Options(PROCESSES),
                         help="iterative: pick one boundary sample at a time with removal and penalty; oneshot: top "
                              "scores at once"),
        "core_params": Param(None, dict, flag="--core-param", metavar="NAME=VALUE",
                             help="an option of the core selector (e.g. n_iter=100 for activeft, max_iter=50 for "
                                  "kmeans); may be repeated"),
    }

    def __init__(self, n_cores: Union[int, float, str, None] = None, core_selector: Any = "auto",
                 cores: Any = None, density_k: int = 10, cycle_fraction: float = 0.1, remove_fraction: float = 0.1,
                 opponent_penalty: float = 1.1, opponent: str = "nearest", denoise: str = "idc",
                 criterion: str = "boundary", process: str = "iterative", normalize: bool = False,
                 dtype: str = "float32", random_state: Any = None, core_params: Optional[Dict[str, Any]] = None,
                 device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.n_cores = n_cores
        self.core_selector = core_selector
        self.cores = cores
        self.density_k = density_k
        self.cycle_fraction = cycle_fraction
        self.remove_fraction = remove_fraction
        self.opponent_penalty = opponent_penalty
        self.opponent = opponent
        self.denoise = denoise
        self.criterion = criterion
        self.process = process
        self.core_params = core_params

    # -- validation ----------------------------------------------------------------
    def _given(self) -> Optional[np.ndarray]:
        """The given core indices (``cores``, or the older ``core_selector=<indices>``), or None."""
        if self.cores is not None:
            return np.asarray(self.cores).ravel()
        if not isinstance(self.core_selector, str):
            return np.asarray(self.core_selector).ravel()
        return None

    def _auto_k(self) -> bool:
        return self.n_cores is None or (isinstance(self.n_cores, str) and self.n_cores == "auto")

    def _core_method(self) -> Tuple[str, Dict[str, Any]]:
        """The core selector to run and its default options, ``"auto"`` resolved (see ``core_selector``)."""
        return core_method(self.core_selector, self.n_cores)

    def _check_params(self, n_samples: int, budget: int) -> None:
        if self.cores is not None:
            if not (isinstance(self.core_selector, str) and self.core_selector == "auto"):
                raise ValidationError("{cores} skips stage 1: leave {core_selector} at auto",
                                      cores="cores", core_selector="core_selector")
            if not self._auto_k():
                raise ValidationError("{cores} sets the number of cores: leave {n_cores} unset",
                                      cores="cores", n_cores="n_cores")
            if self.core_params is not None:
                raise ValidationError("{cores} skips stage 1, so {core_params} would be ignored",
                                      cores="cores", core_params="core_params")
            check_indices(self.cores, n_samples, name="cores")
        elif self._given() is not None:
            warnings.warn("core_selector=<indices> is deprecated; give the core indices as cores=<indices> "
                          "(--cores FILE)", FutureWarning, stacklevel=4)
            check_indices(self.core_selector, n_samples, name="core_selector (given cores)")
        elif self.core_params is not None:
            name = self._core_method()[0]
            where = f"core selector {name!r}"
            refs = {}
            if self.core_selector == "auto":
                where += " ({auto} runs spherical k-means with {auto_k}, ActiveFT with a given {k})"
                refs = {"auto": ("core_selector", "auto"), "auto_k": ("n_cores", "auto"), "k": "n_cores"}
            validate_params(core_selector_class(self.core_selector, self.n_cores), self.core_params, owner=where,
                            exclude=("random_state",), owner_refs=refs or None)
        if _is_int(self.n_cores) and int(self.n_cores) > n_samples:
            raise ValidationError(f"{{setting}} exceeds the pool size {n_samples}", setting=("n_cores", self.n_cores))

    # -- the pipeline's parts --------------------------------------------------------------
    def stage2_config(self) -> Stage2Config:
        """Stage 2's hyper-parameters as one typed, picklable configuration."""
        return Stage2Config(denoise=self.denoise, density_k=int(self.density_k),
                            cycle_fraction=float(self.cycle_fraction), remove_fraction=float(self.remove_fraction),
                            opponent_penalty=float(self.opponent_penalty), opponent=self.opponent,
                            criterion=self.criterion, process=self.process, dtype=self._tdtype,
                            memory_budget=self.memory_budget, verbose=bool(self.verbose))

    def executor(self) -> Executor:
        """Where stage 2's assignment and per-class work run: here, in this process. An engine overrides this
        (e.g. :class:`bilaf.engines.ray.RayBiLAF`)."""
        return LocalExecutor()

    # -- stage 1 -------------------------------------------------------------------------
    def _resolve_n_cores(self, X: torch.Tensor, budget: int, rng: np.random.Generator) -> int:
        n = int(X.shape[0])
        self.auto_cores_ = None  # a refit with a fixed K must not keep an earlier automatic choice
        if self._auto_k():
            self.auto_cores_ = auto_n_cores(X, budget, rng)
            return self.auto_cores_.n_cores
        if isinstance(self.n_cores, numbers.Integral):
            return int(self.n_cores)
        return max(1, int(round(float(self.n_cores) * n)))

    def _stage1(self, X: torch.Tensor, budget: int, rng: np.random.Generator,
                notes: List[str]) -> np.ndarray:
        """Stage 1: the sorted core indices (at most ``budget`` of them)."""
        from . import get_selector_class

        K = self._resolve_n_cores(X, budget, rng)
        name, defaults = self._core_method()
        self.core_selector_ = name + "".join(f":{k}={v}" for k, v in defaults.items())
        if budget < K:
            notes.append(f"budget {budget} < n_cores {K}: using {budget} cores")
            K = budget
        cls = get_selector_class(name)
        params = {**defaults, **(self.core_params or {})}
        params.setdefault("device", X.device.type if X.device.type != "cuda" else str(X.device))
        params.setdefault("memory_budget", self.memory_budget)
        params.setdefault("verbose", self.verbose)
        if "dtype" in cls._param_names() and name != "activeft":
            params.setdefault("dtype", self.dtype)
        seed = int(rng.integers(0, 2**31 - 1))
        res = cls(random_state=seed, **params).select(X, K)
        return np.sort(res.indices)

    # -- the whole method -----------------------------------------------------------------
    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        notes: List[str] = []
        given = self._given()
        with timer.stage("cores"):
            if given is not None:
                self.auto_cores_ = None
                self.core_selector_ = "given"
                cores = np.sort(given.astype(np.int64))
            else:
                cores = self._stage1(X, budget, rng, notes)
        out = run_stage2(X, cores, budget, self.stage2_config(), executor=self.executor(),
                         given_cores=given is not None, stage=timer.stage)
        notes += out.notes
        for msg in notes:
            warnings.warn(msg, UserWarning, stacklevel=3)
        idx = out.picks
        alloc = out.class_budgets
        cores = out.cores
        K = len(cores)
        core_sel = cores[alloc > 0] if len(alloc) else cores
        self.core_indices_ = cores
        self.pseudo_labels_ = out.pseudo_labels
        self.boundary_scores_ = out.boundary_scores
        self.class_budgets_ = alloc
        self.notes_ = notes
        self.n_cores_ = K
        return SelectionResult(
            indices=idx, core_indices=core_sel, boundary_indices=idx[~np.isin(idx, core_sel)],
            pseudo_labels=out.pseudo_labels, scores=out.pick_scores, opponents=out.pick_opponents,
            pick_classes=out.pick_classes, notes=notes,
            params={"n_cores_used": K, "core_selector_used": self.core_selector_},
        )
