"""Synthetic clustered features for the scale benchmarks: a Gaussian mixture with many uneven classes.

The pool imitates pretrained image features (d = 384 as DINO ViT-S/16, float32):
classes are grouped under a few super-classes (so some classes are close
neighbours and there are real boundaries), class sizes are log-normal (some
classes are ten times bigger than others), each class has its own spread, and
the pool order is shuffled. Memory: the N x d float32 array plus one chunk.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["default_n_classes", "gaussian_mixture", "add_split_args", "write_pool_and_test"]


def default_n_classes(n_samples: int) -> int:
    """About 500 samples per class, between 10 and 1,000 (CIFAR-100 at 50,000; ImageNet at 1.28M)."""
    return int(np.clip(n_samples // 500, 10, 1000))


def gaussian_mixture(n_samples: int, n_features: int = 384, n_classes: int | None = None, *,
                     random_state: int = 0, chunk_rows: int = 65536, return_labels: bool = False,
                     spread: float = 0.35):
    """Draw ``n_samples`` float32 rows from a clustered Gaussian mixture.

    Parameters
    ----------
    n_samples, n_features : int
    n_classes : int or None
        ``None``: :func:`default_n_classes`.
    random_state : int
        Seed; the same seed gives the same pool.
    chunk_rows : int
        Rows drawn at a time (bounds the temporaries).
    return_labels : bool
        Also return the class of each row.
    spread : float, default=0.35
        Mean per-coordinate standard deviation of a class (centres of classes
        under one super-class are 0.6 apart per coordinate): larger values make
        the classes overlap more.

    Returns
    -------
    X : numpy.ndarray of float32, shape (n_samples, n_features)
    y : numpy.ndarray of int64, shape (n_samples,), only with ``return_labels``
    """
    if n_classes is None:
        n_classes = default_n_classes(n_samples)
    rng = np.random.default_rng(random_state)
    n_super = max(2, int(round(np.sqrt(n_classes))))
    super_centres = rng.standard_normal((n_super, n_features)) * 1.0
    parent = rng.integers(0, n_super, size=n_classes)
    centres = (super_centres[parent] + rng.standard_normal((n_classes, n_features)) * 0.6).astype(np.float32)
    spread = (spread * rng.uniform(0.6, 1.4, size=n_classes)).astype(np.float32)
    weights = rng.lognormal(mean=0.0, sigma=0.8, size=n_classes)
    sizes = rng.multinomial(n_samples, weights / weights.sum())
    y = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int64), sizes))
    X = np.empty((n_samples, n_features), dtype=np.float32)
    for start in range(0, n_samples, chunk_rows):
        stop = min(n_samples, start + chunk_rows)
        yc = y[start:stop]
        noise = rng.standard_normal((stop - start, n_features), dtype=np.float32)
        noise *= spread[yc, None]
        noise += centres[yc]
        X[start:stop] = noise
    return (X, y) if return_labels else X


def add_split_args(parser: argparse.ArgumentParser, *, pool: int, test: int, dim: int) -> None:
    """The options shared by the scripts that write a labeled pool and test set (``data/make_mixture.py``,
    ``data/make_split_blobs.py``): ``--pool``, ``--test``, ``--dim``, ``--seed``, ``--out``."""
    parser.add_argument("--pool", type=int, default=pool, help=f"pool rows (default {pool:,})")
    parser.add_argument("--test", type=int, default=test, help=f"test rows (default {test:,})")
    parser.add_argument("--dim", type=int, default=dim, help=f"feature dimension (default {dim})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="path stem: writes STEM_pool.npz and STEM_test.npz")


def write_pool_and_test(stem: str | Path, X: np.ndarray, y: np.ndarray, pool_rows: np.ndarray,
                        test_rows: np.ndarray) -> None:
    """Write ``STEM_pool.npz`` and ``STEM_test.npz`` (features, labels, ids) from the given rows of ``X, y``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for part, rows in (("pool", pool_rows), ("test", test_rows)):
        np.savez(f"{stem}_{part}.npz", features=X[rows], labels=y[rows], ids=np.array([f"{part}-{i}" for i in rows]))
        print(f"wrote {stem}_{part}.npz: {len(rows)} rows, {len(np.unique(y[rows]))} classes")
