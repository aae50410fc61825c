"""A direct, obviously-correct BiLAF stage 2: the reference that ``bilaf`` is checked and timed against.

This follows /work/shared/docs/bilaf-method.md ("Stage 2: boundary samples")
line by line, the way the published code is written: one full N x K float64
distance matrix, one n x n matrix per pseudo-class, and Python loops over
samples. It is meant to be read, not to be fast. It knows nothing about
chunks, devices or memory budgets, and it does not import ``bilaf``.

Scope: the defaults of the paper (IDC denoising with the repaired density
distance, the Boundary Score, iterative selection with removal, the code's
fixed opponent ``o(j)``), raw (not normalised) features, given cores. The
edge cases that the published code gets wrong (a pseudo-class allocated 0 or
more picks than members, two cores with identical features) raise an error
here instead of being repaired.

Run it as a script to check it against the reference fixtures::

    python benchmarks/direct_bilaf.py
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence

import numpy as np


def distance_matrix(X: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The full N x K float64 matrix ``D[j, k] = ||f_j - f_core_k||``, one core at a time."""
    D = np.empty((X.shape[0], len(cores)), dtype=np.float64)
    for k, c in enumerate(cores):
        diff = X - X[c]
        D[:, k] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return D


def within_distances(G: np.ndarray) -> np.ndarray:
    """The n x n float64 matrix of distances between the rows of ``G``, one row at a time."""
    n = G.shape[0]
    W = np.empty((n, n), dtype=np.float64)
    for a in range(n):
        diff = G - G[a]
        W[a] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return W


def idc_keep(W: np.ndarray, core_pos: int, k: int, cycle: float, remove: float) -> List[int]:
    """Step 2 (IDC) on one pseudo-class, given its n x n distances: kept member positions, ascending."""
    n = W.shape[0]
    if n < 10:
        return list(range(n))
    m = max(1, int(math.floor(cycle * n)))
    n_rings = n // m
    # ring 1: the m members nearest the core, the core first
    d_core = [(-1.0 if p == core_pos else W[core_pos, p], p) for p in range(n)]
    d_core.sort()  # by distance, ties by lower position
    ranked = [p for _, p in d_core[:m]]
    taken = set(ranked)
    for _ in range(1, n_rings):
        density = []
        for p in range(n):  # per member not yet taken: mean of its k smallest distances to the taken ones
            if p in taken:
                continue
            to_taken = sorted(W[p, q] for q in taken)
            nearest = to_taken[:k]
            density.append((sum(nearest) / len(nearest), p))
        density.sort()  # ties: lower position
        ring = [p for _, p in density[:m]]
        ranked += ring
        taken.update(ring)
    n_keep = int(len(ranked) * (1 - remove))
    return sorted(ranked[:n_keep])


def split_budget(sizes: Sequence[int], budget: int) -> List[int]:
    """Step 3: ``B_i = floor(B |U_i| / sum |U|)``, then the leftover one unit at a time."""
    total = sum(sizes)
    alloc = [budget * s // total for s in sizes]
    for _ in range(budget - sum(alloc)):
        # smallest allocation, then the larger proportion, then the lower index
        i = min(range(len(sizes)), key=lambda c: (alloc[c], -sizes[c] / total, c))
        alloc[i] += 1
    for i, (a, s) in enumerate(zip(alloc, sizes)):
        if a == 0 or a > s:
            raise ValueError(f"pseudo-class {i} gets {a} picks for {s} members: an edge case this "
                             "reference does not repair")
    return alloc


def direct_bilaf(X: np.ndarray, cores: Sequence[int], budget: int, *, k: int = 10, cycle: float = 0.1,
                 remove: float = 0.1, delta: float = 1.1) -> np.ndarray:
    """BiLAF stage 2 with the given cores; returns the selection in output order.

    Parameters
    ----------
    X : numpy.ndarray of shape (N, d)
        Raw features (converted to float64).
    cores : sequence of int
        Pool indices of the cores (sorted here; that order numbers the pseudo-classes).
    budget : int
        Total picks B, cores included.
    k, cycle, remove, delta
        IDC's k, P_in, P_rm and the opponent penalty base.
    """
    X = np.asarray(X, dtype=np.float64)
    cores = np.sort(np.asarray(cores, dtype=np.int64))
    N, K = X.shape[0], len(cores)
    if len(np.unique(X[cores], axis=0)) != K:
        raise ValueError("two cores have identical features: an edge case this reference does not repair")

    # 1. assignment, from the full N x K distance matrix
    D = distance_matrix(X, cores)
    label = np.empty(N, dtype=np.int64)
    d_inter = np.empty(N)
    opponent = np.empty(N, dtype=np.int64)
    for j in range(N):
        row = D[j]
        own = int(np.argmin(row))  # ties: lower core index
        label[j] = own
        others = row.copy()
        others[own] = np.inf
        opponent[j] = int(np.argmin(others))
        d_inter[j] = others[opponent[j]]

    # 2. denoising, per pseudo-class (members in pool order)
    kept: List[np.ndarray] = []
    for i in range(K):
        members = np.flatnonzero(label == i)
        core_pos = int(np.flatnonzero(members == cores[i])[0])
        W = within_distances(X[members])
        kept.append(members[idc_keep(W, core_pos, k, cycle, remove)])

    # 3. budget split over the denoised sizes
    alloc = split_budget([len(m) for m in kept], budget)

    # 4-5. scores, then the iterative selection with removal and the opponent penalty
    selection: List[int] = []
    for i in range(K):
        members = kept[i]
        n = len(members)
        W = within_distances(X[members])
        d_intra = [W[a].mean() for a in range(n)]  # includes the member itself
        inter = [d_inter[j] for j in members]
        opp = [opponent[j] for j in members]
        core_pos = int(np.flatnonzero(members == cores[i])[0])
        picks = [core_pos]
        candidates = list(range(n))
        r = n // alloc[i]
        t = np.zeros(K, dtype=np.int64)
        while len(picks) < alloc[i]:
            last = picks[-1]
            # a. drop the r candidates nearest the last pick, the last pick itself first
            by_dist = sorted(candidates, key=lambda p: (-1.0 if p == last else W[last, p]))
            candidates = by_dist[r:]
            # b. penalise the opponent of the last boundary pick
            if last != core_pos:
                t[opp[last]] += 1
            # c. lowest penalised score wins; ties: first in candidate order
            best, best_score = None, np.inf
            for p in candidates:
                s = (delta ** t[opp[p]] * inter[p] - d_intra[p]) / max(inter[p], d_intra[p])
                if s < best_score:
                    best, best_score = p, s
            picks.append(best)
        selection += [int(members[p]) for p in picks]
    return np.asarray(selection, dtype=np.int64)


def denoised_labels(X: np.ndarray, cores: Sequence[int], *, k: int = 10, cycle: float = 0.1,
                    remove: float = 0.1) -> np.ndarray:
    """Pseudo-class of each sample after denoising, -1 for noise (the fixtures' ``fixed_kept_cluster``)."""
    X = np.asarray(X, dtype=np.float64)
    cores = np.sort(np.asarray(cores, dtype=np.int64))
    label = np.argmin(distance_matrix(X, cores), axis=1)
    out = np.full(X.shape[0], -1, dtype=np.int64)
    for i in range(len(cores)):
        members = np.flatnonzero(label == i)
        core_pos = int(np.flatnonzero(members == cores[i])[0])
        out[members[idc_keep(within_distances(X[members]), core_pos, k, cycle, remove)]] = i
    return out


def check_fixtures(folder: Path) -> List[str]:
    """Run the reference on every fixture; one line per budget, raising on any mismatch."""
    lines = []
    for f in sorted(folder.glob("ref_*.npz")):
        z = np.load(f)
        X = np.load(folder / str(z["features_file"]))
        hp = dict(k=int(z["k"]), cycle=float(z["cycle"]), remove=float(z["remove"]))
        kept = denoised_labels(X, z["cores"], **hp)
        if not np.array_equal(kept, z["fixed_kept_cluster"]):
            raise AssertionError(f"{f.name}: denoised pseudo-classes differ")
        for key in sorted((k for k in z.files if k.startswith("fixed_B")), key=lambda s: int(s[7:])):
            sel = direct_bilaf(X, z["cores"], int(key[7:]), delta=float(z["delta"]), **hp)
            if not np.array_equal(sel, z[key]):
                raise AssertionError(f"{f.name} {key}: selection differs")
            lines.append(f"{f.name} {key}: identical ({len(sel)} picks, order included)")
    return lines


if __name__ == "__main__":
    here = Path(__file__).resolve()
    for line in check_fixtures(here.parents[2] / "shared" / "fixtures" / "reference"):
        print(line)
