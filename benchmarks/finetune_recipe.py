"""Fix the finetune recipe on a validation split of the pool, before any method is compared.

The pool's rows are split once (seed 0) into a part to select from and a validation part (its labels
score the candidates); random selections of each budget are finetuned with every candidate learning rate,
and the table of validation accuracies is written. The test set is never read.

    python benchmarks/finetune_recipe.py /tmp/bilaf-text/trec6_train.npz --budgets 0.02,0.05 \
        --lrs 3e-5,1e-4,3e-4 --seeds 2 --out benchmarks/results/finetune_recipe_trec6.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pool", help="pool feature file made by bilaf embed (ids + source + backbone in its metadata)")
    p.add_argument("--budgets", default="0.02,0.05", help="fractions of the selectable part")
    p.add_argument("--lrs", default="3e-5,1e-4,3e-4", help="candidate peak learning rates of the top")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--max-val", type=int, default=2000, help="at most this many validation rows")
    p.add_argument("--source", help="override the pool's source")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from bilaf.evaluation import RECIPES, finetuner_for
    from bilaf.evaluation.trunks import TRUNKS
    from bilaf.features import FeatureSet

    torch.set_num_threads(1)
    pool = FeatureSet.load(args.pool)
    y = np.asarray(pool.labels, dtype=np.int64)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(pool))
    n_val = min(args.max_val, int(round(args.val_fraction * len(pool))))
    val_rows, sel_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    kind = TRUNKS[str(pool.meta.get("backbone"))].kind
    base = RECIPES[kind]
    # the "test" side of the finetuner is the validation part of the pool
    ft = finetuner_for(pool, pool, y[val_rows], int(y.max()) + 1, pool_rows=sel_rows, test_rows=val_rows,
                       pool_source=args.source, test_source=args.source, verbose=True)
    lrs = [float(v) for v in args.lrs.split(",")]
    budgets = [float(v) for v in args.budgets.split(",")]
    rows_out = []
    for b in budgets:
        count = max(1, int(round(b * len(sel_rows))))
        for lr in lrs:
            ft.recipe = dataclasses.replace(base, lr=lr)
            accs = []
            t0 = time.process_time()
            for seed in range(args.seeds):
                pick = np.random.default_rng(1000 + seed).choice(len(sel_rows), size=count, replace=False)
                accs.append(ft.score(pick, y[sel_rows][pick], random_state=seed))
            cpu = (time.process_time() - t0) / args.seeds
            rows_out.append((b, count, lr, float(np.mean(accs)), accs, cpu))
            print(f"budget {b} ({count}) lr {lr:g}: {100 * np.mean(accs):.1f}  ({cpu:.1f} s CPU per cell)",
                  file=sys.stderr, flush=True)
    lines = [f"# Finetune recipe on a validation split: {Path(args.pool).name}", "",
             f"Pool {len(pool)} rows split once (seed 0): {len(sel_rows)} to select from (random selections, "
             f"seeds 1000+s), {len(val_rows)} validation rows (their labels score the candidates; the test set "
             f"is not read). Base recipe ({kind}): {base.as_dict()}; trunk: {ft.trunk.describe()}.", "",
             f"Command: `python benchmarks/finetune_recipe.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             "", "| budget | labeled | lr | val accuracy % (mean) | per seed | CPU s / cell |", "|---|---|---|---|---|---|"]
    for b, c, lr, m, accs, cpu in rows_out:
        lines.append(f"| {b:g} | {c} | {lr:g} | {100 * m:.1f} | {', '.join(f'{100 * a:.1f}' for a in accs)} | {cpu:.1f} |")
    best = {}
    for lr in lrs:
        best[lr] = float(np.mean([m for b, c, l2, m, a, cpu in rows_out if l2 == lr]))
    pick = max(best, key=lambda k: best[k])
    lines += ["", f"Mean over budgets: " + ", ".join(f"lr {k:g}: {100 * v:.1f}" for k, v in best.items())
              + f". Best: lr {pick:g}.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
