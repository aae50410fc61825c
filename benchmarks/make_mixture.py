"""Write a labeled synthetic pool and test set (Gaussian mixture with many classes of uneven size) for ``bilaf bench``.

Example (the files behind ``benchmarks/results/synth100.md`` and ``synth500.md``)::

    python benchmarks/make_mixture.py --classes 100 --out /tmp/bilaf-synth/synth100
    bilaf bench /tmp/bilaf-synth/synth100_pool.npz --test /tmp/bilaf-synth/synth100_test.npz ...

One mixture is drawn (``_synthetic.gaussian_mixture``: classes under super-classes, log-normal class sizes)
and its rows are split at random into the pool and the test set, so both follow the same class sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import gaussian_mixture  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--pool", type=int, default=20_000)
    p.add_argument("--test", type=int, default=5_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="path stem: writes STEM_pool.npz and STEM_test.npz")
    a = p.parse_args(argv)
    X, y = gaussian_mixture(a.pool + a.test, a.dim, n_classes=a.classes, random_state=a.seed, return_labels=True,
                            spread=a.spread)
    order = np.random.default_rng(a.seed + 1).permutation(len(X))
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for part, rows in (("pool", order[: a.pool]), ("test", order[a.pool:])):
        np.savez(f"{stem}_{part}.npz", features=X[rows], labels=y[rows],
                 ids=np.array([f"{part}-{i}" for i in rows]))
        print(f"wrote {stem}_{part}.npz: {len(rows)} rows, {len(np.unique(y[rows]))} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
