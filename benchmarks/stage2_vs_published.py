"""Stage 2 of BiLAF (assignment, IDC denoising, boundary selection): bilaf against the published code, one run.

The published code is not part of this repository. Obtain it with::

    git clone https://github.com/Thinklab-SJTU/BiLAF /tmp/BiLAF

and pass the clone (or the file ``data_selection/Boundary_Selection/density_cluster.py`` itself) as the
first argument. This script imports its functions ``distance_cluster`` (assignment),
``density_cluster_denoise`` (IDC) and ``selection`` (budget split, boundary scores, iterative selection)
and calls them exactly as its ``main`` does, on the same pool and the same given cores as bilaf.

Pool: the synthetic clustered pool of ``scale.py`` (default N = 50,000, d = 384, float32), K = 0.5% of N random
pool samples as cores (the rule of ``ratio.py``), budget B. bilaf runs (with ``BiLAF(cores=cores)``,
so stage 1 is skipped) before and after the published code, in float32 (its default) and in float64 (the
published code's precision); the ratio uses the mean of its two runs. The picks are compared, but they are
not expected to be equal: the published denoising reads its kNN distances at the wrong positions (see
README.md, "published code"); ``ratio.py`` checks that bilaf equals a direct implementation of the repaired algorithm.

Run::

    nice -n 10 python benchmarks/stage2_vs_published.py /tmp/BiLAF

It writes ``benchmarks/results/stage2_vs_published.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import gaussian_mixture  # noqa: E402

PUBLISHED_FILE = Path("data_selection") / "Boundary_Selection" / "density_cluster.py"


def load_published(path: Path):
    """The published ``density_cluster`` module, from a clone of the repository or the file itself."""
    file = path if path.is_file() else path / PUBLISHED_FILE
    if not file.is_file():
        raise SystemExit(f"error: {path}: no {PUBLISHED_FILE} there; clone "
                         "https://github.com/Thinklab-SJTU/BiLAF and pass the clone's path")
    spec = importlib.util.spec_from_file_location("published_density_cluster", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_published(mod, X: np.ndarray, cores: np.ndarray, budget: int, *, k: int = 10, remove: float = 0.1,
                  cycle: float = 0.1, delta: float = 1.1) -> Tuple[List[int], dict]:
    """The published stage 2, as its ``main`` calls it; returns the picks and the seconds of each step."""
    K = len(cores)
    t0 = time.perf_counter()
    core_feats = X[cores]
    lists = mod.distance_cluster(X, core_feats, K)
    t1 = time.perf_counter()
    lists, _ = mod.density_cluster_denoise(lists, X, cores, K, density_nearst_number=k, remove_percentage=remove,
                                           cycle_percentage=cycle)
    t2 = time.perf_counter()
    picks = mod.selection(lists, core_feats, X, cores, K, budget, same_oppo_penalty_ratio=delta)
    t3 = time.perf_counter()
    return picks, {"assignment": t1 - t0, "denoising": t2 - t1, "scores and selection": t3 - t2}


def timed(fn: Callable[[], Any]) -> Tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("published", type=Path,
                   help="clone of https://github.com/Thinklab-SJTU/BiLAF (or its density_cluster.py)")
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--budget", type=int, default=1_000)
    p.add_argument("--core-fraction", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "stage2_vs_published.md")
    args = p.parse_args(argv)
    mod = load_published(args.published)

    import torch

    from bilaf.result import atomic_write
    from bilaf.selectors.bilaf import BiLAF

    X = gaussian_mixture(args.n, random_state=args.seed)
    K = max(1, round(args.core_fraction * args.n))
    cores = np.sort(np.random.default_rng(args.seed + 1).choice(args.n, K, replace=False))
    B = args.budget
    load_start = os.getloadavg()[0]

    def bilaf(dtype: str):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sel = BiLAF(cores=cores, dtype=dtype)
                res = sel.select(X, B)
            return res
        return run

    first = {dt: timed(bilaf(dt)) for dt in args.dtypes}
    print("bilaf run 1: " + ", ".join(f"{dt} {w:.2f} s" for dt, (_, w, _) in first.items()), file=sys.stderr,
          flush=True)
    (pub_picks, pub_steps), pub_wall, pub_cpu = timed(lambda: run_published(mod, X, cores, B))
    print(f"published: {pub_wall:.1f} s {pub_steps}", file=sys.stderr, flush=True)
    second = {dt: timed(bilaf(dt)) for dt in args.dtypes}
    load_end = os.getloadavg()[0]

    rows = []
    for dt in args.dtypes:
        (r1, w1, c1), (r2, w2, c2) = first[dt], second[dt]
        wb, cb = (w1 + w2) / 2, (c1 + c2) / 2
        common = len(np.intersect1d(r1.indices, np.asarray(pub_picks)))
        stages = {k: round((r1.timings.get(k, 0) + r2.timings.get(k, 0)) / 2, 3) for k in
                  ("assignment", "denoising", "scores and selection")}
        rows.append(dict(n=args.n, d=X.shape[1], K=K, budget=B, bilaf_dtype=dt, bilaf_wall_s_run1=round(w1, 3),
                         bilaf_wall_s_run2=round(w2, 3), bilaf_cpu_s=round(cb, 3), published_wall_s=round(pub_wall, 2),
                         published_cpu_s=round(pub_cpu, 2), ratio_wall=round(pub_wall / wb, 2),
                         ratio_cpu=round(pub_cpu / cb, 2), picks_in_common=common,
                         bilaf_stages=stages, published_steps={k: round(v, 2) for k, v in pub_steps.items()},
                         threads=torch.get_num_threads(), load_start=round(load_start, 2),
                         load_end=round(load_end, 2)))

    from _measure import write_rows_csv
    from scale import how_invoked

    command = how_invoked("benchmarks/stage2_vs_published.py", argv if argv is not None else sys.argv[1:])
    write_rows_csv(args.out.with_suffix(".csv"), rows)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:  # pragma: no cover - not Linux
        pass
    lines = ["# Stage 2: bilaf against the published BiLAF code", "",
             f"Pool: the synthetic clustered pool of `scale.py`, N = {args.n:,}, d = {X.shape[1]}, float32 features; "
             f"K = {K} given cores (random pool samples), B = {B:,}. Published: "
             "`data_selection/Boundary_Selection/density_cluster.py` of https://github.com/Thinklab-SJTU/BiLAF "
             "(assignment, IDC denoising, selection, called as its `main` does; scipy `cdist` in float64). bilaf: "
             "`BiLAF(cores=cores, dtype=...)`, the whole `select` call, run before and after the published "
             "code; the ratio uses the mean of its two runs. Picks in common: the published denoising reads its kNN "
             "distances at the wrong positions, so about a third of its picks differ (bilaf equals the repaired "
             "algorithm: `ratio.py`).", "",
             f"Machine: {cpu}, {os.cpu_count()} CPUs, shared; 1-minute load average {load_start:.1f} at the start, "
             f"{load_end:.1f} at the end; torch threads {torch.get_num_threads()}.", "",
             "| bilaf dtype | bilaf wall s (run 1 / run 2) | published wall s | wall ratio | bilaf CPU s | "
             "published CPU s | CPU ratio | picks in common |", "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['bilaf_dtype']} | {r['bilaf_wall_s_run1']:.2f} / {r['bilaf_wall_s_run2']:.2f} | "
                     f"{r['published_wall_s']:.1f} | **{r['ratio_wall']:.1f}x** | {r['bilaf_cpu_s']:.2f} | "
                     f"{r['published_cpu_s']:.1f} | {r['ratio_cpu']:.1f}x | {r['picks_in_common']} of {B} |")
    lines += ["", "Seconds by step (bilaf: mean of its two runs):", "",
              "| step | published | " + " | ".join(f"bilaf {r['bilaf_dtype']}" for r in rows) + " |",
              "|---|---|" + "---|" * len(rows)]
    for step in ("assignment", "denoising", "scores and selection"):
        lines.append(f"| {step} | {pub_steps[step]:.2f} | "
                     + " | ".join(f"{r['bilaf_stages'][step]:.2f}" for r in rows) + " |")
    lines += ["", "Command:", "", f"    {command}", ""]
    with atomic_write(args.out) as fh:
        fh.write("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
