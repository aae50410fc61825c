"""Stage 2, steps 4-5: the boundary score and the iterative selection with removal.

Paper, Eq. 5-7. For member j of pseudo-class i:

* ``d_intra(j)``: mean distance to the (denoised) members of its pseudo-class,
  itself included;
* ``d_inter(j)``: distance to the nearest other core, whose pseudo-class is the
  opponent ``o(j)``;
* Boundary Score ``BS(j) = (d_inter - d_intra) / max(d_inter, d_intra)``; lower
  means nearer a decision boundary.

The iterative selection picks, within each pseudo-class, the candidate with
the lowest penalised score ``BS'``; after every pick it removes the ``r``
candidates nearest to that pick and raises the penalty of the pick's
opponent class by one step (``delta ** t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import pairwise_distances

CRITERIA = ("boundary", "distance")
PROCESSES = ("iterative", "oneshot")
OPPONENTS = ("nearest", "min")


def boundary_score(d_inter: torch.Tensor, d_intra: torch.Tensor, weight: Any = 1.0) -> torch.Tensor:
    """The paper's Boundary Score ``(w * d_inter - d_intra) / max(d_inter, d_intra)``.

    ``weight`` is the opponent penalty ``delta ** t`` (1 for the plain score,
    Eq. 5; larger in the iterative selection, Eq. 6-7). Defined as 0 where both
    distances are 0 (identical samples) and as 1 where ``d_inter`` is infinite
    (a single pseudo-class: no boundary anywhere).
    """
    num = weight * d_inter - d_intra
    den = torch.maximum(d_inter, d_intra)
    safe = torch.where(den > 0, den, torch.ones_like(den))
    out = torch.where(den > 0, num / safe, torch.zeros_like(num))
    return torch.where(torch.isinf(d_inter), torch.ones_like(out), out)


@dataclass
class ClassPicks:
    """Positions (within the members) of one pseudo-class's picks, core first."""

    positions: np.ndarray
    scores: np.ndarray
    opponents: np.ndarray


def select_boundary(G: torch.Tensor, core_pos: int, n_pick: int, *, d_intra: torch.Tensor,
                    d_inter: torch.Tensor, opponent: torch.Tensor, delta: float = 1.1,
                    criterion: str = "boundary", process: str = "iterative", opponent_rule: str = "nearest",
                    class_index: int = 0, core_features: Optional[torch.Tensor] = None,
                    memory_budget: Any = DEFAULT_MEMORY_BUDGET) -> ClassPicks:
    """Choose ``n_pick`` members of one pseudo-class: its core, then boundary samples.

    Parameters
    ----------
    G : torch.Tensor of shape (n, d)
        Denoised members, in pool order.
    core_pos : int
        Position of the core in ``G``.
    n_pick : int
        Picks for this pseudo-class, core included; ``1 <= n_pick <= n``.
    d_intra, d_inter, opponent : torch.Tensor or numpy.ndarray of shape (n,)
        Per member, as in the module docstring.
    delta : float
        Opponent penalty base (1.0 switches the penalty off).
    criterion : {"boundary", "distance"}
    process : {"iterative", "oneshot"}
        ``oneshot`` takes the ``n_pick - 1`` lowest scores, no removal, no penalty.
    opponent_rule : {"nearest", "min"}
        ``nearest`` (published code): ``o(j)`` fixed to the nearest other core.
        ``min`` (paper Eq. 7): the minimum over all other cores after penalties;
        needs ``core_features`` (K, d) and ``class_index``.

    Returns
    -------
    ClassPicks
    """
    n = G.shape[0]
    positions = [core_pos]
    scores = [float("nan")]
    opps = [-1]
    if n_pick <= 1:
        return ClassPicks(np.array(positions, np.int64), np.array(scores), np.array(opps, np.int64))
    # per-pick work is a few small vector operations: numpy has far less overhead a call than torch
    Gn = _np(G)
    d_intra_n, d_inter_n, opp_n = _np(d_intra).astype(Gn.dtype, copy=False), _np(d_inter), _np(opponent)
    if process == "oneshot":
        s = _score_np(d_inter_n, d_intra_n, criterion)
        others = np.concatenate([np.arange(core_pos), np.arange(core_pos + 1, n)])
        order = others[np.argsort(s[others], kind="stable")[: n_pick - 1]]
        positions += order.tolist()
        scores += s[order].tolist()
        opps += opp_n[order].tolist()
        return ClassPicks(np.array(positions, np.int64), np.array(scores), np.array(opps, np.int64))

    K = int(core_features.shape[0]) if core_features is not None else int(opp_n.max()) + 1
    penalty = np.zeros(max(K, 1), dtype=Gn.dtype)  # t_l
    r = n // n_pick
    cand = np.arange(n)
    g_sq = (Gn * Gn).sum(axis=1)
    all_core = None
    if opponent_rule == "min":
        # distances from every member to every core, one block per chunk (bounded by memory_budget)
        all_core = np.empty((n, K), dtype=Gn.dtype)
        g_sq_t = (G * G).sum(dim=1)
        c_sq = (core_features * core_features).sum(dim=1)
        for sl in row_chunks(n, K, memory_budget, itemsize=G.element_size(), temporaries=2):
            all_core[sl] = _np(pairwise_distances(G[sl], core_features, a_sq=g_sq_t[sl], b_sq=c_sq))
    last = core_pos
    last_opp = -1
    while len(positions) < n_pick:
        # a. remove the r candidates nearest to the last pick (the last pick itself first)
        d_all = g_sq + g_sq[last] - 2.0 * (Gn @ Gn[last])
        d_last = np.sqrt(np.maximum(d_all[cand], 0.0))
        d_last[cand == last] = -1.0
        cand = cand[np.argsort(d_last, kind="stable")[r:]]
        # b. penalise the opponent of the last boundary pick
        if last != core_pos and last_opp >= 0:
            penalty[last_opp] += 1
        # c. penalised score; the lowest wins (ties: first in candidate order)
        if opponent_rule == "min":
            s_all = _score_np(all_core[cand], d_intra_n[cand][:, None], criterion, (delta ** penalty)[None, :])
            s_all[:, class_index] = np.inf
            o = np.argmin(s_all, axis=1)
            s = s_all[np.arange(len(cand)), o]
            if K == 1:
                s = np.ones_like(s)
        else:
            o = opp_n[cand]
            s = _score_np(d_inter_n[cand], d_intra_n[cand], criterion, delta ** penalty[np.maximum(o, 0)])
        j = int(np.argmin(s))  # first occurrence of the minimum
        last = int(cand[j])
        last_opp = int(o[j])
        positions.append(last)
        scores.append(float(s[j]))
        opps.append(last_opp)
    return ClassPicks(np.array(positions, np.int64), np.array(scores, np.float64), np.array(opps, np.int64))


def _np(t: Any) -> np.ndarray:
    """A numpy view (CPU) or copy (GPU) of a tensor; arrays pass through."""
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _score_np(d_inter: np.ndarray, d_intra: np.ndarray, criterion: str, weight: Any = 1.0) -> np.ndarray:
    """Score to minimise: :func:`boundary_score` on numpy arrays (same formula, same special cases), or
    (``"distance"``) the penalised distance to the opponent core."""
    if criterion != "boundary":
        return weight * d_inter
    with np.errstate(divide="ignore", invalid="ignore"):
        num = weight * d_inter - d_intra
        den = np.maximum(d_inter, d_intra)
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0).astype(num.dtype, copy=False)
    return np.where(np.isinf(d_inter), np.ones_like(out), out)
