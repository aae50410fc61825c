"""The finetune grid of issue 17: methods x budgets x seeds scored by finetuning (and the linear probe).

Runs seed by seed (every method and budget for seed 0, then seed 1...), so a stopped run leaves complete
seeds; rewrites NAME.md / NAME.csv / NAME_runs.csv after every selection and resumes from NAME_runs.csv.
Besides fixed method specs it runs BiLAF with half the budget as cores ("bilaf:n_cores=B/2": K = B // 2 at
each budget), which a single bench spec cannot say.

    python benchmarks/finetune_grid.py /tmp/bilaf-text/trec6_train.npz /tmp/bilaf-text/trec6_test.npz \
        --budgets 1%,2%,5%,10% --seeds 5 --paper-k 0.001 --name trec6_finetune --out benchmarks/results
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

METHODS = "random,kmeans:normalize=true,activeft,typiclust,maxherding,bilaf"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pool")
    p.add_argument("test")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--paper-k", type=float, default=0.001, help="BiLAF with K = this fraction of the pool")
    p.add_argument("--no-half", action="store_true", help="leave out BiLAF with K = B/2")
    p.add_argument("--budgets", default="1%,2%,5%,10%")
    p.add_argument("--seeds", default="5")
    p.add_argument("--protocols", default="finetune,linear")
    p.add_argument("--subsample", type=int, help="pool rows drawn once (seed 0)")
    p.add_argument("--title")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from bilaf.bench import BenchResult, MethodSpec, parse_budgets, parse_methods, parse_seeds, read_runs_csv, \
        run_bench
    from bilaf.evaluation import finetuner_for
    from bilaf.features import FeatureSet

    torch.set_num_threads(1)
    pool, test = FeatureSet.load(args.pool), FeatureSet.load(args.test)
    y, ty = np.asarray(pool.labels, np.int64), np.asarray(test.labels, np.int64)
    X = np.asarray(pool.features, dtype=np.float32)
    rows = None
    if args.subsample:
        rows = np.sort(np.random.default_rng(0).choice(len(pool), size=args.subsample, replace=False))
        X, y = X[rows], y[rows]
    T = np.asarray(test.features, dtype=np.float32)
    protocols = args.protocols.split(",")
    specs = parse_methods(args.methods)
    if args.paper_k:
        specs.append(parse_methods(f"bilaf:n_cores={args.paper_k:g}")[0])
    budgets = parse_budgets(args.budgets)
    seeds = parse_seeds(args.seeds)
    n = len(X)
    half = "bilaf:n_cores=B/2"
    labels = [s.label for s in specs] + ([] if args.no_half else [half])
    ft = finetuner_for(pool, test, ty, int(max(y.max(), ty.max())) + 1, pool_rows=rows, verbose=True) \
        if "finetune" in protocols else None
    out = Path(args.out)
    runs_path = out / f"{args.name}_runs.csv"
    runs = read_runs_csv(runs_path) if runs_path.exists() else []
    cmd = "python benchmarks/finetune_grid.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": cmd, "title": args.title, "n_pool": n, "n_test": len(T), "dim": int(X.shape[1]),
            "finetune": ft.describe() if ft else None}

    def write(all_runs):
        res = BenchResult(runs=all_runs, methods=labels, budgets=[b.label for b in budgets], seeds=seeds,
                          protocols=protocols, meta=meta)
        res.write(out, args.name, plot=False, title=args.title)

    t0 = time.time()
    for seed in seeds:
        for b in budgets:
            count = b.count(n)
            cell_specs = list(specs)
            if not args.no_half:
                cell_specs.append(MethodSpec(label=half, method="bilaf", params={"n_cores": max(1, count // 2)}))
            res = run_bench(X, y, T, ty, cell_specs, [b], [seed], protocols, previous=runs,
                            verbose=True, meta=meta, finetuner=ft,
                            on_progress=lambda r: write(r.runs + r.other_runs))
            runs = res.runs + res.other_runs
            write(runs)
            print(f"[{time.time() - t0:.0f} s] seed {seed} budget {b.label} done", file=sys.stderr, flush=True)
    write(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
