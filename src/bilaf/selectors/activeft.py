"""ActiveFT (Xie et al., CVPR 2023): parametric sample selection by distribution matching."""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np
import torch

from ..algorithms.tracked_argmax import TrackedArgmax
from ..errors import ValidationError
from ..kernels.chunks import DEFAULT_MEMORY_BUDGET, row_chunks
from ..kernels.distances import nearest_distinct_samples
from ..kernels.scatter import scatter_rows
from ..params import Interval, Options, Param
from ..result import SelectionResult
from ..utils.progress import progress
from ..validation import check_indices
from .base import BaseSelector, Timer

FULL_BATCH_MAX = 200_000
MINI_BATCH_SIZE = 100_000


class ActiveFT(BaseSelector):
    """ActiveFT: learn ``budget`` centroids on the unit sphere, then map each to a pool sample.

    Features are L2-normalised. Parameters ``theta`` (budget x d) start at the
    features of ``budget`` random pool samples (or of ``init``). Each step,
    with ``s_ik = f_i . theta_k / tau`` and ``pos(i) = argmax_k s_ik``, the loss
    ``-mean_i [s_i,pos(i) - log(exp(s_i,pos(i)) + C_pos(i))]``,
    ``C_k = sum_j exp(sg(theta_j) . theta_k / tau)``, is minimised with Adam.
    Centroids are then mapped, in order, to the most cosine-similar pool sample
    not taken yet. Indices are returned sorted.

    Parameters
    ----------
    n_iter : int or None
        Adam steps; default 300 full-batch, 100 in mini-batch mode (the paper's ImageNet setting).
    lr : float, default=1e-3
    temperature : float, default=0.07
    batch_size : int or None
        Samples per step. ``None``: the whole pool when N <= 200,000, else
        random mini-batches of 100,000 (drawn with ``random_state``).
    init : array-like of int or None
        Pool indices to start the centroids from (length ``budget``).
    argmax : {"pruned", "full"}, default="pruned"
        How each full-batch CPU step finds every sample's most similar
        centroid: ``"pruned"`` keeps a few candidate centroids per sample and
        proves the answer with a movement bound (:class:`~bilaf.algorithms.tracked_argmax.TrackedArgmax`,
        several times faster, same answer up to float rounding); ``"full"``
        computes all ``N x K`` similarities every step, as published. GPUs
        and mini-batch steps always use ``"full"``.
    random_state, device, memory_budget, verbose, dtype, normalize
        See :class:`~bilaf.selectors.base.BaseSelector`. ``dtype`` sets the
        training precision (float32 by default, as published).
    """

    name = "activeft"

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "n_iter": Param(Interval(numbers.Integral, 0, None), None,
                        help="Adam steps (default: 300 with the whole pool per step, 100 with mini-batches)"),
        "lr": Param(Interval(numbers.Real, 0, None, closed="neither"), help="learning rate of Adam"),
        "temperature": Param(Interval(numbers.Real, 0, None, closed="neither"), help="softmax temperature tau"),
        "batch_size": Param(Interval(numbers.Integral, 1, None), None,
                            help="samples per step (default: the whole pool up to 200,000 samples, else random "
                                 "mini-batches of 100,000)"),
        "init": Param(None, "indices", help="pool indices to start the centroids from, one per pick (a FILE)"),
        "argmax": Param(Options(("pruned", "full")),
                        help="how each full-batch CPU step finds every sample's most similar centroid: pruned "
                             "(candidates kept across steps, the same answer, several times faster) or full "
                             "(every similarity, as published)"),
    }

    def __init__(self, *, n_iter: Optional[int] = None, lr: float = 1e-3, temperature: float = 0.07,
                 batch_size: Optional[int] = None, init: Optional[Any] = None, argmax: str = "pruned",
                 random_state: Any = None,
                 dtype: str = "float32", device: str = "cpu", memory_budget: Any = DEFAULT_MEMORY_BUDGET,
                 normalize: bool = False, verbose: bool = False) -> None:
        super().__init__(random_state=random_state, normalize=normalize, dtype=dtype, device=device,
                         memory_budget=memory_budget, verbose=verbose)
        self.n_iter = n_iter
        self.lr = lr
        self.temperature = temperature
        self.batch_size = batch_size
        self.init = init
        self.argmax = argmax

    def _check_params(self, n_samples: int, budget: int) -> None:
        if self.init is not None:
            init = check_indices(self.init, n_samples, name="init")
            if len(init) != budget:
                raise ValidationError(f"{{param}} holds {len(init)} indices but the budget is {budget}", param="init")

    def _select(self, X: torch.Tensor, budget: int, rng: np.random.Generator, timer: Timer) -> SelectionResult:
        with timer.stage("activeft"):
            idx = self.fit_centroids(X, budget, rng)
        return SelectionResult(indices=np.sort(idx), core_indices=np.sort(idx))

    def fit_centroids(self, X: torch.Tensor, K: int, rng: np.random.Generator) -> np.ndarray:
        """Train the centroids and map them to distinct samples (in centroid order)."""
        n = X.shape[0]
        F = torch.nn.functional.normalize(X.to(self._tdtype), dim=1)
        batch = self.batch_size if self.batch_size is not None else (n if n <= FULL_BATCH_MAX else MINI_BATCH_SIZE)
        batch = min(batch, n)
        full = batch >= n
        n_iter = self.n_iter if self.n_iter is not None else (300 if full else 100)
        init = (np.asarray(self.init, dtype=np.int64) if self.init is not None
                else rng.choice(n, size=K, replace=False).astype(np.int64))
        theta = F[torch.as_tensor(init, device=X.device)].clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=self.lr)
        tau = float(self.temperature)
        # full batch on the CPU: the argmax pass is pruned across steps (exact, see TrackedArgmax). Not for
        # mini-batches: a row drawn again ~13 steps later has drifted too far for its bound (measured: slower)
        tracker = (TrackedArgmax(F, memory_budget=self.memory_budget)
                   if full and X.device.type == "cpu" and self.argmax == "pruned" else None)
        bar = progress(range(n_iter), desc="ActiveFT", enabled=self.verbose, unit="step")
        for _ in bar:
            if full:
                Fb, rows_t = F, None
            else:
                rows_t = torch.as_tensor(np.sort(rng.choice(n, size=batch, replace=False)), device=X.device)
                Fb = F[rows_t]
            opt.zero_grad(set_to_none=True)
            loss = self._loss(Fb, theta, tau, tracker, rows_t)
            loss.backward()
            opt.step()
        with torch.no_grad():
            centroids = torch.nn.functional.normalize(theta.detach(), dim=1)
        return nearest_distinct_samples(F, centroids, metric="cosine", dtype=self._tdtype,
                                        memory_budget=self.memory_budget)

    def _loss(self, Fb: torch.Tensor, theta: torch.Tensor, tau: float,
              tracker: Optional[TrackedArgmax] = None, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """A surrogate of the ActiveFT loss with the same gradient, built from K x d aggregates.

        The loss is ``L = -mean_i [s_i - log(exp(s_i) + C_pos(i))]`` with
        ``s_i = f_i . th_pos(i) / tau``. Its gradient reaches ``th`` through
        ``s_i`` (weight ``dL/ds_i = -C/(exp(s_i) + C) / n``) and through ``C_k``
        (weight ``dL/dC_k = sum_{i in k} 1/(exp(s_i) + C_k) / n``). Both weights
        are computed without gradient in one chunked pass (the argmax pass), then
        ``sum_k th_k . A_k / tau + sum_k b_k C_k`` is differentiated: no
        batch x K or batch x d block is kept for autograd. With a ``tracker``
        the argmax comes from it (same answer, fewer products); ``A`` is built by
        :func:`~bilaf.kernels.scatter.scatter_rows`.
        """
        th = torch.nn.functional.normalize(theta, dim=1)
        C = torch.exp(th.detach() @ th.T / tau).sum(dim=0)  # C_k = sum_j exp(sg(th_j).th_k / tau)
        n, K = Fb.shape[0], th.shape[0]
        A = torch.zeros((K, Fb.shape[1]), dtype=Fb.dtype, device=Fb.device)  # sum_{i in k} dL/ds_i * f_i
        b = torch.zeros(K, dtype=Fb.dtype, device=Fb.device)  # dL/dC_k
        with torch.no_grad():
            thd, Cd = th.detach(), C.detach()
            if tracker is not None:
                blocks = [(slice(0, n), *tracker(thd, rows))]  # Fb = F[rows] (all rows when None)
            else:
                blocks = ((sl, *torch.max(Fb[sl] @ thd.T, dim=1))
                          for sl in row_chunks(n, K, self.memory_budget, itemsize=Fb.element_size(), temporaries=2))
            for sl, s, pos in blocks:
                s = s / tau
                denom = torch.exp(s) + Cd[pos]
                A += scatter_rows(pos, -(Cd[pos] / denom) / n, Fb[sl], K)
                b.index_add_(0, pos, (1.0 / denom) / n)
        return (th * A).sum() / tau + (b * C).sum()
