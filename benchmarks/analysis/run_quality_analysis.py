"""What the selections of ActiveFT and BiLAF look like: class coverage, balance, ambiguity, coverage radius.

Diagnoses why BiLAF does or does not beat ActiveFT on a labeled pool, with labels used only *after*
selection, to describe what was picked:

- classes: how many true classes the selection covers (of all), and the imbalance (largest class count /
  smallest, over covered classes);
- purity: mean share of each pick's 20 nearest pool neighbours (cosine) that share its true class - low
  purity = picks near a class boundary or in mixed regions (BiLAF aims at boundaries);
- agreement: share of picks whose label agrees with the majority label of their 20 neighbours;
- radius: mean cosine distance from a pool sample to its nearest pick (lower = the pool is better covered).

Usage (from the repository root; writes a Markdown table to stdout and to --out):

    python benchmarks/analysis/run_quality_analysis.py ../shared/data/cifar10/effnet-lite0/train_features.npy \
        --subsample 10000 --budgets 0.5%,1%,2%,5% --seeds 3 \
        --methods activeft,bilaf,bilaf:n_cores=0.001,bilaf:n_cores=0.001,normalize=true,random \
        --out benchmarks/results/cifar10_10k_analysis.md
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch


def neighbour_labels(X: np.ndarray, y: np.ndarray, k: int = 20, block: int = 2048) -> np.ndarray:
    """True labels of every row's k nearest other rows (cosine), shape (n, k)."""
    F = torch.nn.functional.normalize(torch.as_tensor(X, dtype=torch.float32), dim=1)
    out = np.empty((len(X), k), dtype=np.int64)
    for s in range(0, len(X), block):
        S = F[s:s + block] @ F.T
        S[torch.arange(S.shape[0]), torch.arange(s, s + S.shape[0])] = -2.0  # not itself
        out[s:s + block] = y[torch.topk(S, k, dim=1).indices.numpy()]
    return out


def describe(X: np.ndarray, y: np.ndarray, nb: np.ndarray, idx: np.ndarray) -> dict:
    n_classes = int(y.max()) + 1
    counts = np.bincount(y[idx], minlength=n_classes)
    covered = counts[counts > 0]
    purity = (nb[idx] == y[idx, None]).mean(axis=1)
    majority = np.array([np.bincount(r, minlength=n_classes).argmax() for r in nb[idx]])
    F = torch.nn.functional.normalize(torch.as_tensor(X, dtype=torch.float32), dim=1)
    near = torch.empty(len(X))
    P = F[torch.as_tensor(idx)]
    for s in range(0, len(X), 4096):
        near[s:s + 4096] = 1.0 - (F[s:s + 4096] @ P.T).max(dim=1).values
    return {"classes": len(covered), "imbalance": float(covered.max() / covered.min()),
            "purity": float(purity.mean()), "agreement": float((majority == y[idx]).mean()),
            "radius": float(near.mean())}


def main(argv=None) -> int:
    import bilaf
    from bilaf.bench import parse_budgets, parse_methods, parse_seeds
    from bilaf.features import FeatureSet

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features")
    ap.add_argument("--subsample", type=int, default=None, help="random pool rows, seed 0 (as bilaf bench)")
    ap.add_argument("--budgets", default="0.5%,1%,2%,5%")
    ap.add_argument("--seeds", default="3")
    ap.add_argument("--methods", default="random,activeft,bilaf,bilaf:n_cores=0.001")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    fs = FeatureSet.load(args.features)
    X, y = np.asarray(fs.features, dtype=np.float32), np.asarray(fs.labels)
    if args.subsample:
        rows = np.sort(np.random.default_rng(0).choice(len(y), size=args.subsample, replace=False))
        X, y = X[rows], y[rows]
    t0 = time.perf_counter()
    nb = neighbour_labels(X, y)
    specs, budgets, seeds = parse_methods(args.methods), parse_budgets(args.budgets), parse_seeds(args.seeds)
    keys = ("classes", "imbalance", "purity", "agreement", "radius")
    lines = [f"Pool {len(y):,} rows of {args.features}" + (f" (random {args.subsample:,}, seed 0)" if args.subsample
                                                            else "") + f"; seeds {', '.join(map(str, seeds))}; "
             f"mean over seeds. classes: true classes covered (of {int(y.max()) + 1}); imbalance: largest / "
             "smallest class count among covered; purity: share of a pick's 20 nearest neighbours (cosine) in its "
             "class; agreement: picks whose class is their neighbours' majority; radius: mean cosine distance "
             "from a pool sample to its nearest pick.", "",
             f"Pool-wide neighbour purity (all samples): {(nb == y[:, None]).mean():.3f}.", "",
             "| method | budget | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for spec in specs:
        for b in budgets:
            rows = []
            for seed in seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = bilaf.select(X, b.count(len(y)), method=spec.method, random_state=seed, **spec.params)
                rows.append(describe(X, y, nb, res.indices))
            m = {k: np.mean([r[k] for r in rows]) for k in keys}
            lines.append(f"| {spec.label} | {b.label} ({b.count(len(y))}) | {m['classes']:.1f} | "
                         f"{m['imbalance']:.2f} | {m['purity']:.3f} | {m['agreement']:.3f} | {m['radius']:.4f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", f"Wall time: {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from bilaf.result import atomic_write

        with atomic_write(args.out) as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
