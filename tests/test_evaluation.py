"""Evaluation protocols: linear probe, kNN, finetuning, and ``bilaf evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bilaf.cli import main
from bilaf.evaluation import evaluate_features, finetune, knn, linear_probe, random_resized_crop_flip
from bilaf.features import FeatureSet

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR = SHARED / "data" / "cifar10" / "effnet-lite0"


def blobs(n=300, d=8, k=3, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def cifar_slice():
    if not CIFAR.exists():
        pytest.skip("../shared CIFAR-10 features not available")
    X = np.load(CIFAR / "train_features.npy", mmap_mode="r")
    y = np.load(CIFAR / "train_labels.npy")
    T = np.load(CIFAR / "test_features.npy", mmap_mode="r")
    ty = np.load(CIFAR / "test_labels.npy")
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(y), 500, replace=False))
    te = np.sort(rng.choice(len(ty), 1000, replace=False))
    return np.asarray(X[tr], np.float32), y[tr], np.asarray(T[te], np.float32), ty[te]


# -- linear probe -------------------------------------------------------------------------------
def test_linear_probe_separable():
    X, y = blobs()
    assert linear_probe(X[:100], y[:100], X[100:], y[100:]) == 1.0


@pytest.mark.parametrize("normalize", ["l2", "standard", None])
def test_linear_probe_solvers_agree(normalize):
    X, y = blobs(n=400, d=16, k=4, spread=2.0, seed=3)
    a, pa = linear_probe(X[:150], y[:150], X[150:], y[150:], solver="sklearn", normalize=normalize,
                         return_predictions=True)
    b, pb = linear_probe(X[:150], y[:150], X[150:], y[150:], solver="torch", normalize=normalize,
                         return_predictions=True)
    assert (pa == pb).mean() >= 0.98
    assert abs(a - b) <= 0.02


def test_linear_probe_real_features(cifar_slice):
    X, y, T, ty = cifar_slice
    acc = linear_probe(X, y, T, ty)
    assert 0.5 < acc < 0.9  # 10 classes; 500 labels reach about 70% with these features


def test_linear_probe_single_class_predicts_it():
    X, y = blobs()
    y1 = np.zeros(50, dtype=int)
    assert linear_probe(X[:50], y1, X[50:60], np.zeros(10, int)) == 1.0


def test_linear_probe_bad_input():
    X, y = blobs()
    with pytest.raises(ValueError, match="train_y are missing"):
        linear_probe(X[:50], None, X[50:], y[50:])
    with pytest.raises(ValueError, match="49 train_y for 50 train_X rows"):
        linear_probe(X[:50], y[:49], X[50:], y[50:])
    bad = y[:50].copy()
    bad[3] = -1
    with pytest.raises(ValueError, match="1 of 50 samples have no label"):
        linear_probe(X[:50], bad, X[50:], y[50:])
    with pytest.raises(ValueError, match="columns"):
        linear_probe(X[:50], y[:50], X[50:, :4], y[50:])
    with pytest.raises(ValueError, match="C must be"):
        linear_probe(X[:50], y[:50], X[50:], y[50:], C=0)
    with pytest.raises(ValueError, match="normalize"):
        linear_probe(X[:50], y[:50], X[50:], y[50:], normalize="zca")


# -- kNN ------------------------------------------------------------------------------------------
def knn_reference(A, ya, B, k, T):
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    S = B @ A.T
    pred = []
    for row in S:
        top = np.argsort(-row, kind="stable")[:k]
        votes = np.zeros(ya.max() + 1)
        for j in top:
            votes[ya[j]] += np.exp(row[j] / T)
        pred.append(int(np.argmax(votes)))
    return np.asarray(pred)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_matches_reference(k):
    X, y = blobs(n=200, d=6, k=4, spread=3.0, seed=1)
    acc, pred = knn(X[:120], y[:120], X[120:], y[120:], k=k, return_predictions=True, memory_budget="1MB")
    ref = knn_reference(X[:120].astype(np.float64), y[:120], X[120:].astype(np.float64), k, 0.07)
    assert (pred == ref).mean() >= 0.98  # float32 vs float64 near-ties only
    assert acc == pytest.approx((pred == y[120:]).mean())


def test_knn_weighting_beats_majority():
    # one very close neighbour of class 1 outvotes two far ones of class 0 at a low temperature
    A = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]], dtype=np.float32)
    ya = np.array([1, 0, 0])
    B = np.array([[1.0, 0.05]], dtype=np.float32)
    assert knn(A, ya, B, np.array([1]), k=3, temperature=0.07) == 1.0
    assert knn(A, ya, B, np.array([0]), k=3, temperature=100.0) == 1.0  # near-uniform weights: majority


def test_knn_k_larger_than_train():
    X, y = blobs()
    assert knn(X[:5], y[:5], X[5:], y[5:], k=20) > 0.3


def test_knn_bad_input():
    X, y = blobs()
    with pytest.raises(ValueError, match="k must be"):
        knn(X[:50], y[:50], X[50:], y[50:], k=0)
    with pytest.raises(ValueError, match="49 test_y for 50 test_X rows"):
        knn(X[:50], y[:50], X[50:100], y[50:99])
    with pytest.raises(ValueError, match="temperature"):
        knn(X[:50], y[:50], X[50:], y[50:], temperature=0)


# -- evaluate_features ------------------------------------------------------------------------------
def test_evaluate_features_reads_selected_rows_in_any_order(tmp_path):
    X, y = blobs(n=400)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    idx = np.random.default_rng(0).permutation(300)[:40]
    a = evaluate_features("linear", mm, y, idx, X[300:], y[300:])
    b = linear_probe(X[np.sort(idx)], y[np.sort(idx)], X[300:], y[300:])
    assert a == b
    y_missing = y.copy()
    y_missing[~np.isin(np.arange(400), idx)] = -1  # unknown outside the selection is fine
    assert evaluate_features("knn", X, y_missing, idx, X[300:], y[300:]) == knn(X[idx], y[idx], X[300:], y[300:])
    y_missing[idx[0]] = -1
    with pytest.raises(ValueError, match="1 of the 40 selected samples have no label"):
        evaluate_features("knn", X, y_missing, idx, X[300:], y[300:])
    with pytest.raises(ValueError, match="repeats"):
        evaluate_features("knn", X, y, [1, 1], X[300:], y[300:])
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_features("svm", X, y, idx, X[300:], y[300:])


# -- finetuning ------------------------------------------------------------------------------------------
class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8) real 8x8 digits
    return imgs, d.target


def test_finetune_learns_digits_and_leaves_backbone_alone(digits):
    imgs, y = digits
    torch.manual_seed(0)
    bb = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU())  # a tiny "backbone"
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    acc = finetune(bb, imgs[:300], y[:300], imgs[1000:1300], y[1000:1300], steps=80, batch_size=32, lr=0.1,
                   augment=False, random_state=0)
    assert acc > 0.6  # chance is 0.1
    after = bb.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_finetune_is_seeded(digits):
    imgs, y = digits
    torch.manual_seed(1)
    bb = TinyCNN()
    kw = dict(steps=4, batch_size=16, lr=0.05)
    a = finetune(bb, imgs[:100], y[:100], imgs[500:600], y[500:600], random_state=3, **kw)
    b = finetune(bb, imgs[:100], y[:100], imgs[500:600], y[500:600], random_state=3, **kw)
    assert a == b


def test_finetune_bad_input(digits):
    imgs, y = digits
    bb = TinyCNN()
    with pytest.raises(ValueError, match="99 train_y for 100 train images"):
        finetune(bb, imgs[:100], y[:99], imgs[200:220], y[200:220], steps=1)
    with pytest.raises(ValueError, match="train_y are missing"):
        finetune(bb, imgs[:100], None, imgs[200:220], y[200:220], steps=1)
    with pytest.raises(ValueError, match="train images are"):
        finetune(bb, imgs[:100], y[:100], np.zeros((5, 4, 4), np.uint8), y[:5], steps=1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        finetune(lambda x: x, imgs[:10], y[:10], imgs[:10], y[:10], steps=1)
    with pytest.raises(ValueError, match="n_classes=3"):
        finetune(bb, imgs[:100], y[:100], imgs[200:220], y[200:220], steps=1, n_classes=3)


def test_crop_flip_identity_and_flip():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    same = random_resized_crop_flip(x, g, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(same, x, atol=1e-4)
    out = random_resized_crop_flip(x, g, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    for i in range(2):
        assert torch.allclose(out[i], x[i], atol=1e-4) or torch.allclose(out[i], x[i].flip(-1), atol=1e-4)


# -- the CLI ------------------------------------------------------------------------------------------------
@pytest.fixture()
def files(tmp_path):
    X, y = blobs(n=400, d=8, k=3)
    FeatureSet(X[:300], labels=y[:300]).save(tmp_path / "pool.npz")
    FeatureSet(X[:300]).save(tmp_path / "pool_nolabels.npz")
    FeatureSet(X[300:], labels=y[300:]).save(tmp_path / "test.npz")
    sel = list(range(0, 300, 10))
    (tmp_path / "sel.json").write_text(json.dumps(sel))
    return tmp_path, y, sel


def test_cli_evaluate_writes_json(files, capsys):
    d, y, sel = files
    assert main(["evaluate", str(d / "pool.npz"), str(d / "sel.json"), "--test", str(d / "test.npz"),
                 "--out", str(d / "acc.json"), "-q"]) == 0
    doc = json.loads((d / "acc.json").read_text())
    assert set(doc["accuracy"]) == {"linear", "knn"}
    assert doc["accuracy"]["linear"] == 1.0
    assert "linear" in capsys.readouterr().out


def test_cli_evaluate_labels_csv(files):
    d, y, sel = files
    rows = ["index,label"] + [f"{i},{y[i]}" for i in sel]
    (d / "ann.csv").write_text("\n".join(rows) + "\n")
    assert main(["evaluate", str(d / "pool_nolabels.npz"), str(d / "sel.json"), "--test", str(d / "test.npz"),
                 "--labels", str(d / "ann.csv"), "--protocol", "knn", "-q", "--out", str(d / "a.json")]) == 0
    assert json.loads((d / "a.json").read_text())["accuracy"]["knn"] == 1.0


@pytest.mark.parametrize("case, message", [
    ("nolabels", "labels missing: "),
    ("short_labels", "holds 7 labels; expected 300"),
    ("partial_csv", "labels missing for 29 of the 30 selected samples"),
    ("protocol", "unknown protocol 'svm'"),
    ("finetune_no_images", "needs the images"),
])
def test_cli_evaluate_bad_input_one_line_no_file(files, capsys, case, message):
    d, y, sel = files
    np.save(d / "short.npy", np.arange(7))
    (d / "part.csv").write_text(f"index,label\n{sel[0]},{y[sel[0]]}\n")
    base = [str(d / "pool_nolabels.npz"), str(d / "sel.json"), "--test", str(d / "test.npz"),
            "--out", str(d / "out.json"), "-q"]
    extra = {"nolabels": [], "short_labels": ["--labels", str(d / "short.npy")],
             "partial_csv": ["--labels", str(d / "part.csv")], "protocol": ["--protocol", "svm"],
             "finetune_no_images": ["--protocol", "finetune", "--labels", str(d / "part.csv")]}[case]
    assert main(["evaluate", *base, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (d / "out.json").exists()
    assert not list(d.glob(".out.json*"))


def test_cli_evaluate_finetune_torchscript_backbone(tmp_path, digits):
    from PIL import Image

    imgs, y = digits
    root = tmp_path / "imgs"
    for split, rng_ in (("train", range(0, 60)), ("test", range(1000, 1040))):
        for i in rng_:
            folder = root / split / str(y[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.repeat(imgs[i][:, :, None], 3, axis=2)).save(folder / f"{i:04d}.png")

    class RGBTiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x)).mean(dim=(2, 3))

    torch.manual_seed(0)
    torch.jit.script(RGBTiny()).save(str(tmp_path / "tiny.pt"))
    from bilaf.features.inputs import open_image_source

    tr_ids = open_image_source(root, split="train").ids
    te_ids = open_image_source(root, split="test").ids
    lab = lambda ids: np.asarray([int(Path(s).parent.name) for s in ids])  # noqa: E731
    FeatureSet(np.zeros((len(tr_ids), 4), np.float32), ids=tr_ids, labels=lab(tr_ids)).save(tmp_path / "tr.npz")
    FeatureSet(np.zeros((len(te_ids), 4), np.float32), ids=te_ids, labels=lab(te_ids)).save(tmp_path / "te.npz")
    (tmp_path / "sel.json").write_text(json.dumps(list(range(0, 60, 2))))
    rc = main(["evaluate", str(tmp_path / "tr.npz"), str(tmp_path / "sel.json"), "--test", str(tmp_path / "te.npz"),
               "--protocol", "finetune", "--images", str(root), "--images-split", "train",
               "--test-images", str(root), "--test-images-split", "test",
               "--backbone", f"torchscript:{tmp_path / 'tiny.pt'}?size=8&mean=0.5&std=0.5",
               "--steps", "3", "--batch-size", "8", "-q", "--out", str(tmp_path / "ft.json")])
    assert rc == 0
    acc = json.loads((tmp_path / "ft.json").read_text())["accuracy"]["finetune"]
    assert 0.0 <= acc <= 1.0


def test_linear_probe_fits_small_problems_on_one_blas_thread(monkeypatch):
    """Regression: scikit-learn's L-BFGS on 5,000 x 384 x 10 took 3.6x longer on two BLAS threads than on
    one on an idle 2-core machine (benchmarks/results/threads_evaluate.md)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    fit = LogisticRegression.fit

    def spy(self, *a, **k):
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return fit(self, *a, **k)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 8)), np.arange(60) % 3
    with threadpool_limits(limits=2, user_api="blas"):
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        linear_probe(X, y, X, y, solver="sklearn")
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert seen and all(n == 1 for n in seen[0])
    assert after == before
