"""Write a labeled synthetic pool and test set (Gaussian mixture with many classes of uneven size) for ``bilaf bench``.

The files behind ``benchmarks/results/synth100.md`` and ``synth500.md`` (byte-for-byte the same arrays; the
100-class pool has tighter classes)::

    python benchmarks/data/make_mixture.py --classes 100 --spread 0.7 --out /tmp/bilaf-synth/synth100
    python benchmarks/data/make_mixture.py --classes 500 --out /tmp/bilaf-synth/synth500
    bilaf bench /tmp/bilaf-synth/synth100_pool.npz --test /tmp/bilaf-synth/synth100_test.npz ...

One mixture is drawn (``_synthetic.gaussian_mixture``: classes under super-classes, log-normal class sizes)
and its rows are split at random into the pool and the test set, so both follow the same class sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _synthetic
from _synthetic import add_split_args, gaussian_mixture, write_pool_and_test  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--spread", type=float, default=1.0)
    add_split_args(p, pool=20_000, test=5_000, dim=128)
    a = p.parse_args(argv)
    X, y = gaussian_mixture(a.pool + a.test, a.dim, n_classes=a.classes, random_state=a.seed, return_labels=True,
                            spread=a.spread)
    order = np.random.default_rng(a.seed + 1).permutation(len(X))
    write_pool_and_test(a.out, X, y, order[: a.pool], order[a.pool:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
