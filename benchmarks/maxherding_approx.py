"""MaxHerding: what the k-nearest-neighbour kernel of large pools loses against the exact greedy.

On 5,000-row pools, where the exact dense greedy runs, both ways select with
the same bandwidth (the default rule, taken from the exact run) and L2-normalised
features (the default). Greedy picks are nested (the first B picks of a run
with budget 1,000 are the picks of budget B), so each run is made once at
the largest budget and read at every budget. For each budget:

* coverage ratio: the exact generalized coverage C(L) of the approximate
  picks over that of the exact picks (1 = no loss);
* overlap: the share of the approximate picks that the exact greedy also picked;
* for scale, C(L) of the exact picks and of random picks (mean of 5 draws).

Pools: 5,000 rows drawn (seed 0) from the CIFAR-10 EfficientNet-Lite0 training
features (1280-d) and from the TREC-6 training questions embedded with
all-MiniLM-L6-v2 (384-d; ``bilaf embed ../shared/data/text/trec6/TREC.train.all
--out /tmp/bilaf-text/trec6_train.npz``).

Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/maxherding_approx.py \\
        --cifar ../shared/data/cifar10/effnet-lite0/train_features.npy --text /tmp/bilaf-text/trec6_train.npz

It writes ``benchmarks/results/maxherding_approx.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "src"))

from bilaf.features import FeatureSet  # noqa: E402
from bilaf.selectors.maxherding import MaxHerding, generalized_coverage  # noqa: E402

BUDGETS = (10, 50, 100, 250, 500, 1000)
VARIANTS = (  # (label, constructor options of the approximate run)
    ("kNN k=20, PCA-128 search", {"n_neighbors": 20, "search_dims": 128}),
    ("kNN k=50, PCA-128 search (default)", {"n_neighbors": 50, "search_dims": 128}),
    ("kNN k=50, exact search", {"n_neighbors": 50, "search_dims": None}),
    ("kNN k=100, PCA-128 search", {"n_neighbors": 100, "search_dims": 128}),
)


def load_pool(path: str, n: int, seed: int) -> np.ndarray:
    X = np.asarray(FeatureSet.load(path).features, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=min(n, len(X)), replace=False))
    return X[rows]


def run_pool(name: str, X: np.ndarray, budgets, seed: int) -> List[Dict]:
    bmax = max(budgets)
    Xn = torch.nn.functional.normalize(torch.as_tensor(X), dim=1)
    t0 = time.perf_counter()
    exact = MaxHerding(random_state=seed).select(X, bmax)
    t_exact = time.perf_counter() - t0
    sigma = float(exact.params["bandwidth_used"])
    assert exact.params["kernel"] == "exact"
    rng = np.random.default_rng(seed)
    randoms = [rng.permutation(len(X))[:bmax] for _ in range(5)]
    rows = []
    for label, opts in VARIANTS:
        t0 = time.perf_counter()
        approx = MaxHerding(bandwidth=sigma, max_exact_samples=0, random_state=seed, **opts).select(X, bmax)
        t_approx = time.perf_counter() - t0
        assert approx.params["kernel"] == "knn"
        for b in budgets:
            c_exact = generalized_coverage(Xn, exact.indices[:b], sigma)
            c_approx = generalized_coverage(Xn, approx.indices[:b], sigma)
            c_random = float(np.mean([generalized_coverage(Xn, r[:b], sigma) for r in randoms]))
            overlap = len(np.intersect1d(exact.indices[:b], approx.indices[:b])) / b
            rows.append(dict(pool=name, n=len(X), d=X.shape[1], bandwidth=round(sigma, 4), variant=label, budget=b,
                             coverage_exact=c_exact, coverage_approx=c_approx, coverage_random=c_random,
                             coverage_ratio=c_approx / c_exact, overlap=overlap,
                             seconds_exact=round(t_exact, 1), seconds_approx=round(t_approx, 1)))
        print(f"{name} {label}: done in {t_approx:.1f} s (exact {t_exact:.1f} s)", flush=True)
    return rows


def write(rows: List[Dict], command: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "maxherding_approx.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    load = os.getloadavg()
    lines = ["# MaxHerding: the k-nearest-neighbour kernel against the exact greedy", "",
             "Written by `benchmarks/maxherding_approx.py` (its docstring says what is measured). Command:", "",
             f"    {command}", "",
             f"Machine: {platform.machine()} {os.cpu_count()}-core shared box, torch threads "
             f"{torch.get_num_threads()}, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             "(seconds are wall clock under that load, to compare with each other only).", "",
             "coverage ratio = C(approximate picks) / C(exact picks), exact C for both; overlap = share of the "
             "approximate picks also picked by the exact greedy; C exact / C random give the scale.", ""]
    for pool in dict.fromkeys(r["pool"] for r in rows):
        sub = [r for r in rows if r["pool"] == pool]
        r0 = sub[0]
        lines += [f"## {pool} ({r0['n']:,} rows, {r0['d']}-d, L2-normalised, bandwidth {r0['bandwidth']})", "",
                  f"Exact greedy: {r0['seconds_exact']} s.", "",
                  "| variant | seconds | " + " | ".join(f"B={b}" for b in dict.fromkeys(r["budget"] for r in sub)) + " |",
                  "|---|---:|" + "---:|" * len(set(r["budget"] for r in sub))]
        for variant in dict.fromkeys(r["variant"] for r in sub):
            vr = [r for r in sub if r["variant"] == variant]
            cells = [f"{r['coverage_ratio']:.4f} / {r['overlap']:.2f}" for r in vr]
            lines.append(f"| {variant} | {vr[0]['seconds_approx']} | " + " | ".join(cells) + " |")
        vr = [r for r in sub if r["variant"] == sub[0]["variant"]]
        lines.append("| C exact / C random | | " + " | ".join(
            f"{r['coverage_exact']:.4f} / {r['coverage_random']:.4f}" for r in vr) + " |")
        lines += ["", "Cells: coverage ratio / overlap.", ""]
    (RESULTS / "maxherding_approx.md").write_text("\n".join(lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cifar", required=True, help="CIFAR-10 train_features.npy")
    p.add_argument("--text", default=None, help="an embedded text pool (.npz from bilaf embed)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    command = "OMP_NUM_THREADS=1 nice -n 10 python benchmarks/maxherding_approx.py " + " ".join(sys.argv[1:])
    torch.set_num_threads(1)
    rows = run_pool("CIFAR-10 EfficientNet-Lite0", load_pool(args.cifar, args.n, args.seed), BUDGETS, args.seed)
    if args.text:
        rows += run_pool("TREC-6 all-MiniLM-L6-v2", load_pool(args.text, args.n, args.seed), BUDGETS, args.seed)
    write(rows, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
