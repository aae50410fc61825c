"""The matrix-product floor of ActiveFT cores at ImageNet size: a measured float32 GEMM rate times the FLOPs.

ActiveFT's mini-batch mode (N > 200,000) takes ``n_iter`` = 100 Adam steps on random batches of 100,000 rows;
each step needs the batch's similarities to all K centroids (a 100,000 x d x K product), the centroids' own
K x K similarities, and finally every pool row is compared once with every centroid (N x d x K) to map the
centroids to samples. This script times ``torch.mm`` of a (rows x d) block by a (d x K) matrix at the
thread count given and prints one JSON line: the rate, the FLOPs of those products, and the seconds they
take at that rate (a floor: the rest of the step only adds to it).

    python benchmarks/gemm_floor.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_281_167)
    p.add_argument("--d", type=int, default=384)
    p.add_argument("--budget", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--block", type=int, default=8192, help="rows per timed product")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    K = int(round(a.budget * a.n))
    g = torch.Generator().manual_seed(0)
    A = torch.randn(a.block, a.d, generator=g)
    B = torch.randn(a.d, K, generator=g)
    out = torch.empty(a.block, K)
    torch.mm(A, B, out=out)  # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        torch.mm(A, B, out=out)
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    rate = 2.0 * a.block * a.d * K / t
    flops = 2.0 * a.d * K * (a.steps * (a.batch + K) + a.n)
    print(json.dumps(dict(threads=a.threads, K=K, block=a.block, gflops_per_s=round(rate / 1e9, 1),
                          activeft_product_tflop=round(flops / 1e12, 1), floor_s=round(flops / rate, 1),
                          load=round(os.getloadavg()[0], 1))), flush=True)


if __name__ == "__main__":
    main()
