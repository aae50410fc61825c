"""BiLAF against the direct reference implementation: same selection, and how much faster.

One run, one process, the same pool and the same given cores for both: the
synthetic clustered pool of ``scale.py`` (N = 50,000, d = 384), K = 0.5% of N
random pool samples as cores, float64 distances in both. ``bilaf`` runs
twice (the first run includes torch's warm-up); the ratio uses the mean of
its two runs. CPU seconds (all threads) are reported beside wall seconds
because the machine is shared.

Run::

    nice -n 10 python benchmarks/ratio.py --n 50000 --budgets 0.01 0.05

It writes ``benchmarks/results/ratio.md`` and ``ratio.csv``, and exits 1 if a
selection differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import gaussian_mixture  # noqa: E402
from direct_bilaf import direct_bilaf  # noqa: E402


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--core-fraction", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-budget", default="1GB")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "ratio.md")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from bilaf.result import atomic_write
    from bilaf.selectors.bilaf import BiLAF

    X = gaussian_mixture(args.n, random_state=args.seed)
    K = max(1, round(args.core_fraction * args.n))
    # the same "given cores" rule as scale.py
    cores = np.sort(np.random.default_rng(args.seed + 1).choice(args.n, K, replace=False))
    rows = []
    for frac in args.budgets:
        B = int(round(frac * args.n)) if frac < 1 else int(frac)
        load = os.getloadavg()[0]

        def run_bilaf():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return BiLAF(cores=cores, dtype="float64", memory_budget=args.memory_budget).select(X, B)

        r1, w1, c1 = timed(run_bilaf)
        ref, wd, cd = timed(lambda: direct_bilaf(X, cores, B))
        r2, w2, c2 = timed(run_bilaf)
        same = bool(np.array_equal(r1.indices, ref) and np.array_equal(r2.indices, ref))
        wb, cb = (w1 + w2) / 2, (c1 + c2) / 2
        rows.append(dict(n=args.n, d=X.shape[1], K=K, budget=B, same_selection=same,
                         n_differing_positions=int((r1.indices != ref).sum()) if len(ref) == len(r1.indices) else -1,
                         bilaf_wall_s_run1=w1, bilaf_wall_s_run2=w2, bilaf_cpu_s=cb, direct_wall_s=wd,
                         direct_cpu_s=cd, ratio_wall=wd / wb, ratio_cpu=cd / cb, threads=torch.get_num_threads(),
                         load_start=load, load_end=os.getloadavg()[0]))
        print(f"B={B}: same selection: {same}; bilaf {w1:.1f} s / {w2:.1f} s, direct {wd:.1f} s: "
              f"{wd / wb:.1f}x wall, {cd / cb:.1f}x CPU", file=sys.stderr, flush=True)

    from _measure import write_rows_csv
    from scale import how_invoked

    command = how_invoked("benchmarks/ratio.py", argv if argv is not None else sys.argv[1:])
    write_rows_csv(args.out.with_suffix(".csv"), rows)
    lines = ["# BiLAF against a direct implementation of the same algorithm", "",
             f"Pool: the synthetic clustered pool of `scale.py`, N = {args.n:,}, d = {X.shape[1]}, float32 features, "
             f"K = {K} given cores (random pool samples), float64 distances in both. `direct` is "
             "`benchmarks/direct_bilaf.py` (full N x K float64 matrix, per-sample Python loops; it reproduces the "
             "reference fixtures exactly). `bilaf` ran before and after it; the ratio uses the mean of its two runs. "
             "CPU = CPU seconds of all threads; load = 1-minute load average at the start (2-core machine, shared).",
             "", "| N | K | B | same selection | bilaf wall s (run 1 / run 2) | direct wall s | wall ratio | "
             "bilaf CPU s | direct CPU s | CPU ratio | threads | load |", "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['K']} | {r['budget']:,} | {'yes' if r['same_selection'] else 'NO'} | "
                     f"{r['bilaf_wall_s_run1']:.2f} / {r['bilaf_wall_s_run2']:.2f} | {r['direct_wall_s']:.1f} | "
                     f"**{r['ratio_wall']:.1f}x** | {r['bilaf_cpu_s']:.2f} | {r['direct_cpu_s']:.1f} | "
                     f"{r['ratio_cpu']:.1f}x | {r['threads']} | {r['load_start']:.1f} |")
    lines += ["", "Command:", "", f"    {command}", ""]
    with atomic_write(args.out) as fh:
        fh.write("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["same_selection"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
