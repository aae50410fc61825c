"""A bilaf call next to a busy process: the thread policy against one thread per core.

One fixed workload is timed in one process under six settings, interleaved over ``--repeats`` rounds (the
median is reported). ``--workload select`` (default): BiLAF with given cores on the synthetic clustered pool
of ``scale.py`` (default N = 50,000, d = 384, K = 250, B = 1,000); ``embed``: 256 short texts through the
shipped MiniLM; ``evaluate``: the linear probe on 5,000 labeled pool rows, scored on 20,000. The settings:

* ``idle, all threads``: no neighbour, ``BILAF_THREADS`` = every allowed CPU (what bilaf did before it
  had a thread policy);
* ``idle, one thread``: no neighbour, one thread;
* ``idle, auto``: no neighbour, the default policy (:mod:`bilaf.threads`);
* ``busy, all threads``: next to a neighbour this script spawns, every allowed CPU;
* ``busy, one thread``: next to the neighbour, one thread (the control: what the neighbour's share of the
  CPUs costs by itself);
* ``busy, auto``: next to the neighbour, the default policy.

The neighbour is a pure-Python loop (``--neighbour python``) or a numpy loop (``--neighbour numpy``) pinned to
the first allowed CPU; it is stopped before the idle settings run. The targets: ``busy, auto`` at most 1.25x
``idle, one thread``, and ``idle, auto`` level with ``idle, all threads`` on an idle machine. A shared
machine is never idle: the table gives the load average, so read the ratios within one run, and the CPU
seconds (threads that spin or wait at barriers burn CPU; the scheduler's sharing of the CPUs with other
jobs does not).

Run::

    python benchmarks/threads.py
    python benchmarks/threads.py --workload embed
    python benchmarks/threads.py --workload evaluate

They write ``benchmarks/results/threads.md``, ``threads_embed.md`` and ``threads_evaluate.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import gaussian_mixture  # noqa: E402

NEIGHBOURS = {
    "python": "while True:\n    pass\n",
    "numpy": ("import numpy as np\na = np.random.default_rng(0).random(200_000)\n"
              "while True:\n    a = np.sqrt(a * a + 1.0)\n"),
}


def spawn_neighbour(kind: str, cpu: int) -> subprocess.Popen:
    """A process that keeps ``cpu`` busy (pinned to it; its BLAS limited to one thread)."""
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n" + NEIGHBOURS[kind]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    time.sleep(1.0)  # let it start and take its core
    return proc


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--n-cores", type=int, default=250, help="K, given cores (random pool samples)")
    p.add_argument("--budget", type=int, default=1_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--neighbour", choices=sorted(NEIGHBOURS), default="python")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workload", choices=("select", "embed", "evaluate"), default="select",
                   help="select: BiLAF with given cores; embed: 256 short texts through the shipped MiniLM; "
                        "evaluate: the linear probe on 5,000 labeled rows of the pool, scored on 20,000")
    p.add_argument("--out", type=Path, help="default: results/threads.md (select), threads_WORKLOAD.md")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / ("threads.md" if args.workload == "select" else f"threads_{args.workload}.md")

    import torch

    from bilaf import threads
    from bilaf.result import atomic_write
    from bilaf.selectors.bilaf import BiLAF

    cpus = sorted(os.sched_getaffinity(0))
    X = gaussian_mixture(args.n, random_state=args.seed)
    cores = np.sort(np.random.default_rng(args.seed + 1).choice(args.n, args.n_cores, replace=False))
    torch.set_num_threads(len(cpus))  # the ceiling: one thread per allowed CPU

    if args.workload == "select":
        workload = f"`BiLAF(cores=cores).select(X, {args.budget})`"

        def work():
            return BiLAF(cores=cores).select(X, args.budget).indices
    elif args.workload == "embed":
        from bilaf.features.embed import embed_texts

        words = ("pool", "label", "boundary", "core", "sample", "budget", "model", "finetune", "class", "text")
        rng = np.random.default_rng(args.seed)
        texts = [" ".join(rng.choice(words, size=int(rng.integers(6, 20)))) for _ in range(256)]
        workload = "`embed_texts(texts, backbone='minilm', batch_size=32, device='cpu')`, 256 texts of 6-19 words"

        def work():
            return embed_texts(texts, backbone="minilm", batch_size=32, device="cpu", verbose=False).features
    else:
        from bilaf.evaluation.linear import linear_probe
        C = X[:10]
        m = min(len(X), 40000)
        y = np.argmin((C * C).sum(1)[None, :] - 2.0 * X[:m] @ C.T, axis=1)  # 10 classes: nearest of 10 rows
        tr, te = slice(0, m // 8), slice(m // 2, m)
        workload = (f"`linear_probe` trained on {m // 8:,} pool rows and scored on {m - m // 2:,} (`random_state=0`), "
                    "y the nearest of 10 pool rows")

        def work():
            return np.array([linear_probe(X[tr], y[tr], X[te], y[te], random_state=0)])

    def run(policy) -> Dict[str, float]:
        threads.set_thread_policy(policy)
        threads.free_cores(refresh=True)
        load = os.getloadavg()[0]
        seen = []
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with threads.limit_threads() as n_threads:
                seen.append(n_threads)
                out = work()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return dict(wall=wall, cpu=cpu, threads=seen[0], load=load, picks=np.asarray(out))

    settings = [("idle, all threads", len(cpus), False), ("idle, one thread", 1, False),
                ("idle, auto", "auto", False),
                ("busy, all threads", len(cpus), True), ("busy, one thread", 1, True), ("busy, auto", "auto", True)]
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name, _, _ in settings}
    load_start = os.getloadavg()
    run(1)  # warm-up (torch's first calls, page faults)
    for rep in range(args.repeats):
        for name, policy, busy in settings:
            neighbour = spawn_neighbour(args.neighbour, cpus[0]) if busy else None
            try:
                r = run(policy)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
            runs[name].append(r)
            print(f"round {rep + 1}: {name}: {r['wall']:.2f} s ({r['threads']} thread(s), load {r['load']:.1f})",
                  file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    threads.set_thread_policy("auto")

    picks = [r["picks"] for rs in runs.values() for r in rs]
    if args.workload == "select":
        same = all(np.array_equal(picks[0], q) for q in picks)
    else:  # float results: the thread count changes the order of sums
        same = all(np.allclose(picks[0], q, atol=1e-4) for q in picks)
    med = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    cpu_one = statistics.median(r["cpu"] for r in runs["idle, one thread"])
    rows = []
    for name, rs in runs.items():
        rows.append(dict(setting=name, median_wall_s=round(med[name], 3),
                         walls_s=" / ".join(f"{r['wall']:.2f}" for r in rs),
                         cpu_s=round(statistics.median(r["cpu"] for r in rs), 3),
                         threads=" / ".join(str(r["threads"]) for r in rs),
                         load=" / ".join(f"{r['load']:.1f}" for r in rs),
                         vs_idle_one_thread=round(med[name] / med["idle, one thread"], 2),
                         cpu_vs_idle_one_thread=round(statistics.median(r["cpu"] for r in rs) / cpu_one, 2)))

    from _measure import write_rows_csv
    from scale import how_invoked

    command = how_invoked("benchmarks/threads.py", argv if argv is not None else sys.argv[1:])
    write_rows_csv(args.out.with_suffix(".csv"), rows)
    cpu_name = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu_name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu_name)
    except OSError:  # pragma: no cover - not Linux
        pass
    busy_ratio = med["busy, auto"] / med["idle, one thread"]
    idle_ratio = med["idle, auto"] / med["idle, all threads"]
    old_ratio = med["busy, all threads"] / med["idle, one thread"]
    control = med["busy, auto"] / med["busy, one thread"]
    lines = [f"# One {args.workload} call next to a busy process: the thread policy", "",
             f"Workload: {workload}, X the synthetic clustered pool of "
             f"`scale.py` (N = {args.n:,}, d = {X.shape[1]}), K = {args.n_cores} given cores. Neighbour: a "
             f"{args.neighbour} loop pinned to CPU {cpus[0]}. Median of {args.repeats} interleaved rounds; 'threads' "
             "is the count in force for each round, 'load' the 1-minute load average before it.", "",
             f"Machine: {cpu_name}, {len(cpus)} allowed CPUs ({os.cpu_count()} in all), shared with other jobs: load "
             f"average {load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f} (1 / 5 / 15 min) at the start, "
             f"{load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f} at the end. Same result in every run: "
             f"{'yes' if same else 'NO'}.", "",
             "| setting | median wall s | wall s by round | CPU s | threads | load | wall vs idle, one thread | "
             "CPU vs idle, one thread |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['median_wall_s']:.2f} | {r['walls_s']} | {r['cpu_s']:.2f} | "
                     f"{r['threads']} | {r['load']} | {r['vs_idle_one_thread']:.2f}x | "
                     f"{r['cpu_vs_idle_one_thread']:.2f}x |")
    lines += ["", f"- Next to the busy process, the policy: **{busy_ratio:.2f}x** the idle one-thread time "
              f"(target <= 1.25x); one thread per CPU (no policy): {old_ratio:.2f}x. The policy against one thread "
              f"next to the same neighbour: {control:.2f}x (what is left is the neighbour's share of the CPUs, which "
              "no thread count can win back on a machine where other jobs already fill the cores).",
              f"- Without the neighbour, the policy against one thread per CPU: {idle_ratio:.2f}x (target: level; on a "
              "machine loaded by other jobs the policy may rightly pick fewer threads).",
              "", "Command:", "", f"    {command}", ""]
    with atomic_write(args.out) as fh:
        fh.write("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
