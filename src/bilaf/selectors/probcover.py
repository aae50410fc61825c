"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022, "Active Learning Through a Covering Lens"), cold start."""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from ..algorithms.kmeans import check_faiss
from ..errors import ValidationError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import pairwise_distances, sq_norms
from ..params import Interval, Options, Param
from ..result import SelectionResult
from ..utils.progress import progress
from ..validation import parse_memory_budget
from .base import BaseSelector, Timer
from .probcover_graph import _gather_rows, _Screen, _symmetric_csr, native_bf16
from .typiclust import kmeans_labels

BYTES_PER_EDGE = 16  # peak bytes per directed edge while the graph is built (see ``max_edges``)
DEFAULT_PURITY_SAMPLES = 5000
DEFAULT_N_CLUSTERS_CAP = 10  # see ``n_clusters``
LOW_COVERAGE = 0.5  # below this final coverage, the result carries a note
SCREEN_MAX_CANDIDATES = 0.002  # above this share of a block's pairs, the bf16 screen recomputes the block exactly


class ProbCover(BaseSelector):
    """ProbCover: greedy maximum coverage of the pool by balls of radius ``delta``.

    Cold start (no labels):

    1. Features are L2-normalised (``normalize=True``, as in the paper).
    2. The *delta-ball graph* has an edge ``i -> j`` when
       ``||x_i - x_j|| <= delta``; it is symmetric and every sample lies in its
       own ball. It is built in one chunked pass over the upper triangle of
       the pairwise distances (each row block against the rows after it,
       bounded by ``memory_budget``) and kept as a sparse CSR structure (int32
       column indices), never as an N x N matrix.
    3. Greedy max coverage: repeatedly take the sample whose ball holds the
       most samples not covered yet (ties: the lower index), mark its ball
       covered, and drop every edge into a covered sample (each sample's
       out-degree counts uncovered samples only).
    4. Once no ball holds more than one uncovered sample, every remaining
       choice covers exactly one more sample and the greedy order carries
       no information (with ties going to the lower index it would follow
       the file order, e.g. one class of a class-sorted pool): the next picks
       are drawn uniformly at random (``random_state``) among the samples not
       covered yet. Once every sample is covered, the rest of the budget is
       drawn at random among the samples not chosen yet, as the authors'
       code does. A note says when either happened.

    Choosing ``delta`` without labels (``delta=None``)
        The paper picks the largest ``delta`` whose balls are *pure*
        (all members share the centre's label) for at least a fraction
        ``alpha`` of the samples, with K-Means clusters standing in for the
        unknown classes. Here, exactly:

        * pseudo-labels: K-Means with ``n_clusters`` clusters on the
          normalised features (each sample to its nearest centroid);
        * for each of ``purity_samples`` samples drawn at random (all samples
          when the pool is no larger), ``r(x)`` = the distance from ``x`` to
          the nearest sample with another pseudo-label (chunked exact pass
          against the whole pool). The ball ``B_delta(x)`` is pure exactly
          when ``delta < r(x)``, so ``purity(delta) = mean_x [r(x) > delta]``;
        * with ``r_(1) <= ... <= r_(m)`` the sorted radii and
          ``j = m - ceil(alpha * m) + 1``, every ``delta < r_(j)`` reaches
          ``purity >= alpha``, and purity is constant between consecutive
          observed radii (they are the grid). ``delta`` is the middle of the
          last gap: ``(r_below + r_(j)) / 2`` with ``r_below`` the largest
          observed radius below ``r_(j)`` (so that no sampled radius lies on
          the ball's boundary); ``r_below`` itself when ``r_(j)`` is
          infinite (one pseudo-label only), and 0 when there is no such
          radius (then only exact duplicates share a ball).

        The edge cap (below) may lower it further.

    Parameters
    ----------
    delta : float or None, default=None
        Ball radius (in the units of the, by default normalised, features:
        on the unit sphere distances lie in [0, 2]). ``None``: chosen from
        the data as described above.
    alpha : float in (0, 1], default=0.95
        Target ball purity for the automatic ``delta`` (the paper's 0.95).
    n_clusters : int or None, default=None
        Pseudo-classes for the purity estimate. The paper uses the number
        of classes; pass it when you know it. ``None``: ``min(budget, 10)``
        clusters (at least 2, at most the pool size).
    purity_samples : int or None, default=5000
        Samples whose balls estimate the purity; ``None`` = all of them
        (one exact pass of N x N distances, in chunks, instead of
        ``purity_samples`` x N).
    max_edges : int or None, default=None
        Cap on the directed edges of the graph (self-loops not counted).
        ``None``: ``memory_budget / 16 bytes`` (about 67 million for
        ``"1GB"``). With an automatic ``delta``, ``delta`` is lowered during
        the pass until the graph fits (a note says so); with a given
        ``delta``, exceeding it raises ``ValueError``.
    algorithm : {"auto", "lloyd", "full", "minibatch", "faiss"}, default="auto"
        K-Means flavour for the pseudo-labels (as in
        :class:`~bilaf.selectors.typiclust.TypiClust`).
    screen : {"auto", "bf16", "off"}, default="auto"
        Speed-up of the two pool-wide distance passes (purity and graph)
        that keeps them exact: distances are first approximated with a
        bfloat16 matrix product (faster on CPUs with bfloat16
        instructions), every pair that could be within reach under a proven
        error bound is recomputed exactly, and the rest is discarded; a block
        with too many candidates is recomputed exactly as a whole. ``auto``:
        on when the device is a CPU whose ``/proc/cpuinfo`` lists
        ``avx512_bf16`` or ``amx_bf16``; ``off``: plain float32/float64
        products. Results are the same either way, up to float rounding of
        distances that equal ``delta``. Keeps one bfloat16 copy of the
        features (half their float32 size).
    random_state, normalize, dtype, device, memory_budget, verbose
        See :class:`~bilaf.selectors.base.BaseSelector`; ``normalize``
        defaults to True here.

    Attributes
    ----------
    delta_ : float
        The radius used.
    purity_ : float or None
        Estimated purity at ``delta_`` (automatic ``delta`` only).
    n_edges_ : int
        Directed edges of the graph (self-loops not counted).
    coverage_ : float
        Fraction of the pool inside the balls of the picks.

    The result's ``scores`` hold, per pick, how many samples it newly
    covered (NaN for the random picks after full coverage).
    """

    name = "probcover"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "delta": Param(Interval(numbers.Real, 0, None), None,
                       help="ball radius (none: the largest radius whose balls reach the purity --alpha)"),
        "alpha": Param(Interval(numbers.Real, 0, 1, closed="right"),
                       help="target ball purity for the automatic --delta"),
        "n_clusters": Param(Interval(numbers.Integral, 2, None), None,
                            help="pseudo-classes for the purity estimate; give the number of classes when known "
                                 "(none: the smaller of the budget and 10)"),
        "purity_samples": Param(Interval(numbers.Integral, 1, None), None,
                                help="samples whose balls estimate the purity (none: all of them)"),
        "max_edges": Param(Interval(numbers.Integral, 1, None), None,
                           help="cap on the edges of the graph (none: what --memory-budget holds at 16 bytes an "
                                "edge)"),
        "algorithm": Param(Options(("auto", "lloyd", "full", "minibatch", "faiss")),
                           help="k-means flavour for the pseudo-labels (as for typiclust)"),
        "screen": Param(Options(("auto", "bf16", "off")),
                        help="speed-up of the distance passes that keeps them exact: bf16 (approximate products, "
                             "then exact where it matters), off, or auto (bf16 on CPUs with bfloat16 "
                             "instructions)"),
    }

    def __init__(self, *, delta: Optional[float] = None, alpha: float = 0.95, n_clusters: Optional[int] = None,
                 purity_samples: Optional[int] = DEFAULT_PURITY_SAMPLES, max_edges: Optional[int] = None,
                 algorithm: str = "auto", screen: str = "auto", random_state: Any = None, normalize: bool = True, dtype: str = "float32",
                 device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET, verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.delta = delta
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.purity_samples = purity_samples
        self.max_edges = max_edges
        self.algorithm = algorithm
        self.screen = screen

    # -- validation ------------------------------------------------------------
    def _check_params(self, n_samples: int, budget: int) -> None:
        if self.n_clusters is not None and int(self.n_clusters) > n_samples:
            raise ValidationError(f"{{setting}} exceeds the pool size {n_samples}",
                                  setting=("n_clusters", self.n_clusters))
        check_faiss(self.algorithm)

    def _edge_cap(self) -> int:
        if self.max_edges is not None:
            return int(self.max_edges)
        return max(1, parse_memory_budget(self.memory_budget) // BYTES_PER_EDGE)

    # -- the method --------------------------------------------------------------
    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        n = X.shape[0]
        X = X.to(self._tdtype)
        notes: List[str] = []
        params = {}
        self.purity_ = None
        use_screen = self.screen == "bf16" or (self.screen == "auto" and native_bf16(X.device))
        screen = _Screen(X, self.memory_budget) if use_screen else None
        params["screen"] = "bf16" if use_screen else "off"
        pseudo = None
        if self.delta is None:
            k = self.n_clusters if self.n_clusters is not None else max(2, min(budget, DEFAULT_N_CLUSTERS_CAP))
            k = min(k, n)
            with timer.stage("pseudo-labels"):
                pseudo, km_algorithm = kmeans_labels(X, k, rng, algorithm=self.algorithm, dtype=X.dtype,
                                                     memory_budget=self.memory_budget, verbose=self.verbose)
            with timer.stage("delta"):
                delta, purity = self._auto_delta(X, pseudo, rng, screen)
            self.purity_ = purity
            params.update(n_clusters_used=int(k), kmeans_algorithm=km_algorithm, purity_at_delta=purity)
            if delta == 0.0:
                notes.append(f"no ball radius above 0 reaches purity {self.alpha}; delta = 0 "
                             "(only duplicates share a ball)")
        else:
            delta = float(self.delta)
        with timer.stage("graph"):
            indptr, indices, delta_used = self._graph(X, delta, auto=self.delta is None, screen=screen)
        del screen
        if delta_used < delta:
            notes.append(f"delta lowered from {delta:.6g} to {delta_used:.6g} to keep the graph under "
                         f"{self._edge_cap()} edges (max_edges / memory_budget)")
        with timer.stage("greedy cover"):
            picks, gains, covered = self._greedy(indptr, indices, budget)
        n_greedy = len(picks)
        uncovered = np.flatnonzero(~covered)
        if n_greedy < budget and len(uncovered):  # every ball now adds one sample: no order among them
            single = rng.choice(uncovered, size=min(budget - n_greedy, len(uncovered)), replace=False)
            notes.append(f"after {n_greedy} greedy picks no ball held more than one uncovered sample; "
                         f"{len(single)} pick(s) drawn at random among the {len(uncovered)} uncovered samples")
            picks = list(picks) + [int(i) for i in single]
            gains = list(gains) + [1.0] * len(single)
            covered[single] = True
        n_covered = int(covered.sum())
        if n_covered < LOW_COVERAGE * n:
            notes.append(f"the balls of the picks cover only {n_covered / n:.1%} of the pool: delta={delta_used:.4g} is "
                         "small for this budget, so the picks crowd into the densest regions; a larger delta "
                         "(or a lower alpha) spreads them (see docs/baselines.md)")
        if len(picks) < budget:
            notes.append(f"all {n} samples were covered after {len(picks)} picks; the other "
                         f"{budget - len(picks)} were drawn at random")
            rest = np.setdiff1d(np.arange(n, dtype=np.int64), np.asarray(picks, dtype=np.int64))
            extra = rng.choice(rest, size=budget - len(picks), replace=False)
            picks = list(picks) + [int(i) for i in extra]
            gains = list(gains) + [np.nan] * len(extra)
        self.delta_ = float(delta_used)
        self.n_edges_ = int(indices.shape[0])
        self.coverage_ = n_covered / n
        params.update(delta_used=float(delta_used), n_edges=int(indices.shape[0]), coverage=n_covered / n,
                      n_greedy_picks=n_greedy)
        return SelectionResult(indices=np.asarray(picks, dtype=np.int64), scores=np.asarray(gains, dtype=np.float64),
                               pseudo_labels=pseudo, notes=notes, params=params,
                               pick_classes=None if pseudo is None else pseudo[np.asarray(picks, dtype=np.int64)])

    def _auto_delta(self, X: torch.Tensor, pseudo: np.ndarray, rng: np.random.Generator,
                    screen: Optional["_Screen"] = None) -> Tuple[float, float]:
        """The largest radius (mid-gap) with estimated ball purity >= alpha; returns (delta, purity)."""
        n = X.shape[0]
        m = n if self.purity_samples is None or self.purity_samples >= n else int(self.purity_samples)
        rows = np.arange(n) if m == n else np.sort(rng.choice(n, size=m, replace=False))
        r = self.other_label_radius(X, pseudo, rows, screen)
        r_sorted = np.sort(r)
        j = m - math.ceil(self.alpha * m - 1e-9)  # 0-based index of r_(j) in the docstring's 1-based terms
        limit = r_sorted[j]
        below = r_sorted[r_sorted < limit]
        if not below.size:
            delta = 0.0
        elif np.isfinite(limit):
            delta = float((below[-1] + limit) / 2)  # mid-gap: no sampled radius sits on the boundary
        else:
            delta = float(below[-1])
        purity = float(np.mean(r > delta))
        return delta, purity

    def other_label_radius(self, X: torch.Tensor, pseudo: np.ndarray, rows: np.ndarray,
                           screen: Optional["_Screen"] = None) -> np.ndarray:
        """For each of ``rows``, the distance to the nearest sample with another pseudo-label (inf if none)."""
        n = X.shape[0]
        x_sq = sq_norms(X)
        lab = torch.as_tensor(pseudo, device=X.device)
        rows_t = torch.as_tensor(rows, device=X.device)
        out = np.empty(len(rows), dtype=np.float64)
        chunks = list(row_chunks(len(rows), n, self.memory_budget, itemsize=X.element_size(), temporaries=4))
        for sl in progress(chunks, desc="ball purity", enabled=self.verbose and len(chunks) > 1, unit="chunk"):
            ri = rows_t[sl]
            same = lab[ri][:, None] == lab[None, :]
            if screen is None:
                D = pairwise_distances(X[ri], X, a_sq=x_sq[ri], b_sq=x_sq, squared=True)
                D.masked_fill_(same, float("inf"))
                out[sl] = D.min(dim=1).values.sqrt_().cpu().numpy()
                continue
            D = screen.approx_sq(ri, None)
            D.masked_fill_(same, float("inf"))
            m = D.min(dim=1).values
            # every true minimiser lies within 2 margins of the approximate minimum: recheck those exactly
            lim = torch.where(torch.isinf(m), torch.full_like(m, -float("inf")), m + 2.0 * screen.margin)
            nz = torch.nonzero(D <= lim[:, None])
            best = torch.full((ri.shape[0],), float("inf"), dtype=X.dtype, device=X.device)
            if nz.shape[0]:
                d2 = screen.exact_sq(ri[nz[:, 0]], nz[:, 1])
                best.scatter_reduce_(0, nz[:, 0], d2, reduce="amin")
            out[sl] = best.clamp_(min=0.0).sqrt_().cpu().numpy()
        return out

    def _graph(self, X: torch.Tensor, delta: float, *, auto: bool,
               screen: Optional["_Screen"] = None) -> Tuple[np.ndarray, np.ndarray, float]:
        """The symmetric delta-ball graph in CSR form (no self-loops); may lower ``delta`` when ``auto``."""
        n = X.shape[0]
        cap_pairs = self._edge_cap() // 2  # undirected pairs kept
        thr = torch.tensor(delta * delta, dtype=X.dtype).item()
        x_sq = sq_norms(X)
        itemsize = X.element_size()
        temporaries = math.ceil((itemsize + 1 + 16) / itemsize)  # block, mask, worst-case nonzero()
        chunks = list(row_chunks(n, n, self.memory_budget, itemsize=itemsize, temporaries=temporaries))
        total_area = n * (n - 1) / 2
        src: List[np.ndarray] = []
        dst: List[np.ndarray] = []
        d2s: List[np.ndarray] = []
        kept = 0
        done_area = 0.0
        delta_used = float(delta)
        for sl in progress(chunks, desc="delta graph", enabled=self.verbose and len(chunks) > 1, unit="chunk"):
            a, b = sl.start, sl.stop
            upper = torch.ones(b - a, b - a, dtype=torch.bool, device=X.device).triu_(1)  # j > i only
            nz = d2 = None
            if screen is not None:
                D = screen.approx_sq(slice(a, b), slice(a, None))
                cand = D <= thr + screen.margin  # holds every true edge
                cand[:, : b - a] &= upper
                nz = torch.nonzero(cand)
                del D, cand
                if nz.shape[0] <= SCREEN_MAX_CANDIDATES * (b - a) * (n - a):
                    d2 = screen.exact_sq(nz[:, 0] + a, nz[:, 1] + a)
                    keep = d2 <= thr
                    nz, d2 = nz[keep], d2[keep]
                else:  # too many candidates to recheck one by one: the exact block is cheaper
                    nz = None
            if nz is None:
                D = pairwise_distances(X[a:b], X[a:], a_sq=x_sq[a:b], b_sq=x_sq[a:], squared=True)
                mask = D <= thr
                mask[:, : b - a] &= upper
                nz = torch.nonzero(mask)
                d2 = D[nz[:, 0], nz[:, 1]]
                del D, mask
            count = int(nz.shape[0])
            done_area += (b - a) * (n - a) - (b - a) * (b - a + 1) / 2
            d2_np = d2.cpu().numpy()
            if kept + count > cap_pairs:
                if not auto:
                    raise ValidationError(f"delta={delta:g} gives more than {2 * cap_pairs} graph edges (found "
                                     f"{2 * (kept + count)} in the first {b} rows); pass a smaller delta, or raise "
                                     "max_edges or memory_budget")
                # lower the radius so that the projected whole graph keeps ~70% of the cap
                cand_d2 = np.concatenate(d2s + [d2_np])
                projected = (kept + count) * total_area / max(done_area, 1.0)
                q = min(1.0, 0.7 * cap_pairs / projected)
                thr = float(np.quantile(cand_d2, q, method="lower"))
                delta_used = math.sqrt(max(thr, 0.0))
                keep_old = [d <= thr for d in d2s]
                src = [v[k] for v, k in zip(src, keep_old)]
                dst = [v[k] for v, k in zip(dst, keep_old)]
                d2s = [v[k] for v, k in zip(d2s, keep_old)]
                kept = sum(len(v) for v in src)
                keep_new = torch.as_tensor(d2_np <= thr, device=nz.device)
                nz, d2_np = nz[keep_new], d2_np[d2_np <= thr]
            if nz.shape[0]:
                src.append((nz[:, 0] + a).to(torch.int32).cpu().numpy())
                dst.append((nz[:, 1] + a).to(torch.int32).cpu().numpy())
                d2s.append(d2_np if auto else np.empty(0, dtype=d2_np.dtype))
                kept += nz.shape[0]
        d2s.clear()
        return _symmetric_csr(n, src, dst) + (delta_used,)

    @staticmethod
    def _greedy(indptr: np.ndarray, indices: np.ndarray, budget: int) -> Tuple[List[int], List[float], np.ndarray]:
        """Greedy max coverage while some ball adds two or more samples. Returns picks, gains, covered mask."""
        n = indptr.shape[0] - 1
        deg = np.diff(indptr).astype(np.int64) + 1  # uncovered samples in each ball (itself included)
        covered = np.zeros(n, dtype=bool)
        picks: List[int] = []
        gains: List[float] = []
        while len(picks) < budget:
            p = int(np.argmax(deg))  # first index among ties
            gain = int(deg[p])
            if gain <= 1:  # no ball adds more than its own centre (or nothing): the caller draws the rest
                break
            ball = np.append(indices[indptr[p]:indptr[p + 1]], p)
            new = ball[~covered[ball]]
            covered[new] = True
            # every ball holding a newly covered sample u (u's neighbours and u itself) loses one
            np.subtract.at(deg, np.concatenate([_gather_rows(indptr, indices, new), new]), 1)
            picks.append(p)
            gains.append(float(gain))
        return picks, gains, covered
