"""Row blocks sized by a memory budget: how every pool-wide pass keeps its memory growing with N only."""

from __future__ import annotations

from typing import Any, Iterator

from ..validation import parse_memory_budget

__all__ = ["DEFAULT_MEMORY_BUDGET", "CPU_BLOCK_BYTES", "row_chunks"]

#: The memory budget of every estimator and pass that does not say otherwise.
DEFAULT_MEMORY_BUDGET = "1GB"
#: On the CPU, pool-wide distance passes work in blocks of at most this many bytes even under a larger
#: budget: the element-wise passes after each matrix product then run in cache (about a third faster).
CPU_BLOCK_BYTES = 16 * 2**20


def row_chunks(n_rows: int, n_cols: int, memory_budget: Any = DEFAULT_MEMORY_BUDGET,
               itemsize: int = 8, temporaries: int = 4) -> Iterator[slice]:
    """Slices over ``n_rows`` so a block of ``rows x n_cols`` with ``temporaries`` copies fits the budget."""
    budget = parse_memory_budget(memory_budget)
    per_row = max(1, n_cols) * itemsize * temporaries
    step = max(1, int(budget // per_row))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))
