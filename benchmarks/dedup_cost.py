"""Time the near-duplicate pass (bilaf.constraints.near_duplicates) on real features.

Usage: python benchmarks/dedup_cost.py FEATURES.npy N THRESHOLD MEMORY_BUDGET
Prints one JSON line: rows, threshold, dropped, wall and CPU seconds, peak resident memory. Uses the first N
rows of the feature file (memory-mapped); torch runs one thread. The committed lines
(benchmarks/results/dedup_cost.jsonl) say in their "note" the machine and load, e.g.

    python benchmarks/dedup_cost.py ../shared/data/cifar10/effnet-lite0/train_features.npy 20000 0.95 256MB
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

from bilaf.constraints import near_duplicates

path, n, t, mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
X = np.load(path, mmap_mode="r")[:n]
load0 = os.getloadavg()[0]
t0, c0 = time.perf_counter(), time.process_time()
dropped, dup_of = near_duplicates(X, t, memory_budget=mb)
print(json.dumps(dict(features=os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path),
                      rows=int(X.shape[0]), dim=int(X.shape[1]), threshold=t, memory_budget=mb,
                      dropped=int(len(dropped)), wall_s=round(time.perf_counter() - t0, 1),
                      cpu_s=round(time.process_time() - c0, 1),
                      peak_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      load_1min_at_start=round(load0, 1))), flush=True)
