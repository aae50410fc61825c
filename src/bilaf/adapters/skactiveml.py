"""A scikit-activeml pool query strategy backed by a bilaf selector (needs ``scikit-activeml``)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

try:
    from skactiveml.base import SingleAnnotatorPoolQueryStrategy
    from skactiveml.utils import MISSING_LABEL, is_labeled
except ImportError as exc:  # pragma: no cover - exercised only without the package
    raise ImportError("bilaf.adapters.BilafQueryStrategy needs scikit-activeml: pip install scikit-activeml") from exc

from ..api import select
from ..errors import ValidationError

__all__ = ["BilafQueryStrategy"]


class BilafQueryStrategy(SingleAnnotatorPoolQueryStrategy):
    """bilaf (or any bilaf method) as a scikit-activeml pool query strategy.

    The samples of ``X`` whose label in ``y`` is not ``missing_label`` are
    bilaf's warm start: they count as chosen, and the ``batch_size`` new
    samples are picked among the candidates around them.

    Parameters
    ----------
    method : str, default="bilaf"
        The bilaf method (see :func:`bilaf.select`).
    params : dict or None, default=None
        Options of :func:`bilaf.select`: the method's hyper-parameters (e.g.
        ``{"n_cores": 20}``) and ``dedup``.
    missing_label : scalar or string or np.nan or None, default=np.nan
        The value marking an unlabeled sample in ``y``.
    random_state : None, int or numpy.random.RandomState, default=None
        Seed for every random choice (an int is passed to bilaf as it is).

    Examples
    --------
    >>> import numpy as np
    >>> from bilaf.adapters import BilafQueryStrategy
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> y = np.full(200, np.nan)
    >>> BilafQueryStrategy(method="kcenter", random_state=0).query(X, y, batch_size=3).shape
    (3,)
    """

    def __init__(self, method: str = "bilaf", params: Optional[Dict[str, Any]] = None,
                 missing_label: Any = MISSING_LABEL, random_state: Any = None) -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.method = method
        self.params = params

    def query(self, X: Any, y: Any, candidates: Any = None, batch_size: int = 1,
              return_utilities: bool = False):
        """Choose ``batch_size`` candidates to label.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Every sample, labeled and unlabeled.
        y : array-like of shape (n_samples,)
            Labels; ``missing_label`` marks the unlabeled ones.
        candidates : None, array-like of int of shape (n_candidates,) or array-like of shape (n_candidates, n_features)
            None: the unlabeled samples of ``X``; indices: those rows of
            ``X``; samples: these samples (the result then indexes them).
        batch_size : int, default=1
        return_utilities : bool, default=False
            Also return utilities of shape (batch_size, n_samples) (or
            (batch_size, n_candidates) for candidate samples): the pick at
            batch position ``b`` has the highest utility of row ``b``; each
            pick's utility is ``1 - rank / batch_size`` while it is still
            available, other candidates 0, labeled samples, non-candidates and
            earlier picks NaN.

        Returns
        -------
        query_indices : numpy.ndarray of int, shape (batch_size,)
            In bilaf's selection order.
        utilities : numpy.ndarray, optional
        """
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True)
        params = dict(self.params or {})
        for key in ("labeled", "candidates", "exclude", "random_state", "method"):
            if key in params:
                raise ValidationError(f"params must not set {key!r}: the query's y, candidates and the strategy's "
                                 f"own {key if key in ('method', 'random_state') else 'arguments'} do")
        seed = self.random_state if isinstance(self.random_state, (int, np.integer)) else \
            int(self.random_state_.randint(2**31 - 1))
        labeled = np.flatnonzero(is_labeled(y, missing_label=self.missing_label_))
        n_lab = len(labeled)
        if candidates is not None and np.asarray(candidates).ndim == 2:
            # candidate samples given directly: pool = the labeled samples, then the candidates
            cand = np.asarray(candidates, dtype=X.dtype)
            pool = np.concatenate([X[labeled], cand]) if n_lab else cand
            res = select(pool, n_lab + batch_size, method=self.method, random_state=seed,
                         labeled=np.arange(n_lab) if n_lab else None, **params)
            picks = res.indices[n_lab:] - n_lab
            n_out, allowed = len(cand), np.ones(len(cand), dtype=bool)
        else:
            allowed = np.zeros(len(X), dtype=bool)
            if candidates is None:
                allowed[:] = True
            else:
                allowed[np.asarray(candidates, dtype=np.int64)] = True
            allowed[labeled] = False
            res = select(X, n_lab + batch_size, method=self.method, random_state=seed,
                         labeled=labeled if n_lab else None, candidates=np.flatnonzero(allowed), **params)
            picks = res.indices[n_lab:]
            n_out = len(X)
        picks = np.asarray(picks, dtype=np.int64)
        if not return_utilities:
            return picks
        utilities = np.full((batch_size, n_out), np.nan)
        for b in range(batch_size):
            avail = allowed.copy()
            avail[picks[:b]] = False
            utilities[b, avail] = 0.0
            utilities[b, picks[b:]] = 1.0 - np.arange(b, batch_size) / batch_size
        return picks, utilities
