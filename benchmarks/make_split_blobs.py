"""Write a labeled pool and test set of separated clusters, each cut into two classes by a hyperplane.

The regime BiLAF's boundary samples are made for: clusters a core can find, classes it cannot tell apart
without samples near the cut. Used to check ``n_cores="auto"`` on a pool whose coverage curve shows clear
structure (``benchmarks/results/split_blobs.md``)::

    python benchmarks/make_split_blobs.py --out /tmp/bilaf-heldout/split_blobs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


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
    p.add_argument("--pool", type=int, default=10_000)
    p.add_argument("--test", type=int, default=5_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="path stem: writes STEM_pool.npz and STEM_test.npz")
    a = p.parse_args(argv)
    X, y = split_blobs(a.pool + a.test, a.dim, a.clusters, seed=a.seed)
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for part, rows in (("pool", np.arange(a.pool)), ("test", np.arange(a.pool, a.pool + a.test))):
        np.savez(f"{stem}_{part}.npz", features=X[rows], labels=y[rows], ids=np.array([f"{part}-{i}" for i in rows]))
        print(f"wrote {stem}_{part}.npz: {len(rows)} rows, {len(np.unique(y[rows]))} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
