"""Regression tests for the defects a new user found (issue "never silently wrong"): one or more per defect."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from bilaf.cli import main
from bilaf.features import FeatureSet
from bilaf.features.classes import align_labels

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def run(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def ten_nine(tmp_path):
    """A pool of 10 well-separated classes and a test file of 9 (airplane missing), numbered as a folder
    embedding numbers them: the test file's ids 0..8 are automobile..truck."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16)) * 4
    y = np.repeat(np.arange(10), 30)
    X = (centres[y] + rng.normal(size=(300, 16))).astype(np.float32)
    FeatureSet(X, ids=[f"{NAMES[c]}/{i:04d}.jpg" for i, c in enumerate(y)], labels=y,
               classes=NAMES).save(tmp_path / "train.npz")
    yt = np.repeat(np.arange(1, 10), 10)
    T = (centres[yt] + rng.normal(size=(90, 16))).astype(np.float32)
    FeatureSet(T, ids=[f"{NAMES[c]}/{i:04d}.jpg" for i, c in enumerate(yt)], labels=yt - 1,
               classes=NAMES[1:]).save(tmp_path / "test9.npz")
    sel = np.concatenate([np.arange(c * 30, c * 30 + 4) for c in range(10)])  # 4 per class
    (tmp_path / "sel.json").write_text(json.dumps(sel.tolist()))
    return tmp_path


def _accuracies(out):
    return {ln.split()[0]: float(ln.split()[1].rstrip("%")) for ln in out.splitlines()[1:]}


# -- 1: labels are matched by class name ------------------------------------------------------------
def test_evaluate_maps_labels_by_class_name(ten_nine, capsys):
    d = ten_nine
    rc, out, err = run(["evaluate", d / "train.npz", d / "sel.json", "--test", d / "test9.npz", "-q"], capsys)
    assert rc == 0, err
    acc = _accuracies(out)
    assert acc["linear"] == 100.0 and acc["knn"] == 100.0  # well-separated classes: every test row right


def test_bench_maps_labels_by_class_name(ten_nine, capsys):
    d = ten_nine
    rc, out, err = run(["bench", d / "train.npz", "--test", d / "test9.npz", "--methods", "random",
                        "--budgets", "40", "--seeds", "1", "--protocols", "knn", "--no-plot", "-q",
                        "-o", d / "b"], capsys)
    assert rc == 0, err
    with open(d / "b" / "bench_runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    acc = [float(r["accuracy"]) for r in rows if r["protocol"] == "knn"]
    assert acc and min(acc) > 0.8  # by integers it scores about 0.1


def test_evaluate_refuses_class_names_that_match_nothing(ten_nine, capsys):
    d = ten_nine
    test = FeatureSet.load(d / "test9.npz")
    FeatureSet(np.asarray(test.features), ids=test.ids, labels=test.labels,
               classes=[f"other{i}" for i in range(9)]).save(d / "other.npz")
    rc, out, err = run(["evaluate", d / "train.npz", d / "sel.json", "--test", d / "other.npz"], capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "match none" in err


def test_align_labels_rules():
    y = np.array([0, 1, 2, -1])
    # test-only class: a new id past the pool's; pool-only class: fine
    al = align_labels(y, ["a", "b", "c"], np.array([0, 1, 1]), ["c", "z"])
    assert al.test_labels.tolist() == [2, 3, 3] and al.classes == ["a", "b", "c", "z"] and al.test_only == ["z"]
    assert al.train_labels.tolist() == [0, 1, 2, -1]
    # no names on one side: bare integers, unchanged
    al = align_labels(y, None, np.array([2, 0]), ["c", "z", "q"])
    assert al.test_labels.tolist() == [2, 0] and al.classes is None
    with pytest.raises(ValueError, match="only 2 class names"):
        align_labels(y, ["a", "b"], np.array([0]), ["a"])
    with pytest.raises(ValueError, match="listed twice"):
        align_labels(y, ["a", "b", "a"], np.array([0]), ["a"])


# -- 6: evaluate --labels takes class names ---------------------------------------------------------
def test_evaluate_labels_csv_with_class_names(ten_nine, capsys):
    d = ten_nine
    pool = FeatureSet.load(d / "train.npz")
    sel = json.loads((d / "sel.json").read_text())
    with open(d / "ann.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label"])
        for i in sel:
            w.writerow([pool.ids[i], NAMES[pool.labels[i]]])
    rc, out, err = run(["evaluate", d / "train.npz", d / "sel.json", "--labels", d / "ann.csv",
                        "--test", d / "test9.npz", "-q"], capsys)
    assert rc == 0, err
    assert _accuracies(out)["knn"] == 100.0


def test_evaluate_labels_txt_with_class_names_in_selection_order(ten_nine, capsys):
    d = ten_nine
    pool = FeatureSet.load(d / "train.npz")
    sel = json.loads((d / "sel.json").read_text())
    (d / "ann.txt").write_text("".join(NAMES[pool.labels[i]] + "\n" for i in sel))
    rc, out, err = run(["evaluate", d / "train.npz", d / "sel.json", "--labels", d / "ann.txt",
                        "--test", d / "test9.npz", "-q"], capsys)
    assert rc == 0, err
    assert _accuracies(out)["linear"] == 100.0


# -- 7: budgets: 1.0 and 1e2 are refused, 100% is the whole pool ------------------------------------
@pytest.mark.parametrize("text", ["1.0", "1e2", "2.0", "1E3", "100.0"])
def test_select_refuses_float_written_counts(text, tmp_path, capsys):
    from bilaf.cli.select import parse_budget

    with pytest.raises(ValueError, match="bad budget.*fraction"):
        parse_budget(text)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    rc, out, err = run(["select", tmp_path / "x.npy", "-b", text, "-m", "random", "-o", tmp_path / "s.json"],
                       capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "bad budget" in err
    assert not (tmp_path / "s.json").exists()


def test_budget_one_point_zero_consistent_in_api_cli_and_bench(tmp_path, capsys):
    import bilaf
    from bilaf.bench import parse_budgets

    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        bilaf.select(X, 1.0, method="random")
    for bad in ("1.0", "1e2", 1.0, 2.0):
        with pytest.raises(ValueError, match="bad budget"):
            parse_budgets([bad])
    np.save(tmp_path / "x.npy", X)
    rc, out, err = run(["select", tmp_path / "x.npy", "-b", "100%", "-m", "random", "-o", tmp_path / "all.json",
                        "-q"], capsys)
    assert rc == 0, err
    assert sorted(json.loads((tmp_path / "all.json").read_text())) == list(range(50))


# -- 8: k-centre's first centre comes from random_state ---------------------------------------------
def test_kcenter_first_centre_follows_the_seed():
    import bilaf

    X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    firsts = {int(bilaf.select(X, 10, method="kcenter", random_state=s).indices[0]) for s in range(8)}
    assert len(firsts) > 1  # the start is drawn, not fixed
    a = bilaf.select(X, 10, method="kcenter", random_state=3).indices
    assert np.array_equal(a, bilaf.select(X, 10, method="kcenter", random_state=3).indices)


def test_kcenter_given_start_is_exact_greedy():
    import bilaf

    X = np.random.default_rng(1).normal(size=(120, 3))
    for start in (0, 57):
        got = bilaf.select(X, 12, method="kcenter", start=start, random_state=9, dtype="float64").indices
        want = [start]  # brute-force farthest-first traversal from `start`
        d = np.linalg.norm(X - X[start], axis=1)
        for _ in range(11):
            d[want] = -1
            want.append(int(np.argmax(d)))
            d = np.minimum(d, np.linalg.norm(X - X[want[-1]], axis=1))
        assert got.tolist() == want
    mean_first = bilaf.select(X, 5, method="kcenter", start="mean", random_state=4).indices[0]
    assert mean_first == int(np.argmin(np.linalg.norm(X - X.mean(0), axis=1)))
    with pytest.raises(ValueError, match="not a row"):
        bilaf.select(X, 5, method="kcenter", start=500)


def test_kcenter_start_with_warm_start_is_a_pool_row():
    import bilaf

    X = np.random.default_rng(2).normal(size=(60, 3))
    res = bilaf.select(X, 8, method="kcenter", start=40, labeled=[1, 2, 3])
    assert res.indices[:4].tolist() == [1, 2, 3, 40]
    with pytest.raises(ValueError, match="already-labeled"):
        bilaf.select(X, 8, method="kcenter", start=2, labeled=[1, 2, 3])


# -- 2: outputs with the same stem never share a manifest -------------------------------------------
@pytest.fixture
def blob_pool(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 5
    y = np.arange(200) % 4
    X = (centres[y] + rng.normal(size=(200, 6))).astype(np.float32)
    np.save(tmp_path / "good.npy", X)
    return tmp_path / "good.npy"


def test_same_stem_outputs_keep_their_own_manifests(blob_pool, tmp_path, capsys):
    from bilaf.manifest import find_manifest, read_manifest
    from bilaf.writers import read_selection

    d = tmp_path
    assert run(["select", blob_pool, "-b", "20", "--n-cores", "5", "--core-param", "n_iter=20", "-o", d / "r.csv",
                "-q"], capsys)[0] == 0
    assert run(["select", blob_pool, "-b", "20", "-m", "random", "-o", d / "r.json", "-q"], capsys)[0] == 0
    m_csv, m_json = find_manifest(d / "r.csv"), find_manifest(d / "r.json")
    assert m_csv != m_json
    assert read_manifest(m_csv)["method"] == "bilaf" and read_manifest(m_json)["method"] == "random"
    # --manifest reproduces the run that wrote r.csv
    rc, _, err = run(["select", "--manifest", m_csv], capsys)
    assert rc == 0 and "identical" in err
    picks = read_selection(d / "r.csv")["indices"]
    assert read_manifest(m_csv)["result"]["n_cores"] == 5 and len(picks) == 20


def test_plot_refuses_or_ignores_another_runs_manifest(blob_pool, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    d = tmp_path
    assert run(["select", blob_pool, "-b", "20", "-m", "random", "--seed", "1", "-o", d / "a.json", "-q"],
               capsys)[0] == 0
    assert run(["select", blob_pool, "-b", "20", "-m", "random", "--seed", "2", "-o", d / "b.json", "-q"],
               capsys)[0] == 0
    rc, _, err = run(["plot", blob_pool, d / "a.json", "--manifest", d / "b.json.manifest.json", "-o", d / "m.png"],
                     capsys)
    assert rc == 2 and "other picks" in err and not (d / "m.png").exists()
    # an old-style <stem>.manifest.json of another run beside the selection: ignored, with a warning
    (d / "a.manifest.json").write_text((d / "b.json.manifest.json").read_text())
    (d / "a.json.manifest.json").unlink()
    rc, _, err = run(["plot", blob_pool, d / "a.json", "-o", d / "m.png"], capsys)
    assert rc == 0 and "ignoring a.manifest.json" in err


# -- 3: SIGTERM cleans up like SIGINT; a killed run's temporaries are removed by the next run -------------
_WRITER = """
import sys, time
from pathlib import Path
import bilaf.cli.select as verb
from bilaf.cli import main
from bilaf.result import atomic_write

def slow_write(args):
    with atomic_write(Path(args.out[0])) as fh:
        fh.write("partial")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
    return 0

verb.run = slow_write
sys.exit(main(["select", sys.argv[1], "-b", "5", "-o", sys.argv[2]]))
"""


def _start_writer(tmp_path, out):
    import os
    import subprocess
    import sys

    np.save(tmp_path / "x.npy", np.zeros((10, 2), np.float32))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "x.npy"), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _hidden(d):
    return sorted(p.name for p in Path(d).iterdir() if p.name.startswith("."))


def test_sigterm_during_write_leaves_nothing(tmp_path):
    import signal

    out = tmp_path / "all.csv"
    proc = _start_writer(tmp_path, out)
    assert len(_hidden(tmp_path)) == 1  # the temporary being written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated" in err
    assert _hidden(tmp_path) == [] and not out.exists()


def test_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path, capsys):
    import signal

    out = tmp_path / "all.csv"
    proc = _start_writer(tmp_path, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert len(_hidden(tmp_path)) == 1  # SIGKILL: no clean-up could run
    # a live writer's temporary is kept
    live = _start_writer(tmp_path, out)
    try:
        X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
        np.save(tmp_path / "pool.npy", X)
        rc, _, err = run(["select", tmp_path / "pool.npy", "-b", "5", "-m", "random", "-o", out, "-q"], capsys)
        assert rc == 0, err
        left = _hidden(tmp_path)
        assert len(left) == 1 and f".{live.pid}@" in left[0]
    finally:
        live.kill()
        live.communicate(timeout=60)
    assert out.exists()


# -- 4: embed resume notices replaced images, restarts a mismatched folder, and says what it did -----------
@pytest.fixture
def image_folder(tmp_path):
    import warnings

    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(root / c / f"{i:04d}.png")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(tmp_path / "tiny.pt"))
    return root, f"torchscript:{tmp_path / 'tiny.pt'}?size=16"


def _interrupt_after(monkeypatch, n_calls):
    from bilaf.features.backbones import TorchImageBackbone

    real = TorchImageBackbone.embed
    calls = {"n": 0}

    def embed(self, batch):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(TorchImageBackbone, "embed", embed)
    return calls


def test_embed_resume_redoes_a_shard_whose_image_was_replaced(image_folder, tmp_path, monkeypatch):
    from PIL import Image

    from bilaf.features import embed_images

    root, spec = image_folder
    work = tmp_path / "work"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            embed_images(root, backbone=spec, batch_size=4, shard_size=4, resume_dir=work, device="cpu",
                         verbose=False)
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(root / "cat" / "0000.png")  # same name, new image
    fresh = embed_images(root, backbone=spec, batch_size=4, shard_size=4, device="cpu", verbose=False)
    resumed = embed_images(root, backbone=spec, batch_size=4, shard_size=4, resume_dir=work, device="cpu",
                           verbose=False)
    assert resumed.ids[0] == "cat/0000.png"
    np.testing.assert_allclose(resumed.features, fresh.features, rtol=1e-5, atol=1e-6)
    assert resumed.meta["resume"]["redone"] == 1 and resumed.meta["resume"]["loaded"] == 1


def test_embed_array_resume_notices_changed_pixels(tmp_path):
    from bilaf.features import embed_images
    from bilaf.features.backbones import ImagePreprocess, TorchImageBackbone
    import torch

    torch.manual_seed(0)
    bb = TorchImageBackbone(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), ImagePreprocess(size=8),
                            name="t", device="cpu")
    imgs = np.random.default_rng(0).integers(0, 256, size=(200, 8, 8, 3), dtype=np.uint8)
    embed_images(imgs, backbone=bb, shard_size=50, resume_dir=tmp_path / "w", verbose=False)
    imgs[4] = 255 - imgs[4]  # a row the sampled fingerprint (every third row) does not read
    again = embed_images(imgs, backbone=bb, shard_size=50, resume_dir=tmp_path / "w", verbose=False)
    assert again.meta["resume"]["redone"] == 1 and again.meta["resume"]["loaded"] == 3
    fresh = embed_images(imgs, backbone=bb, shard_size=50, verbose=False)
    np.testing.assert_allclose(again.features, fresh.features, rtol=1e-5, atol=1e-6)


def test_cli_embed_says_resumable_resumes_and_restarts(image_folder, tmp_path, monkeypatch, capsys):
    root, spec = image_folder
    out = tmp_path / "f.npz"
    base = ["embed", root, "--backbone", spec, "--device", "cpu", "--batch-size", "4", "--out", out]
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        rc, _, err = run(base + ["--shard-size", "4"], capsys)
    assert rc == 130 and "2 finished shard(s) kept" in err and "can be resumed" in err
    rc, _, err = run(base + ["--shard-size", "4"], capsys)
    assert rc == 0, err
    assert "resumed 2 of 3 shards" in err and not (tmp_path / "f.npz.partial").exists()
    # another --shard-size over a partial folder: starts over with a message, no manual clean-up
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        assert run(base + ["--shard-size", "4"], capsys)[0] == 130
    rc, _, err = run(base + ["--shard-size", "6"], capsys)
    assert rc == 0, err
    assert "started over" in err and "shard_size" in err


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "folder"])
def test_source_stamps_change_when_an_image_is_replaced(tmp_path, kind):
    import io
    import os
    import tarfile
    import zipfile

    from PIL import Image

    from bilaf.features.inputs import open_image_source

    def png(v):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    def build(first):
        files = {"a/0.png": first, "a/1.png": png(7), "b/0.png": png(9)}
        if kind == "folder":
            for name, data in files.items():
                (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
                if name == "a/0.png" or not (tmp_path / "d" / name).exists():
                    (tmp_path / "d" / name).write_bytes(data)
            os.utime(tmp_path / "d" / "a/0.png", ns=(10**18 + len(first), 10**18 + len(first)))
            return tmp_path / "d"
        path = tmp_path / f"x.{kind}"
        if kind == "zip":
            with zipfile.ZipFile(path, "w") as z:
                for name, data in files.items():
                    z.writestr(name, data)
        else:
            with tarfile.open(path, "w:gz") as t:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), 1000 + len(data)
                    t.addfile(info, io.BytesIO(data))
        return path

    def stamps(src_path):
        src = open_image_source(src_path)
        try:
            return src.stamp(0, 1), src.stamp(1, 3)
        finally:
            src.close()

    before = stamps(build(png(1)))
    after = stamps(build(png(1) + b"\0" * 5))  # replaced under the same name (another size)
    assert before[0] != after[0] and before[1] == after[1]


# -- 5: --labeled reads bilaf's own .txt written with --path-prefix ------------------------------------
@pytest.mark.parametrize("prefix", ["/data/imgs/", "s3://bucket/images", "https://host/x?f="])
def test_labeled_reads_own_txt_with_path_prefix(tmp_path, capsys, prefix):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    ids = [f"{'deer' if i % 2 else 'cat'}/{i:04d}.jpg" for i in range(60)]
    FeatureSet(X, ids=ids).save(tmp_path / "p.npz")
    rc, _, err = run(["select", tmp_path / "p.npz", "-b", "6", "-m", "random", "--path-prefix", prefix,
                      "-o", tmp_path / "r1.txt", "-o", tmp_path / "r1.json", "-q"], capsys)
    assert rc == 0, err
    first = (tmp_path / "r1.txt").read_text().splitlines()
    assert first[0].startswith(prefix)
    rc, _, err = run(["select", tmp_path / "p.npz", "-b", "10", "-m", "random", "--labeled", tmp_path / "r1.txt",
                      "-o", tmp_path / "r2.json", "-q"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "r2.json").read_text())[:6] == json.loads((tmp_path / "r1.json").read_text())
    (tmp_path / "bad.txt").write_text(first[0] + "\n" + "/elsewhere/cat/0000.jpg\n")
    rc, _, err = run(["select", tmp_path / "p.npz", "-b", "10", "-m", "random", "--labeled", tmp_path / "bad.txt",
                      "-o", tmp_path / "r3.json"], capsys)
    assert rc == 2 and "/elsewhere/cat/0000.jpg" in err


# -- 10: a single-budget bench plot: points inside the frame, clear of the legend; a title ----------------
def test_single_budget_bench_figure_is_readable():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from bilaf.bench import run_bench

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 4
    y = np.arange(240) % 4
    X = (centres[y] + rng.normal(size=(240, 6))).astype(np.float32)
    res = run_bench(X[:200], y[:200], X[200:], y[200:], "random,kcenter", "10%", 2, protocols=("knn",),
                    verbose=False)
    fig = res.figure()
    try:
        fig.canvas.draw()
        assert fig._suptitle is not None and "budget of 20" in fig._suptitle.get_text()
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        legend = ax.get_legend().get_window_extent()
        for line in ax.get_lines():
            for x, yv in line.get_xydata():
                assert lo + 0.25 * (hi - lo) < x < hi - 0.25 * (hi - lo)  # not at the edges
                px, py = ax.transData.transform((x, yv))
                assert not legend.contains(px, py)  # not under the legend
    finally:
        plt.close(fig)
