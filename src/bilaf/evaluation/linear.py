"""Linear probe: logistic regression on frozen features."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Optional

import numpy as np

from ..kernels.tensors import resolve_device, to_numpy
from ..threads import single_threaded, thread_limited
from ..validation import check_choice, check_positive_number
from ._checks import check_split, l2_normalize

__all__ = ["linear_probe", "LINEAR_DEFAULTS"]

LINEAR_DEFAULTS = {"C": 10.0, "normalize": "l2", "max_iter": 1000, "solver": "auto"}
#: Below this many multiply-adds per product (rows x features x classes), scikit-learn's solver runs on one
#: BLAS thread: a team of threads costs more at each small product than it shares.
SINGLE_THREAD_MACS = 2**28


def _prepare(train: np.ndarray, test: np.ndarray, normalize: Optional[str]):
    if normalize == "l2":
        return l2_normalize(train), l2_normalize(test)
    if normalize == "standard":
        mu = train.mean(axis=0, keepdims=True)
        sd = train.std(axis=0, keepdims=True)
        sd[sd < 1e-6] = 1.0
        return (train - mu) / sd, (test - mu) / sd
    return train, test


@thread_limited
def linear_probe(train_X: Any, train_y: Any, test_X: Any, test_y: Any, *, C: float = LINEAR_DEFAULTS["C"],
                 normalize: Optional[str] = LINEAR_DEFAULTS["normalize"], max_iter: int = LINEAR_DEFAULTS["max_iter"],
                 solver: str = LINEAR_DEFAULTS["solver"], device: str = "cpu", tol: float = 1e-6,
                 random_state: Any = None, return_predictions: bool = False):
    """Accuracy of a multinomial logistic regression trained on frozen features.

    Parameters
    ----------
    train_X : array-like of shape (n_train, d)
        Features of the labeled (selected) samples.
    train_y : array-like of int, shape (n_train,)
        Their classes (no missing labels).
    test_X : array-like of shape (n_test, d)
    test_y : array-like of int, shape (n_test,)
    C : float, default=10.0
        Inverse L2 regularisation strength (scikit-learn's ``C``). The default
        was chosen once on random selections of CIFAR-10, validated on held-out
        *training* rows (see docs/evaluation.md), and is the same for every
        selection method.
    normalize : {"l2", "standard", None}, default="l2"
        ``"l2"``: each feature vector scaled to unit length (cosine geometry,
        as the kNN protocol); ``"standard"``: per-column z-scores fitted on the
        training rows; ``None``: raw features.
    max_iter : int, default=1000
        L-BFGS iterations.
    solver : {"auto", "torch", "sklearn"}, default="auto"
        ``"auto"``: torch when ``device`` is a GPU, else scikit-learn. Both minimise the same convex objective, scikit-learn's
        ``C * sum_i CE_i + ||W||^2 / 2`` (intercept not penalised), with
        L-BFGS in float64: ``"torch"`` with ``torch.optim.LBFGS`` (runs on
        ``device``, fast on a GPU), ``"sklearn"`` with
        ``sklearn.linear_model.LogisticRegression``. They agree to within a
        few test samples.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the torch solver runs.
    tol : float, default=1e-6
        Gradient tolerance of the torch solver.
    random_state : ignored
        L-BFGS is deterministic; accepted so every protocol takes a seed.
    return_predictions : bool, default=False
        Also return the predicted class of each test sample.

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly, in [0, 1].
    predictions : numpy.ndarray of int64, shape (n_test,)
        Only when ``return_predictions``.

    Notes
    -----
    With a single class among the training labels there is nothing to fit:
    every test sample is predicted as that class.
    """
    train_X, train_y, test_X, test_y = check_split(train_X, train_y, test_X, test_y)
    check_choice("none" if normalize is None else normalize, "normalize", ("l2", "standard", "none"))
    check_positive_number(C, "C")
    A, B = _prepare(to_numpy(train_X, np.float32), to_numpy(test_X, np.float32),
                    None if normalize == "none" else normalize)
    classes = np.unique(train_y)
    check_choice(solver, "solver", ("auto", "torch", "sklearn"))
    if solver == "auto":
        solver = "torch" if resolve_device(device).type != "cpu" else "sklearn"
    if len(classes) == 1:
        pred = np.full(len(test_y), classes[0], dtype=np.int64)
    elif solver == "torch":
        pred = _torch_logreg(A, train_y, B, C=float(C), max_iter=int(max_iter), tol=float(tol), device=device)
    else:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=float(C), max_iter=int(max_iter))
        small = A.shape[0] * A.shape[1] * len(classes) < SINGLE_THREAD_MACS
        with warnings.catch_warnings(), (single_threaded() if small else contextlib.nullcontext()):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(A, train_y)
            pred = clf.predict(B).astype(np.int64)
    acc = float((pred == test_y).mean())
    return (acc, pred) if return_predictions else acc


def _torch_logreg(A: np.ndarray, y: np.ndarray, B: np.ndarray, *, C: float, max_iter: int, tol: float,
                  device: str) -> np.ndarray:
    """Multinomial logistic regression, scikit-learn's objective, by L-BFGS in float64 with torch."""
    import torch

    dev = resolve_device(device)
    classes, yy = np.unique(y, return_inverse=True)
    Xt = torch.as_tensor(A, dtype=torch.float64, device=dev)
    yt = torch.as_tensor(yy, device=dev)
    n, d = Xt.shape
    k = len(classes)
    W = torch.zeros(d, k, dtype=torch.float64, device=dev, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    reg = 1.0 / (2.0 * C * n)  # the sklearn objective divided by C * n

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xt @ W + b, yt) + reg * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        out = []
        for start in range(0, B.shape[0], 65536):
            Bt = torch.as_tensor(B[start:start + 65536], dtype=torch.float64, device=dev)
            out.append(torch.argmax(Bt @ W + b, dim=1).cpu().numpy())
    return classes[np.concatenate(out)].astype(np.int64)
