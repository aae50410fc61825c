"""Stage 2, step 3: split the budget between pseudo-classes."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np


def split_budget(sizes: np.ndarray, budget: int) -> Tuple[np.ndarray, List[str]]:
    """Allocate ``budget`` picks (cores included) to pseudo-classes of the given sizes.

    The paper's rule: ``B_i = floor(B * |U_i| / sum |U|)``; the leftover goes out
    one unit at a time to the pseudo-class with the smallest allocation (ties:
    the larger share ``|U_i| / sum |U|``, then the lower index).

    Two repairs, applied only where the published code crashes or repeats
    samples (so results elsewhere are unchanged):

    * no pseudo-class gets more than its members: the excess goes, one unit
      at a time and by the same rule, to pseudo-classes with room;
    * when ``budget >= K``, no pseudo-class gets 0 (it must at least hold its
      core): each such class takes one unit from the class with the largest
      allocation (ties: the smaller share, then the higher index).

    Parameters
    ----------
    sizes : numpy.ndarray of int, shape (K,)
        Member counts after denoising (each at least 1).
    budget : int
        Total picks, at most ``sizes.sum()``.

    Returns
    -------
    alloc : numpy.ndarray of int64, shape (K,)
    notes : list of str
        What the repairs changed, if anything.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    K = sizes.shape[0]
    total = int(sizes.sum())
    if budget > total:
        raise ValueError(f"budget {budget} exceeds the {total} members available")
    if budget == K:  # one pick per pseudo-class: its core (the proportional rule would starve small classes)
        return np.ones(K, dtype=np.int64), []
    share = sizes / total
    alloc = (budget * sizes) // total
    notes: List[str] = []

    def give(units: int, room_only: bool) -> None:
        for _ in range(units):
            eligible = alloc < sizes if room_only else np.ones(K, dtype=bool)
            cand = np.flatnonzero(eligible)
            # smallest allocation, then larger share, then lower index
            order = np.lexsort((cand, -share[cand], alloc[cand]))
            alloc[cand[order[0]]] += 1

    give(budget - int(alloc.sum()), room_only=False)
    over = alloc > sizes
    if over.any():
        excess = int((alloc - sizes)[over].sum())
        alloc[over] = sizes[over]
        give(excess, room_only=True)
        notes.append(f"{int(over.sum())} pseudo-class(es) were allocated more picks than members; "
                     f"{excess} pick(s) moved to other pseudo-classes")
    if budget >= K:
        zeros = np.flatnonzero(alloc == 0)
        for z in zeros:
            donors = np.flatnonzero(alloc > 1)
            order = np.lexsort((-donors, share[donors], -alloc[donors]))
            alloc[donors[order[0]]] -= 1
            alloc[z] = 1
        if len(zeros):
            notes.append(f"{len(zeros)} pseudo-class(es) were allocated 0 picks; each now holds its core")
    return alloc.astype(np.int64), notes
