"""Time and inertia of the k-means flavours of ``KMeansSelector`` on a large synthetic pool.

Usage: python benchmarks/kmeans_algorithms.py N K[,K...] ALGORITHM[,ALGORITHM...] [--out FILE]

The pool is the Gaussian mixture of benchmarks/_synthetic.py (d = 384, about 500 rows per class), L2-normalised
(the default BiLAF's spherical k-means). For each k and algorithm: the seconds to fit the centres (torch one
thread) and the inertia (mean squared distance from a row to its nearest centre). One JSON line each, appended
to FILE when given. The committed benchmarks/results/kmeans_algorithms.jsonl was made on the 2-core AMD EPYC
with OMP_NUM_THREADS=1 next to one other one-thread benchmark job:

    python benchmarks/kmeans_algorithms.py 200000 50,300,500,1000,2000 twolevel,minibatch,lloyd \\
        --out benchmarks/results/kmeans_algorithms.jsonl
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _synthetic import gaussian_mixture  # noqa: E402

from bilaf.algorithms.kmeans import kmeans_centers  # noqa: E402
from bilaf.kernels.distances import nearest_centers  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("n", type=int)
p.add_argument("ks")
p.add_argument("algorithms")
p.add_argument("--out")
a = p.parse_args()
torch.set_num_threads(1)
X = torch.nn.functional.normalize(torch.as_tensor(gaussian_mixture(a.n, 384, random_state=0)), dim=1)
code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                      cwd=os.path.dirname(__file__)).stdout.strip()


def inertia(C: np.ndarray) -> float:
    C = torch.as_tensor(C)
    lab = nearest_centers(X, C)[1][:, 0]
    return float(((X - C[lab]) ** 2).sum(dim=1).mean())


for k in (int(v) for v in a.ks.split(",")):
    for alg in a.algorithms.split(","):
        t = time.perf_counter()
        C = kmeans_centers(X, k, np.random.default_rng(0), algorithm=alg)
        row = dict(n=a.n, k=k, algorithm=alg, seconds=round(time.perf_counter() - t, 1), inertia=round(inertia(C), 5),
                   code=code)
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
