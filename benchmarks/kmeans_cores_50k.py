"""BiLAF with k-means cores on 50,000 rows (issue target: <= 5 s): wall and CPU seconds by stage.

The pool is the synthetic clustered pool of ``scale.py`` (N = 50,000, d = 384); K = 250 (0.5% of N) k-means
cores (``core_selector="kmeans"``: Lloyd's on the whole pool from a greedy k-means++ start), B = 1% and 5%.
``--threads 0`` leaves the thread count to bilaf's policy (the free cores); a number fixes it. CPU seconds
are the robust figure on a shared machine. Run::

    nice -n 10 python benchmarks/kmeans_cores_50k.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import gaussian_mixture  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    from bilaf import BiLAF, threads

    if a.threads:
        threads.set_thread_policy(a.threads)
    X = gaussian_mixture(a.n, 384, random_state=0)
    for frac in a.budgets:
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = BiLAF(n_cores=round(0.005 * a.n), core_selector="kmeans", random_state=0).select(X, frac)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps(dict(n=a.n, budget=len(res.indices), wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                              stages_wall_s={k: round(v, 2) for k, v in res.timings.items()},
                              threads=a.threads or "auto", load=round(load, 1))), flush=True)


if __name__ == "__main__":
    main()
