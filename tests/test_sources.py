"""Image inputs: lists of PIL images / arrays of varying sizes, files listing image paths, datasets, fsspec URLs."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest

from bilaf.cli import main as cli_main
from bilaf.features import (
    ImagePreprocess,
    SkippedInputWarning,
    TextBackbone,
    TorchImageBackbone,
    embed_images,
    embed_texts,
    load_features,
    register_backbone,
)
from bilaf.features.inputs import open_image_source
from bilaf.features.readers import as_uint8_images
from bilaf.features.hf_datasets import DatasetSource, texts_from_dataset
from bilaf.features.sources import ImageListSource, PathListSource

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

SIZES = [(30, 20), (17, 41), (64, 64), (25, 26), (90, 12)]


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten())


def _backbone(device="cpu", engine="auto", **options):
    return TorchImageBackbone(_net(), ImagePreprocess(size=16), name="tiny-sources", device=device)


register_backbone("tiny-sources", _backbone, overwrite=True)


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


def _reference(images):
    """Each image preprocessed alone, then one batch through the same network."""
    pre = ImagePreprocess(size=16)
    x = torch.from_numpy(np.stack([pre(im) for im in images]))
    with torch.no_grad():
        return _net()(x).numpy()


# --------------------------------------------------------------------------- lists in memory


def test_list_of_pil_images_of_varying_sizes():
    """Used to fail inside numpy: 'inhomogeneous shape after 1 dimensions'."""
    images = _images()
    fs = embed_images(images, backbone="tiny-sources", device="cpu", verbose=False, labels=[0, 1, 0, 1, 1])
    np.testing.assert_allclose(fs.features, _reference(images), atol=1e-5)
    assert fs.ids == ["0", "1", "2", "3", "4"] and fs.labels.tolist() == [0, 1, 0, 1, 1]


def test_list_of_arrays_of_varying_sizes_and_of_encoded_files(tmp_path):
    images = _images()
    arrays = [np.asarray(im) for im in images]
    a = embed_images(arrays, backbone="tiny-sources", device="cpu", verbose=False)
    encoded = []
    for im in images:
        im.save(tmp_path / "x.png")
        encoded.append((tmp_path / "x.png").read_bytes())
    b = embed_images(encoded, backbone="tiny-sources", device="cpu", verbose=False, batch_size=2)
    np.testing.assert_allclose(a.features, _reference(images), atol=1e-5)
    np.testing.assert_allclose(b.features, a.features, atol=1e-6)
    assert isinstance(open_image_source(arrays), ImageListSource)
    assert not isinstance(open_image_source([arrays[2], arrays[2]]), ImageListSource)  # equal shapes stack


def test_varying_sizes_never_reach_numpy_raw_error():
    arrays = [np.zeros((4, 5, 3), np.uint8), np.zeros((6, 5, 3), np.uint8)]
    with pytest.raises(ValueError, match="different sizes.*pass them as a list"):
        as_uint8_images(arrays)


# --------------------------------------------------------------------------- list files


@pytest.fixture
def image_tree(tmp_path):
    """imgs/<class>/<i>.png with varying sizes; returns (root, relative paths, class names)."""
    root = tmp_path / "data"
    rel, cls = [], []
    for k, im in enumerate(_images()):
        c = "cat" if k % 2 == 0 else "dog"
        (root / "imgs" / c).mkdir(parents=True, exist_ok=True)
        im.save(root / "imgs" / c / f"{k}.png")
        rel.append(f"imgs/{c}/{k}.png")
        cls.append(c)
    return root, rel, cls


def test_path_list_txt_relative_to_the_list_with_tab_labels(image_tree, tmp_path):
    root, rel, cls = image_tree
    lst = root / "paths.txt"
    lst.write_text("# my pool\n" + "".join(f"{p}\t{c}\n" for p, c in zip(rel, cls)) + "\n")
    fs = embed_images(lst, backbone="tiny-sources", device="cpu", verbose=False)
    np.testing.assert_allclose(fs.features, _reference(_images()), atol=1e-5)
    assert fs.ids == rel and fs.classes == ["cat", "dog"]
    assert fs.labels.tolist() == [0 if c == "cat" else 1 for c in cls]
    # the same list read from another working directory: paths follow the list file, not the cwd
    src = open_image_source(str(lst))
    assert isinstance(src, PathListSource) and src.locations[0] == str(root / rel[0])


def test_path_list_csv_with_and_without_header(image_tree):
    root, rel, cls = image_tree
    (root / "with.csv").write_text("filepath,label\n" + "".join(f"{p},{c}\n" for p, c in zip(rel, cls)))
    (root / "bare.csv").write_text("".join(f"{root / p}\n" for p in rel))
    a = embed_images(root / "with.csv", backbone="tiny-sources", device="cpu", verbose=False)
    b = embed_images(root / "bare.csv", backbone="tiny-sources", device="cpu", verbose=False)
    np.testing.assert_allclose(a.features, b.features, atol=1e-6)
    assert a.classes == ["cat", "dog"] and b.labels is None and b.ids == [str(root / p) for p in rel]


def test_path_list_missing_file_is_skipped_with_a_warning(image_tree):
    root, rel, _ = image_tree
    (root / "paths.txt").write_text("\n".join(rel + ["imgs/cat/missing.png"]) + "\n")
    with pytest.warns(SkippedInputWarning, match="1 of 6"):
        fs = embed_images(root / "paths.txt", backbone="tiny-sources", device="cpu", verbose=False)
    assert len(fs) == 5 and fs.meta["skipped"][0].startswith("imgs/cat/missing.png")


def test_a_text_file_that_lists_no_images_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("the cat sat\non the mat\n")
    with pytest.raises(ValueError, match="no line names an image file"):
        open_image_source(tmp_path / "notes.txt")
    assert cli_main(["embed", str(tmp_path / "notes.txt"), "--kind", "image", "--backbone", "tiny-sources",
                     "--out", str(tmp_path / "f.npz"), "--device", "cpu", "--quiet"]) == 2
    assert not (tmp_path / "f.npz").exists()


def test_cli_embed_a_path_list(image_tree, tmp_path):
    root, rel, cls = image_tree
    (root / "paths.txt").write_text("".join(f"{p}\t{c}\n" for p, c in zip(rel, cls)))
    out = tmp_path / "f.npz"
    assert cli_main(["embed", str(root / "paths.txt"), "--kind", "image", "--backbone", "tiny-sources",
                     "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    fs = load_features(out)
    assert fs.ids == rel and fs.classes == ["cat", "dog"]
    np.testing.assert_allclose(fs.features, _reference(_images()), atol=1e-5)


# --------------------------------------------------------------------------- fsspec URLs


def test_memory_urls_folder_list_and_list_entries(image_tree):
    fsspec = pytest.importorskip("fsspec")
    root, rel, cls = image_tree
    base = f"memory://bilaf-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    for p in rel:
        fs.pipe(f"{base}/{p}", (root / p).read_bytes())
    fs.pipe(f"{base}/paths.txt", "".join(f"{p}\n" for p in rel).encode())
    local = embed_images(root / "imgs", backbone="tiny-sources", device="cpu", verbose=False)
    tree = embed_images(f"{base}/imgs", backbone="tiny-sources", device="cpu", verbose=False)
    listed = embed_images(f"{base}/paths.txt", backbone="tiny-sources", device="cpu", verbose=False)
    urls = embed_images([f"{base}/{p}" for p in rel], backbone="tiny-sources", device="cpu", verbose=False)
    assert tree.ids == local.ids and tree.classes == ["cat", "dog"]
    np.testing.assert_allclose(tree.features, local.features, atol=1e-6)
    order = [rel.index("imgs/" + i) for i in local.ids]
    np.testing.assert_allclose(listed.features[order], local.features, atol=1e-6)
    np.testing.assert_allclose(urls.features, listed.features, atol=1e-6)
    out = root / "url.npz"
    assert cli_main(["embed", f"{base}/imgs", "--backbone", "tiny-sources", "--device", "cpu", "--out", str(out),
                     "--quiet"]) == 0
    np.testing.assert_allclose(load_features(out).features, local.features, atol=1e-6)


def test_url_of_an_unknown_file_system_is_one_clear_error():
    pytest.importorskip("fsspec")
    with pytest.raises(ImportError, match="cannot open nosuchfs:// URLs"):
        open_image_source("nosuchfs://bucket/photos")


# --------------------------------------------------------------------------- Hugging Face datasets


def test_dataset_image_column_of_varying_sizes_with_class_labels():
    datasets = pytest.importorskip("datasets")
    images = _images()
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"]),
                               "name": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1, 1],
                                     "name": [f"n{k}" for k in range(5)]}, features=feats)
    fs = embed_images(ds, backbone="tiny-sources", device="cpu", verbose=False, batch_size=2)
    np.testing.assert_allclose(fs.features, _reference(images), atol=1e-5)
    assert fs.classes == ["cat", "dog"] and fs.labels.tolist() == [0, 1, 0, 1, 1]
    named = embed_images(DatasetSource(ds, id_column="name", label_column="none"), backbone="tiny-sources",
                         device="cpu", verbose=False)
    assert named.ids == [f"n{k}" for k in range(5)] and named.labels is None
    with pytest.raises(ValueError, match="no image column"):
        DatasetSource(ds.remove_columns("image"))
    with pytest.raises(TypeError, match="streaming"):
        embed_images(ds.to_iterable_dataset(), backbone="tiny-sources", device="cpu", verbose=False)


class _Chars(TextBackbone):
    """A toy text backbone: letter counts."""

    name = "chars"

    def embed(self, batch):
        return np.asarray([[t.count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in batch], dtype=np.float32)


def test_dataset_text_column():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["a cat", "the dog", "birds"], "label": ["pet", "pet", "wild"]})
    fs = embed_texts(ds, backbone=_Chars(), device="cpu", verbose=False)
    assert fs.features.shape == (3, 26) and fs.features[0, 0] == 2
    assert fs.classes == ["pet", "wild"] and fs.labels.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="no text column"):
        texts_from_dataset(datasets.Dataset.from_dict({"n": [1, 2]}))


def test_no_warning_for_a_clean_list():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedInputWarning)
        embed_images(_images(), backbone="tiny-sources", device="cpu", verbose=False)
