"""The common shape of every selector: parameters in the constructor, ``select(X, budget)``."""

from __future__ import annotations

import inspect
import re
import time
from contextlib import contextmanager
from typing import Any, ClassVar, Dict, Iterator, Tuple

import numpy as np
import torch

from ..errors import ValidationError, ValidationTypeError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET
from ..kernels.tensors import resolve_device, to_tensor, torch_dtype
from ..params import Check, Options, Param, check_unknown, validate_params
from ..result import SelectionResult
from ..threads import limit_threads
from ..validation import check_budget, check_features, check_indices, check_random_state

__all__ = ["BaseSelector", "Timer"]


class Timer:
    """Collects wall-clock seconds per named stage."""

    def __init__(self) -> None:
        self.timings: Dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def _is_device(value: Any) -> bool:
    return isinstance(value, torch.device) or (isinstance(value, str) and re.fullmatch(r"cuda:\d+|mps", value)
                                                is not None)


class BaseSelector:
    """Base class for selectors.

    Subclasses implement ``_select(X, budget, rng, timer) -> SelectionResult``
    where ``X`` is a validated torch tensor on the chosen device.

    Common parameters
    -----------------
    random_state : None, int or numpy.random.Generator
        Seeds every random choice.
    normalize : bool
        L2-normalise the features first.
    dtype : {"float32", "float64"}
        Precision of distance computations.
    device : {"cpu", "cuda", "auto"}
        Where the computation runs (torch).
    memory_budget : str or int
        Bound on the temporaries of each chunked pass, e.g. ``"1GB"``.
    verbose : bool
        Show progress bars on long stages.
    """

    name = "base"

    #: every constructor parameter: its constraints and help (see :mod:`bilaf.params`); a subclass
    #: declares ``{**BaseSelector._parameter_constraints, <its own>}``
    _parameter_constraints: ClassVar[Dict[str, Param]] = {
        "random_state": Param("random_state", help="seed for every random choice", flag=None),
        "normalize": Param("boolean", help="L2-normalise the features before selecting"),
        "dtype": Param(Options(("float32", "float64")), help="precision of the distance computations"),
        "device": Param(Options(("cpu", "cuda", "auto")), None, Check(_is_device, "'cuda:N' or a torch.device"),
                        help="where the computation runs (torch): cpu, cuda, cuda:N or auto (a GPU if torch sees "
                             "one)", metavar="DEVICE"),
        "memory_budget": Param("memory", help="bound on the temporaries of each chunked pass, e.g. 1GB, 512MB"),
        "verbose": Param("boolean", help="show progress bars on long stages", flag=None),
    }

    def __init__(self, *, random_state: Any = None, normalize: bool = False, dtype: str = "float32",
                 device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> None:
        self.random_state = random_state
        self.normalize = normalize
        self.dtype = dtype
        self.device = device
        self.memory_budget = memory_budget
        self.verbose = verbose

    # -- scikit-learn style parameter access ---------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared, taken = set(cls._parameter_constraints), set(cls._param_names())
        if declared != taken:  # a selector must declare exactly the parameters its constructor takes
            raise TypeError(f"{cls.__name__}._parameter_constraints does not match its constructor: "
                            f"undeclared {sorted(taken - declared)}, not taken {sorted(declared - taken)}")

    #: Constructor options that say how the work runs (e.g. an engine's task sizes), not what is selected:
    #: left out of :meth:`get_params`, the result's ``params`` and manifests.
    engine_options: Tuple[str, ...] = ()

    @classmethod
    def _param_names(cls) -> list:
        names = []
        for klass in cls.__mro__:
            if klass is object:
                continue
            sig = inspect.signature(klass.__init__)
            for p in sig.parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return [n for n in names if n not in cls.engine_options]

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's hyper-parameters, by name (as scikit-learn's ``get_params``).

        Parameters
        ----------
        deep : bool, default=True
            Also list the parameters of parameters that are estimators, as
            ``<name>__<parameter>``.
        """
        out: Dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> "BaseSelector":
        """Set hyper-parameters by name (as scikit-learn's ``set_params``); returns ``self``.

        Names are checked here against the parameter table; values are checked
        when :meth:`select` runs.

        Raises
        ------
        ValidationTypeError
            For a name the constructor does not take (a ``TypeError`` and a ``ValueError``).
        """
        if not params:
            return self
        own = {k: v for k, v in params.items() if "__" not in k}
        nested: Dict[str, Dict[str, Any]] = {}
        for key, value in params.items():
            if "__" in key:
                head, _, sub = key.partition("__")
                nested.setdefault(head, {})[sub] = value
        check_unknown(list(own) + list(nested), self._param_names(), type(self).__name__)
        for name, value in own.items():
            setattr(self, name, value)
        for head, sub in nested.items():
            target = getattr(self, head)
            if not hasattr(target, "set_params"):
                raise ValidationTypeError(f"{type(self).__name__}.{head} is not an estimator: cannot set "
                                          f"{', '.join(head + '__' + k for k in sub)}")
            target.set_params(**sub)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                         if not isinstance(v, np.ndarray))
        return f"{type(self).__name__}({args})"

    # -- validation --------------------------------------------------------------
    def _check_params(self, n_samples: int, budget: int) -> None:
        """Checks that depend on the data (pool size, budget); the table covers the rest."""

    def _prepare(self, X: Any, budget: Any):
        X = check_features(X)
        n = int(X.shape[0])
        b = check_budget(budget, n)
        validate_params(self, self.get_params(deep=False))
        self._check_params(n, b)
        device = resolve_device(X.device if isinstance(X, torch.Tensor) and self.device == "auto" else self.device)
        want = torch.float64 if self.dtype == "float64" else torch.float32
        T = to_tensor(X, device, want if X.dtype != want else None)
        if self.normalize:
            T = torch.nn.functional.normalize(T, dim=1)
        return T, b

    def select(self, X: Any, budget: Any, labeled: Any = None) -> SelectionResult:
        """Choose ``budget`` samples of ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Features of the pool.
        budget : int or float
            A count in [1, n_samples], or a fraction of the pool in (0, 1).
            Already-labeled samples count towards it.
        labeled : array-like of int or None
            Warm start: pool indices already labeled. They count as chosen:
            the result starts with them, and the method selects the rest of
            the budget around them (see :meth:`_select_warm`).

        Returns
        -------
        SelectionResult

        Notes
        -----
        The call runs with as many threads as there are free cores
        (:func:`bilaf.threads.limit_threads`).
        """
        with limit_threads():
            return self._select_entry(X, budget, labeled)

    def _select_entry(self, X: Any, budget: Any, labeled: Any) -> SelectionResult:
        T, b = self._prepare(X, budget)
        n = int(T.shape[0])
        lab = None
        if labeled is not None:
            lab = check_indices(labeled, n, name="labeled", allow_empty=True)
            if len(lab) > b:
                raise ValidationError(f"{len(lab)} samples are already labeled, more than the budget {b}")
            if len(lab) == 0:
                lab = None
        rng = check_random_state(self.random_state)
        timer = Timer()
        if lab is None:
            result = self._select(T, b, rng, timer)
        else:
            result = self._select_warm(T, b, lab, rng, timer)
            result.params["labeled_indices"] = lab.tolist()
        result.method = self.name
        result.n_samples = n
        result.params = {**{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                            for k, v in self.get_params(deep=False).items()},
                         **result.params}
        result.timings = {**timer.timings, **result.timings}
        if len(result.indices) != b or len(np.unique(result.indices)) != b:  # pragma: no cover - a bug if reached
            raise RuntimeError(f"internal error: {self.name} returned {len(result.indices)} indices "
                               f"({len(np.unique(result.indices))} distinct) for budget {b}")
        self.result_ = result
        self.indices_ = result.indices
        return result

    def _select_warm(self, X: torch.Tensor, budget: int, labeled: np.ndarray, rng: np.random.Generator,
                     timer: Timer) -> SelectionResult:
        """Warm start, generic form: select ``budget - len(labeled)`` among the unlabeled rest.

        Methods with a natural warm start (k-centre: the labeled samples are
        the first centres) override this.
        """
        n = X.shape[0]
        rest_budget = budget - len(labeled)
        if rest_budget == 0:
            return SelectionResult(indices=labeled)
        rest = np.setdiff1d(np.arange(n), labeled)
        sub = self._select(X[torch.as_tensor(rest, device=X.device)], rest_budget, rng, timer)
        m = lambda a: rest[np.asarray(a, dtype=np.int64)]  # noqa: E731 - sub-pool index -> pool index
        pseudo = None
        if sub.pseudo_labels is not None:
            pseudo = np.full(n, -1, dtype=np.int64)
            pseudo[rest] = sub.pseudo_labels
        return SelectionResult(
            indices=np.concatenate([labeled, m(sub.indices)]), core_indices=m(sub.core_indices),
            boundary_indices=m(sub.boundary_indices), pseudo_labels=pseudo,
            scores=np.concatenate([np.full(len(labeled), np.nan), sub.scores]),
            opponents=np.concatenate([np.full(len(labeled), -1), sub.opponents]),
            pick_classes=np.concatenate([np.full(len(labeled), -1), sub.pick_classes]),
            notes=sub.notes, params=sub.params)

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        raise NotImplementedError

    @property
    def _tdtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)
