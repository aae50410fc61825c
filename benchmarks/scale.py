"""Scale benchmark: wall time and peak memory of each stage, from CIFAR size to ImageNet size.

Each configuration (pool size N x budget x method) runs in a fresh Python
process on a synthetic clustered pool (a Gaussian mixture with many classes
of uneven size, d = 384, float32; see ``_synthetic.py``), so its peak resident
memory is its own. BiLAF uses K = 0.5% of N cores. For every run the table
gives, per stage, the wall time and the peak resident memory seen during it,
then the whole ``select`` call's wall time, CPU time and peak resident memory
(``getrusage``), the load average when it started, and a hash of the selection.

Examples
--------
The table in ``benchmarks/results/scale.md`` was made by the commands it lists,
e.g.::

    nice -n 10 python benchmarks/scale.py --sizes 50000 200000 --budgets 0.01 0.05 \\
        --core-selector given kmeans activeft --baselines kcenter kmeans typiclust probcover activeft

    nice -n 10 python benchmarks/scale.py --sizes 1281167 --budgets 0.01 0.05 --core-selector activeft --append

On a GPU::

    python benchmarks/scale.py --device cuda --sizes 50000 200000 1281167

Results go to ``--out`` (a ``.md`` table and a ``.csv`` beside it); with
``--device cuda`` the default file name carries the GPU's name.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STAGES = ("cores", "assignment", "denoising", "scores and selection")
BASELINES = ("kcenter", "kmeans", "typiclust", "probcover", "activeft", "random")
CORE_SELECTORS = ("given", "activeft", "kmeans", "kcenter", "random")
KEY = ("n", "budget", "method", "core_selector", "device", "memory_budget", "dtype", "kmeans_algorithm", "threads",
       "omp_wait_policy")
GB = 1024**3


# ----------------------------------------------------------------------------------------------
# the worker: one configuration, in its own process
# ----------------------------------------------------------------------------------------------
def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    cores = f"{os.cpu_count()} cores" if usable == os.cpu_count() else f"{usable} of {os.cpu_count()} cores"
    return f"{model} ({cores})"


def _git_commit() -> str:
    """The checkout's commit (with ``+dirty`` when bilaf's sources differ from it), or '' outside git."""
    try:
        root = HERE.parent
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if head and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def run_one(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build the pool, run one selection, and measure it (call in a fresh process)."""
    import warnings

    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from _measure import RssSampler, current_rss_bytes, instrument_stages, peak_rss_bytes, stage_summary
    from _synthetic import gaussian_mixture

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    records = instrument_stages()
    t0 = time.perf_counter()
    X = gaussian_mixture(spec["n"], spec["d"], random_state=spec["seed"])
    data_s = time.perf_counter() - t0
    rss_data = current_rss_bytes()
    n, budget = spec["n"], spec["budget"]
    method = spec["method"]
    common = dict(device=spec["device"], memory_budget=spec["memory_budget"], verbose=not spec.get("quiet"),
                  random_state=spec["seed"])
    if method == "bilaf":
        from bilaf.selectors.bilaf import BiLAF

        cs = spec["core_selector"]
        core_params = None
        if cs == "given":  # cores computed elsewhere: K random pool samples
            cs = np.sort(np.random.default_rng(spec["seed"] + 1).choice(n, spec["n_cores"], replace=False))
        elif cs == "kmeans" and spec.get("kmeans_algorithm", "auto") != "auto":
            core_params = {"algorithm": spec["kmeans_algorithm"]}
        selector = BiLAF(n_cores=spec["n_cores"], core_selector=cs, dtype=spec["dtype"],
                         core_params=core_params, **common)
    else:
        from bilaf.selectors import get_selector_class

        params = dict(common)
        cls = get_selector_class(method)
        if "dtype" in cls._param_names():
            params["dtype"] = spec["dtype"]
        if method == "kmeans" and spec.get("kmeans_algorithm", "auto") != "auto":
            params["algorithm"] = spec["kmeans_algorithm"]
        selector = cls(**params)
    cuda_init_s = float("nan")
    if spec["device"].startswith("cuda"):
        c0 = time.perf_counter()
        torch.zeros(1, device=spec["device"]).sum().item()  # create the CUDA context outside the timings
        torch.cuda.synchronize()
        cuda_init_s = time.perf_counter() - c0
        torch.cuda.reset_peak_memory_stats()
    load = os.getloadavg()[0]
    with warnings.catch_warnings(record=True) as caught, RssSampler() as sampler:
        warnings.simplefilter("always")
        s0, c0 = time.perf_counter(), time.process_time()
        result = selector.select(X, budget)
        if spec["device"].startswith("cuda"):
            torch.cuda.synchronize()
        total_s, cpu_s = time.perf_counter() - s0, time.process_time() - c0
    stages = stage_summary(records, sampler)
    nested = sorted({r.name for r in records if r.depth > 0})
    idx = np.asarray(result.indices, dtype=np.int64)
    out = dict(spec)
    out.update(
        status="ok", data_s=data_s, cuda_init_s=cuda_init_s, total_s=total_s, cpu_s=cpu_s, rss_data_gb=rss_data / GB,
        peak_rss_gb=peak_rss_bytes() / GB, load_start=load, load_end=os.getloadavg()[0],
        threads=spec.get("threads") or torch.get_num_threads(), device_name=_device_name(spec["device"]),
        selection_sha1=hashlib.sha1(idx.tobytes()).hexdigest()[:12], n_selected=int(len(idx)),
        n_distinct=int(len(np.unique(idx))), stage_names=";".join(stages), nested_stages=";".join(nested),
        warnings=" | ".join(sorted({str(w.message) for w in caught}))[:300],
        torch=torch.__version__, git_commit=_git_commit(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
    )
    for name, s in stages.items():
        out[f"{name} s"] = s["wall"]
        out[f"{name} cpu s"] = s["cpu"]
        out[f"{name} peak GB"] = s["peak_rss"] / GB
    if spec["device"].startswith("cuda"):
        out["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / GB
    return out


# ----------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------
def _label(row: Dict[str, Any]) -> str:
    if row["method"] == "bilaf":
        alg = f", {row['kmeans_algorithm']}" if row["core_selector"] == "kmeans" and \
            row.get("kmeans_algorithm", "auto") not in ("auto", "", None) else ""
        return f"bilaf ({row['core_selector']} cores{alg})"
    if row["method"] == "kmeans" and row.get("kmeans_algorithm", "auto") not in ("auto", "", None):
        return f"kmeans ({row['kmeans_algorithm']})"
    return row["method"]


def _fmt(v: Any, nd: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—" if v in ("", None) else str(v)
    if f != f:  # NaN
        return "—"
    return f"{f:,.{nd}f}"


def make_specs(args: argparse.Namespace) -> List[Dict[str, Any]]:
    specs = []
    base = dict(d=args.dim, device=args.device, memory_budget=args.memory_budget, seed=args.seed,
                dtype=args.dtype, threads=args.threads or 0, kmeans_algorithm=args.kmeans_algorithm,
                quiet=args.quiet)
    for n in args.sizes:
        k = max(1, round(args.core_fraction * n))
        for frac in args.budgets:
            b = int(round(frac * n)) if frac < 1 else int(frac)
            for cs in args.core_selector:
                specs.append(dict(base, n=n, budget=b, budget_frac=frac, method="bilaf", core_selector=cs,
                                  n_cores=k))
            if n in args.baseline_sizes:
                for m in args.baselines:
                    specs.append(dict(base, n=n, budget=b, budget_frac=frac, method=m, core_selector="", n_cores=0))
    return specs


def run_spec(spec: Dict[str, Any], timeout: Optional[float], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(spec, status=f"stopped after {timeout:.0f} s", total_s=float("nan"))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return dict(spec, status=f"failed (exit {proc.returncode})", total_s=float("nan"),
                    wall_s_outside=time.perf_counter() - t0)
    return json.loads(lines[-1][len("RESULT "):])


def _read_csv(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _key(row: Dict[str, Any]) -> tuple:
    return tuple(str(row.get(k, "")) for k in KEY)


def write_outputs(rows: List[Dict[str, Any]], md_path: Path) -> None:
    from bilaf.result import atomic_write

    csv_path = md_path.with_suffix(".csv")
    fields: List[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in fields})
    with atomic_write(csv_path, newline="") as fh:
        fh.write(buf.getvalue())
    with atomic_write(md_path) as fh:
        fh.write(render_markdown(rows, csv_path.name))


def render_markdown(rows: List[Dict[str, Any]], csv_name: str) -> str:
    devices = sorted({r.get("device_name", "") for r in rows if r.get("device_name")})
    out = ["# Scale benchmark", "",
           "Synthetic clustered pool (Gaussian mixture, about 500 samples per class, log-normal class sizes, "
           "d = 384, float32; `benchmarks/_synthetic.py`). BiLAF uses K = 0.5% of N cores. Each row is one "
           "fresh process. Cells are `wall seconds / peak resident GB during the stage`; *total* is the whole "
           "`select` call (validation and conversion included, making the pool excluded); *peak* is the "
           "process's peak resident memory (`getrusage`), the pool itself included; *CPU* is the CPU seconds "
           "of all threads; *load* is the 1-minute load average when the run started (the machine is "
           "shared: a load above the core count means the wall times are inflated).", "",
           f"Machine: {', '.join(devices) or '?'}. Full numbers: `{csv_name}`.", ""]
    head = ["N", "K", "B", "method", *STAGES, "total s", "peak GB", "CPU s", "load", "threads", "memory budget",
            "selection", "commit"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for r in sorted(rows, key=lambda r: (int(r["n"]), int(r["budget"]), r["method"] != "bilaf", _label(r))):
        cells = [f"{int(r['n']):,}", f"{int(r['n_cores']):,}" if str(r.get("n_cores", "0")) not in ("0", "") else "—",
                 f"{int(r['budget']):,}", _label(r)]
        for s in STAGES:
            if r.get(f"{s} s", "") not in ("", None):
                cells.append(f"{_fmt(r[f'{s} s'])} / {_fmt(r[f'{s} peak GB'], 2)}")
            else:
                cells.append("—")
        if r.get("status", "ok") != "ok":
            cells += [str(r["status"])] + ["—"] * 3
        else:
            cells += [_fmt(r["total_s"]), _fmt(r["peak_rss_gb"], 2), _fmt(r["cpu_s"]), _fmt(r["load_start"])]
        threads = str(r.get("threads", "")) + (" (passive)" if r.get("omp_wait_policy") == "PASSIVE" else "")
        cells += [threads, str(r.get("memory_budget", "")), str(r.get("selection_sha1", "—")),
                  str(r.get("git_commit") or "—")[:7]]
        out.append("| " + " | ".join(cells) + " |")
    gpu = [r for r in rows if r.get("gpu_peak_gb") not in ("", None)]
    if gpu:
        out += ["", "GPU peak memory (torch.cuda.max_memory_allocated): " + ", ".join(
            f"N={int(r['n']):,} B={int(r['budget']):,} {_label(r)}: {_fmt(r['gpu_peak_gb'], 2)} GB" for r in gpu)]
    out += ["", "## Targets", ""] + targets(rows)
    notes = sorted({f"{_label(r)}, N={int(r['n']):,}: {r['warnings']}" for r in rows if r.get("warnings")})
    if notes:
        out += ["", "## Warnings the runs gave", ""] + [f"- {w}" for w in notes]
    cmds = []
    for r in rows:
        c = r.get("command", "")
        if c and c not in cmds:
            cmds.append(c)
    out += ["", "## Commands that made this table", ""] + [f"    {c}" for c in cmds] + [""]
    return "\n".join(out)


def targets(rows: List[Dict[str, Any]]) -> List[str]:
    """The issue's targets, checked against the rows (CPU rows only)."""
    lines = []

    def check(what: str, pick, limit_s: float, limit_gb: Optional[float] = None) -> None:
        for r in rows:
            if r.get("status", "ok") != "ok" or not pick(r) or str(r.get("device", "cpu")) != "cpu":
                continue
            t, m = float(r["total_s"]), float(r["peak_rss_gb"])
            ok = t <= limit_s and (limit_gb is None or m <= limit_gb)
            lim = f"<= {limit_s:g} s" + (f", <= {limit_gb:g} GB" if limit_gb else "")
            lines.append(f"- {what}, B = {int(r['budget']):,}: {t:,.1f} s, {m:.2f} GB peak "
                         f"(target {lim}): **{'met' if ok else 'missed'}** (load {float(r['load_start']):.1f})")

    bil = lambda r, n, cs: r["method"] == "bilaf" and int(r["n"]) == n and r["core_selector"] in cs  # noqa: E731
    check("N = 1,281,167, BiLAF with ActiveFT cores (mini-batch)", lambda r: bil(r, 1281167, ("activeft",)), 900, 8)
    check("N = 50,000, BiLAF with given cores", lambda r: bil(r, 50000, ("given",)), 5)
    check("N = 50,000, BiLAF with K-Means cores", lambda r: bil(r, 50000, ("kmeans",)), 5)
    check("N = 50,000, BiLAF with ActiveFT cores", lambda r: bil(r, 50000, ("activeft",)), 15)
    return lines or ["- no run in this table matches a target"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_281_167], help="pool sizes N")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05],
                   help="budgets: fractions of N in (0, 1), or counts >= 1")
    p.add_argument("--core-fraction", type=float, default=0.005, help="BiLAF's K as a fraction of N (0.5%%)")
    p.add_argument("--core-selector", nargs="*", default=["activeft"], choices=CORE_SELECTORS,
                   help="BiLAF core selectors to run (none: baselines only); 'given' = K random pool samples passed as cores")
    p.add_argument("--baselines", nargs="*", default=[], choices=BASELINES, help="baselines to run as well")
    p.add_argument("--baseline-sizes", type=int, nargs="*", default=[200_000],
                   help="pool sizes at which the baselines run")
    p.add_argument("--kmeans-algorithm", default="auto", choices=("auto", "full", "minibatch", "faiss"))
    p.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--memory-budget", default="1GB", help="bound on every chunked pass, e.g. '4GB'")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--dim", type=int, default=384, help="feature dimension d")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a run is stopped")
    p.add_argument("--out", type=Path, default=None,
                   help="the .md table to write (a .csv goes beside it); default benchmarks/results/scale.md, "
                        "or scale-<gpu name>.md on CUDA")
    p.add_argument("--append", action="store_true",
                   help="merge into the existing table (rows with the same configuration are replaced)")
    p.add_argument("--omp-passive", action="store_true",
                   help="run the workers with OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep instead of "
                        "spinning: much faster when other processes share the cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--render-only", action="store_true", help="rewrite the .md table from the .csv beside it")
    p.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def default_out(device: str) -> Path:
    if not device.startswith("cuda"):
        return RESULTS / "scale.md"
    import torch

    slug = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(torch.device(device))).strip("-").lower()
    return RESULTS / f"scale-{slug}.md"


def how_invoked(script: str, argv: List[str]) -> str:
    """The command line that ran this script, with the niceness and CPU pinning it ran under."""
    prefix = []
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < (os.cpu_count() or len(cpus)):
            prefix.append(f"taskset -c {','.join(map(str, cpus))}")
    except AttributeError:  # pragma: no cover - not Linux
        pass
    niceness = os.nice(0)
    if niceness:
        prefix.append(f"nice -n {niceness}")
    return " ".join(prefix + ["python", script] + [shlex.quote(a) for a in argv])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        out = args.out or default_out(args.device)
        write_outputs(_read_csv(out.with_suffix(".csv")), out)
        return 0
    if args.worker:
        print("RESULT " + json.dumps(run_one(json.loads(args.worker))), flush=True)
        return 0
    from bilaf.validation import parse_memory_budget

    parse_memory_budget(args.memory_budget)  # fail early on a bad budget
    specs = make_specs(args)
    if args.dry_run:
        for s in specs:
            print(f"N={s['n']:,} B={s['budget']:,} {_label(s)}")
        return 0
    out = args.out or default_out(args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = how_invoked("benchmarks/scale.py", argv if argv is not None else sys.argv[1:])
    rows = _read_csv(out.with_suffix(".csv")) if args.append else []
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE") if args.omp_passive else None
    for i, spec in enumerate(specs, 1):
        print(f"[{i}/{len(specs)}] N={spec['n']:,} B={spec['budget']:,} {_label(spec)} ...", file=sys.stderr, flush=True)
        row = run_spec(spec, args.timeout, env)
        row["command"] = command
        row.setdefault("threads", spec["threads"])
        rows = [r for r in rows if _key(r) != _key(row)] + [row]
        write_outputs(rows, out)  # after every run, so a long session keeps what it measured
        stages = ", ".join(f"{s} {float(row[f'{s} s']):.1f}s" for s in STAGES if f"{s} s" in row)
        print(f"    {row.get('status')}: total {_fmt(row.get('total_s'))} s, peak {_fmt(row.get('peak_rss_gb'), 2)} GB"
              f" ({stages})", file=sys.stderr, flush=True)
    print(f"wrote {out} and {out.with_suffix('.csv')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
