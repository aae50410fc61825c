"""The common shape of every selector: parameters in the constructor, ``select(X, budget)``."""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator

import numpy as np
import torch

from ..kernels import DEFAULT_MEMORY_BUDGET, resolve_device, to_tensor, torch_dtype
from ..result import SelectionResult
from ..validation import check_budget, check_choice, check_features, check_random_state, parse_memory_budget

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

    def __init__(self, *, random_state: Any = None, normalize: bool = False, dtype: str = "float32",
                 device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> None:
        self.random_state = random_state
        self.normalize = normalize
        self.dtype = dtype
        self.device = device
        self.memory_budget = memory_budget
        self.verbose = verbose

    # -- scikit-learn style parameter access ---------------------------------
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
        return names

    def get_params(self) -> Dict[str, Any]:
        return {n: getattr(self, n) for n in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not isinstance(v, np.ndarray))
        return f"{type(self).__name__}({args})"

    # -- validation --------------------------------------------------------------
    def _check_common(self) -> None:
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise ValueError(f"normalize must be True or False, got {self.normalize!r}")
        parse_memory_budget(self.memory_budget)
        check_random_state(self.random_state)

    def _check_params(self, n_samples: int, budget: int) -> None:
        """Subclasses validate their own hyper-parameters here (before any work)."""

    def _prepare(self, X: Any, budget: Any):
        X = check_features(X)
        n = int(X.shape[0])
        b = check_budget(budget, n)
        self._check_common()
        self._check_params(n, b)
        device = resolve_device(X.device if isinstance(X, torch.Tensor) and self.device == "auto" else self.device)
        want = torch.float64 if self.dtype == "float64" else torch.float32
        T = to_tensor(X, device, want if X.dtype != want else None)
        if self.normalize:
            T = torch.nn.functional.normalize(T, dim=1)
        return T, b

    def select(self, X: Any, budget: Any) -> SelectionResult:
        """Choose ``budget`` samples of ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Features of the pool.
        budget : int or float
            A count in [1, n_samples], or a fraction of the pool in (0, 1).

        Returns
        -------
        SelectionResult
        """
        T, b = self._prepare(X, budget)
        rng = check_random_state(self.random_state)
        timer = Timer()
        result = self._select(T, b, rng, timer)
        result.method = self.name
        result.n_samples = int(T.shape[0])
        result.params = {**{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.get_params().items()},
                         **result.params}
        result.timings = {**timer.timings, **result.timings}
        assert len(result.indices) == b and len(np.unique(result.indices)) == b, "internal error: bad selection"
        self.result_ = result
        self.indices_ = result.indices
        return result

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        raise NotImplementedError

    @property
    def _tdtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)
