import sys, numpy as np, warnings, time, json
sys.path.insert(0, 'benchmarks')
warnings.simplefilter('ignore')
from _synthetic import gaussian_mixture
import bilaf
from bilaf.evaluation import evaluate_features
which = sys.argv[1]
if which == 'synth':
    X, y = gaussian_mixture(24000, 128, n_classes=300, random_state=3, return_labels=True)
    Xp, yp, Xt, yt = X[:20000], y[:20000], X[20000:], y[20000:]
    budgets = [200, 400, 1000]
else:
    d='/work/shared/data/cifar10/effnet-lite0/'
    Xp=np.load(d+'train_features.npy').astype(np.float32); yp=np.load(d+'train_labels.npy')
    Xt=np.load(d+'test_features.npy').astype(np.float32); yt=np.load(d+'test_labels.npy')
    budgets = [250, 500, 1000]
N=len(Xp)
out=open(f'/tmp/lead/ksweep_{which}.jsonl','a')
for B in budgets:
    configs = [('kmeans', dict(method='kmeans'))]
    for r in [0.1, 0.2, 0.5]:
        configs.append((f'bilaf K=B*{r}', dict(method='bilaf', core_selector='kmeans', n_cores=max(1,int(r*B)))))
    configs.append(('bilaf K=0.1%N', dict(method='bilaf', core_selector='kmeans', n_cores=max(1,N//1000))))
    configs.append(('bilaf K=0.5%N', dict(method='bilaf', core_selector='kmeans', n_cores=max(1,N//200))))
    for name, kw in configs:
        for seed in (0, 1):
            t=time.time(); res = bilaf.select(Xp, B, random_state=seed, **kw); ts=time.time()-t
            acc = {p: evaluate_features(p, Xp, yp, res.indices, Xt, yt, random_state=seed) for p in ('knn','linear')}
            rec=dict(data=which, B=B, name=name, seed=seed, sel_s=round(ts,1), **{p: float(getattr(a,'accuracy',a)) for p,a in acc.items()})
            print(json.dumps(rec), flush=True); out.write(json.dumps(rec)+'\n'); out.flush()
