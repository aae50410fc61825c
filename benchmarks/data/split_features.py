"""Split a labeled feature file into a pool and a test set (stratified), for ``bilaf bench``.

    python benchmarks/data/split_features.py mnist_features.npz --test-fraction 0.2 --out /tmp/bilaf-heldout/mnist
    # -> /tmp/bilaf-heldout/mnist_pool.npz, /tmp/bilaf-heldout/mnist_test.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("features", help="a .npz with features and labels (as written by bilaf embed)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="path stem: writes STEM_pool.npz and STEM_test.npz")
    a = p.parse_args(argv)
    z = np.load(a.features, allow_pickle=False)
    if "features" not in z.files or "labels" not in z.files or len(z["labels"]) != len(z["features"]):
        print(f"split_features: {a.features} needs 'features' and one label per row in 'labels'", file=sys.stderr)
        return 2
    X, y = z["features"], z["labels"]
    ids = z["ids"] if "ids" in z.files else np.arange(len(X)).astype(str)
    pool, test = train_test_split(np.arange(len(X)), test_size=a.test_fraction, stratify=y, random_state=a.seed)
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for part, rows in (("pool", np.sort(pool)), ("test", np.sort(test))):
        np.savez(f"{stem}_{part}.npz", features=X[rows], labels=y[rows], ids=ids[rows])
        print(f"wrote {stem}_{part}.npz: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
