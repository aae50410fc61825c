"""Time one BiLAF selection with the automatic K: default cores (spherical k-means) or the earlier default (ActiveFT).

Usage: python benchmarks/default_cost.py N FRACTION CORE_SELECTOR [JSON of extra BiLAF arguments] [--threads T]
Prints one JSON line (wall and CPU seconds, peak resident memory, seconds per stage). The pool is the synthetic
mixture of benchmarks/_synthetic.py in d = 384; torch and BLAS run T threads (default 1; 0 leaves the count to
bilaf's thread policy, i.e. the free cores). The first two committed lines
(benchmarks/results/default_cost.jsonl) were made with OMP_NUM_THREADS=1 under `nice -n 5` on the 2-core machine
while two one-thread benchmark jobs ran (load about 3), when the default's k-means above 100,000 rows was
scikit-learn's MiniBatchKMeans; the later lines say in their "note" how and at which commit:

    python benchmarks/default_cost.py 200000 0.01 auto; python benchmarks/default_cost.py 200000 0.01 activeft
    python benchmarks/default_cost.py 1281167 0.01 auto
"""
import sys, time, json, resource
sys.path.insert(0, __import__("os").path.dirname(__file__))
import torch
from _synthetic import gaussian_mixture
from bilaf import BiLAF
from bilaf import threads as _threads
argv = sys.argv[1:]
n_threads = 1
if "--threads" in argv:
    i = argv.index("--threads"); n_threads = int(argv[i + 1]); del argv[i:i + 2]
n = int(argv[0]); frac = float(argv[1]); which = argv[2]
extra = json.loads(argv[3]) if len(argv) > 3 else {}
if n_threads:
    _threads.set_thread_policy(n_threads)
X = gaussian_mixture(n, 384, random_state=0)
b = int(round(frac * n))
sel = BiLAF(random_state=0, core_selector=which, **extra)
t0 = time.perf_counter(); c0 = time.process_time()
res = sel.select(X, b)
print(json.dumps(dict(n=n, budget=b, core_selector=sel.core_selector_, extra=extra, n_cores=sel.n_cores_,
                      wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(time.process_time() - c0, 1),
                      peak_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      structured=sel.auto_cores_.structured,
                      threads=n_threads or "auto", load=round(__import__('os').getloadavg()[0], 1),
                      stages={k: round(v, 1) for k, v in res.timings.items()})), flush=True)
