"""Adapters that let active-learning libraries call bilaf as a query strategy.

``BilafQueryStrategy``
    A scikit-activeml pool query strategy (``query(X, y, candidates=None,
    batch_size=1, return_utilities=False)``; needs ``scikit-activeml``).
``bilaf_query`` / ``make_query_strategy``
    modAL query-strategy functions ``(learner, X_pool, n_instances) ->
    (indices, X_pool[indices])`` (no import of modAL needed).

Both treat the samples the library already has labels for as bilaf's warm
start (``labeled=``): they count as chosen, and bilaf picks the new samples
around them.
"""

from __future__ import annotations

from typing import Any

from .modal import bilaf_query, make_query_strategy

__all__ = ["BilafQueryStrategy", "bilaf_query", "make_query_strategy"]


def __getattr__(name: str) -> Any:
    # scikit-activeml is imported only when its adapter is asked for
    if name == "BilafQueryStrategy":
        from .skactiveml import BilafQueryStrategy

        return BilafQueryStrategy
    raise AttributeError(f"module 'bilaf.adapters' has no attribute {name!r}")
