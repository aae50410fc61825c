"""One prepared GPU run: CUDA equals CPU, and the ImageNet-size BiLAF selection on the card.

Usage (on a machine with a CUDA GPU; results as JSON lines in OUT)::

    PYTHONPATH=src python benchmarks/gpu_check.py --out results.jsonl [--big 1281167] [--budgets 0.01 0.05]

1. Equality: a 20,000 x 384 mixture, given cores (0.5%), BiLAF at 5% in float64 on the CPU and on CUDA
   (must be identical), then in float32 (differences counted: float32 ties can flip).
2. Scale: the 1,281,167 x 384 mixture, for each of ``--methods``: ``default`` is the whole default selection
   (``BiLAF()``: automatic K, spherical k-means cores; target <= 15 s at 1% on one H100), ``activeft`` is
   K = 0.5% of N ActiveFT cores in mini-batch mode (100 steps of 100,000); budgets 1% and 5%, per-stage wall
   time and peak GPU memory. A warm-up selection on the small pool runs first, so CUDA start-up is not timed.
Each result is appended as soon as it exists, so a run stopped by a time limit keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import gaussian_mixture  # noqa: E402

import bilaf  # noqa: E402


def emit(out: Path, rec: dict) -> None:
    print(json.dumps(rec), flush=True)
    with open(out, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--small", type=int, default=20_000)
    p.add_argument("--big", type=int, default=1_281_167)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--device", default="cuda")
    p.add_argument("--methods", nargs="+", choices=["default", "activeft"], default=["default", "activeft"])
    args = p.parse_args()
    warnings.simplefilter("ignore")
    dev = args.device
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    emit(args.out, {"event": "start", "device": name, "torch": torch.__version__})

    # 1. equality on a small pool
    X = gaussian_mixture(args.small, 384, random_state=1)
    rng = np.random.default_rng(0)
    cores = np.sort(rng.choice(args.small, size=max(2, args.small // 200), replace=False))
    budget = args.small // 20
    for dtype in ("float64", "float32"):
        t0 = time.perf_counter()
        a = bilaf.BiLAF(cores=cores, dtype=dtype, device="cpu").select(X, budget)
        t_cpu = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = bilaf.BiLAF(cores=cores, dtype=dtype, device=dev).select(torch.from_numpy(X).to(dev), budget)
        t_gpu = time.perf_counter() - t0
        emit(args.out, {"event": "equality", "dtype": dtype, "n": args.small, "budget": budget,
                        "identical_order": bool(np.array_equal(a.indices, b.indices)),
                        "same_set_share": len(np.intersect1d(a.indices, b.indices)) / budget,
                        "pseudo_label_mismatches": int((a.pseudo_labels != b.pseudo_labels).sum()),
                        "cpu_s": round(t_cpu, 2), "gpu_s": round(t_gpu, 2)})

    # 2. ImageNet size on the GPU
    t0 = time.perf_counter()
    Xb = torch.from_numpy(gaussian_mixture(args.big, 384, random_state=0)).to(dev)
    emit(args.out, {"event": "data", "n": args.big, "seconds": round(time.perf_counter() - t0, 1)})
    K = int(round(0.005 * args.big))
    bilaf.BiLAF(device=dev, random_state=0).select(torch.from_numpy(X).to(dev), 0.01)  # warm-up
    for method in args.methods:
        params = dict(device=dev, memory_budget="4GB", random_state=0)
        if method == "activeft":
            params.update(n_cores=K, core_selector="activeft")
        for frac in args.budgets:
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            sel = bilaf.BiLAF(**params)
            res = sel.select(Xb, frac)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            emit(args.out, {"event": "scale", "method": method, "device": name, "n": args.big,
                            "budget": len(res.indices), "n_cores": int(sel.n_cores_),
                            "core_selector": sel.core_selector_, "wall_s": round(wall, 1),
                            "stages_s": {k: round(v, 1) for k, v in res.timings.items()},
                            "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 2)
                            if dev.startswith("cuda") else None,
                            "distinct": int(len(np.unique(res.indices)))})

if __name__ == "__main__":
    main()
