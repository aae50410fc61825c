"""Write a labeled pool and test set of separated clusters, each cut into two classes by a hyperplane.

The regime BiLAF's boundary samples are made for: clusters a core can find, classes it cannot tell apart
without samples near the cut. Used to check ``n_cores="auto"`` on a pool whose coverage curve shows clear
structure (``benchmarks/results/split_blobs.md``)::

    python benchmarks/data/make_split_blobs.py --out /tmp/bilaf-heldout/split_blobs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _synthetic
from _synthetic import add_split_args, write_pool_and_test  # noqa: E402


def split_blobs(n: int, dim: int, clusters: int, *, spread: float = 1.0, box: float = 10.0, seed: int = 0):
    """``n`` rows of ``clusters`` isotropic Gaussian clusters (centres uniform in [-box, box]^dim), of uneven
    sizes; the rows of cluster c on either side of a random hyperplane through its centre get labels 2c, 2c+1."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-box, box, size=(clusters, dim))
    normals = rng.standard_normal((clusters, dim))
    w = rng.lognormal(0.0, 0.5, size=clusters)
    c = rng.choice(clusters, size=n, p=w / w.sum())
    X = centres[c] + spread * rng.standard_normal((n, dim))
    side = np.einsum("ij,ij->i", X - centres[c], normals[c]) > 0
    return X.astype(np.float32), (2 * c + side).astype(np.int64)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clusters", type=int, default=10)
    add_split_args(p, pool=10_000, test=5_000, dim=64)
    a = p.parse_args(argv)
    X, y = split_blobs(a.pool + a.test, a.dim, a.clusters, seed=a.seed)
    write_pool_and_test(a.out, X, y, np.arange(a.pool), np.arange(a.pool, a.pool + a.test))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
