"""``bilaf report`` and :mod:`bilaf.report`: what the page holds, for every method and kind of pool.

The page's content is read back from the JSON it embeds and compared with the selection it was made
from; ``test_report_browser.py`` opens it in a real browser.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bilaf.cli import main
from bilaf.features import FeatureSet
from bilaf.report import build_report_data, load_selection, write_report
from bilaf.result import SelectionResult
from bilaf.selectors import get_selector_class

PIL = pytest.importorskip("PIL.Image")

CLASSES = ["cat", "dog", "ship", "tree"]


def blobs(n=240, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(k, d))
    y = np.arange(n) % k
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def png_bytes(i: int, y: int) -> bytes:
    a = np.zeros((20, 28, 3), np.uint8)
    a[..., y % 3] = 80 + 40 * y
    a[i % 20] = 255
    buf = io.BytesIO()
    PIL.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def page_data(path: Path) -> dict:
    """The JSON the page embeds (what its script renders)."""
    text = Path(path).read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="bilaf-data">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1))


def run(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture()
def image_pool(tmp_path):
    """Features of 240 small images in a class-folder tree, as ``bilaf embed`` would record them."""
    X, y = blobs()
    root = tmp_path / "images"
    ids = []
    for i, c in enumerate(y):
        rid = f"{CLASSES[c]}/{i:04d}.png"
        (root / CLASSES[c]).mkdir(parents=True, exist_ok=True)
        (root / rid).write_bytes(png_bytes(i, int(c)))
        ids.append(rid)
    fs = FeatureSet(X, ids=ids, labels=y, classes=CLASSES, meta={"source": f"folder:{root.resolve()}"})
    feats = fs.save(tmp_path / "feats.npz")
    return tmp_path, feats, fs, root


def select_files(tmp_path, feats, capsys, name="sel.csv", *extra):
    rc, _, err = run(["select", feats, "--budget", "24", "--n-cores", "8", "-o", tmp_path / name, "-q", *extra],
                     capsys)
    assert rc == 0, err
    return tmp_path / name


# -- the page's content ------------------------------------------------------------------------------------------

def test_cli_report_holds_the_selection(image_pool, capsys):
    tmp, feats, fs, _ = image_pool
    sel = select_files(tmp, feats, capsys)
    out = tmp / "report.html"
    rc, _, err = run(["report", feats, sel, "-o", out], capsys)
    assert rc == 0, err
    data = page_data(out)
    picks = np.loadtxt(sel, delimiter=",", skiprows=1, usecols=1, dtype=np.int64)
    assert data["picks"]["i"] == picks.tolist()
    roles = [data["roles"][r] for r in data["picks"]["r"]]
    assert roles.count("core") == 8 and roles.count("boundary") == 16
    man = json.loads((tmp / "sel.csv.manifest.json").read_text())
    s = data["summary"]
    assert (s["method"], s["budget"], s["k"], s["seed"]) == ("bilaf", "24", 8, 0)
    assert dict(s["hashes"])["features (sha256)"] == man["features"]["sha256"]
    import hashlib

    assert dict(s["hashes"])["manifest file (sha256)"] == hashlib.sha256(
        (tmp / "sel.csv.manifest.json").read_bytes()).hexdigest()
    assert any(name == "total" for name, _ in s["timings"])
    # every boundary pick can show its own core and its opponent's core
    cls = data["classes"]
    pseudo = np.asarray(load_selection(fs, sel)[0].pseudo_labels)
    for c, core in enumerate(cls["core"]):
        assert pseudo[core] == c and core in man["result"]["core_indices"]
    for i, r in enumerate(roles):
        if r == "boundary":
            c, o = data["picks"]["c"][i], data["picks"]["o"][i]
            assert c >= 0 and o >= 0 and c != o
            assert str(cls["core"][c]) in data["media"] and str(cls["core"][o]) in data["media"]
    # thumbnails: a small JPEG for every pick, core and shown removed sample
    assert data["kind"] == "image" and "missing" not in data
    for row in data["picks"]["i"] + data["removed"]["i"]:
        uri = data["media"][str(row)]
        assert uri.startswith("data:image/jpeg;base64,")
        with PIL.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
            assert max(im.size) <= 96 and im.size == (28, 20)  # never enlarged
    assert data["removed"]["n"] == int((pseudo < 0).sum()) > 0
    assert all(pseudo[r] < 0 for r in data["removed"]["i"])
    # true labels are there as an optional view, and can be left out
    assert data["truth"]["names"] == CLASSES and data["picks"]["y"] == fs.labels[picks].tolist()
    rc, _, err = run(["report", feats, sel, "-o", tmp / "nolabels.html", "--no-labels"], capsys)
    assert rc == 0, err
    assert page_data(tmp / "nolabels.html")["truth"] is None
    assert "y" not in page_data(tmp / "nolabels.html")["picks"]


def test_pseudo_classes_without_a_pick():
    X, _ = blobs(n=60)
    pseudo = np.repeat([0, 1, 2, 3], 15)
    pseudo[::7] = -1
    res = SelectionResult(indices=[1, 16, 17, 46], core_indices=[1, 16, 46], boundary_indices=[17],
                          pseudo_labels=pseudo, pick_classes=pseudo[[1, 16, 17, 46]], n_samples=60)
    data = build_report_data(X, res, n_removed=3)
    assert data["classes"]["picks"] == [1, 2, 0, 1]
    assert data["classes"]["without"] == [2]
    assert data["classes"]["core"] == [1, 16, -1, 46]
    assert data["removed"]["n"] == 9 and len(data["removed"]["i"]) == 3


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 7), st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_coverage_counts_match_the_picks(k, seed, b):
    rng = np.random.default_rng(seed)
    n = 60
    X = rng.normal(size=(n, 3)).astype(np.float32)
    pseudo = rng.integers(-1, k, size=n)
    pseudo[:k] = np.arange(k)  # every class exists
    idx = rng.choice(n, size=min(b, n), replace=False)
    res = SelectionResult(indices=idx, pseudo_labels=pseudo, pick_classes=pseudo[idx], n_samples=n)
    data = build_report_data(X, res, max_points=20)
    picked = pseudo[idx]
    want = [int((picked == c).sum()) for c in range(k)]
    assert data["classes"]["picks"] == want
    assert data["classes"]["without"] == [c for c in range(k) if want[c] == 0]
    assert len(data["map"]["kx"]) == len(idx) and len(data["map"]["px"]) == min(20, n - len(idx))
    assert all(0 <= v <= 1000 for v in data["map"]["px"] + data["map"]["kx"] + data["map"]["py"] + data["map"]["ky"])


@pytest.mark.parametrize("method", ["bilaf", "activeft", "kmeans", "kcenter", "typiclust", "probcover", "random"])
def test_every_method(method, image_pool):
    tmp, _, fs, _ = image_pool
    params = {"n_cores": 6} if method == "bilaf" else {}
    res = get_selector_class(method)(random_state=0, **params).select(fs.features, 12)
    out = write_report(tmp / f"{method}.html", fs, res)
    data = page_data(out)
    assert data["picks"]["i"] == res.indices.tolist()
    roles = {data["roles"][r] for r in data["picks"]["r"]}
    assert roles == set(res.roles)
    assert (data["classes"] is not None) == (res.pseudo_labels is not None)
    if method != "bilaf":
        assert "boundary" not in roles
    assert all(str(i) in data["media"] for i in res.indices)


def test_plain_indices_and_an_array(tmp_path):
    X, _ = blobs(n=50)
    out = write_report(tmp_path / "r.html", X, [3, 9, 27])
    data = page_data(out)
    assert data["picks"]["i"] == [3, 9, 27] and data["kind"] == "none" and data["classes"] is None
    assert data["ids"]["9"] == "9"


def test_warm_start_role_labeled(image_pool, capsys):
    tmp, feats, _, _ = image_pool
    (tmp / "lab.txt").write_text("0\n5\n")
    sel = select_files(tmp, feats, capsys, "warm.csv", "--labeled", tmp / "lab.txt")
    rc, _, err = run(["report", feats, sel, "-o", tmp / "warm.html"], capsys)
    assert rc == 0, err
    data = page_data(tmp / "warm.html")
    labeled = [i for i, r in zip(data["picks"]["i"], data["picks"]["r"]) if data["roles"][r] == "labeled"]
    assert sorted(labeled) == [0, 5]


def test_json_selection_uses_the_manifest(image_pool, capsys):
    """A bare JSON list of indices: roles and pseudo-classes come from the manifest beside it."""
    tmp, feats, _, _ = image_pool
    sel = select_files(tmp, feats, capsys, "sel.json")
    rc, _, err = run(["report", feats, sel, "-o", tmp / "j.html"], capsys)
    assert rc == 0, err
    data = page_data(tmp / "j.html")
    roles = [data["roles"][r] for r in data["picks"]["r"]]
    assert roles.count("core") == 8 and roles.count("boundary") == 16
    assert all(c >= 0 for c in data["picks"]["c"])


# -- where the samples are ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_members(kind, image_pool, capsys):
    tmp, _, fs, root = image_pool
    arc = tmp / f"images.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(arc, "w") as zf:
            for rid in fs.ids:
                zf.write(root / rid, f"pool/{rid}")
    else:
        with tarfile.open(arc, "w:gz") as tf:
            for rid in fs.ids:
                tf.add(root / rid, f"pool/{rid}")
    fs2 = FeatureSet(fs.features, ids=[f"pool/{r}" for r in fs.ids], labels=fs.labels, classes=fs.classes)
    feats = fs2.save(tmp / "arc.npz")  # no recorded source: --samples says where
    sel = select_files(tmp, feats, capsys, "arc.csv")
    rc, _, err = run(["report", feats, sel, "-o", tmp / "arc.html", "--samples", arc], capsys)
    assert rc == 0, err
    data = page_data(tmp / "arc.html")
    assert "missing" not in data
    direct = write_report(tmp / "direct.html", fs, load_selection(fs2, sel)[0], thumbnails="embed")
    assert page_data(direct)["media"] == data["media"]  # the same thumbnails as from the folder


def test_link_mode(image_pool, capsys):
    tmp, feats, fs, root = image_pool
    sel = select_files(tmp, feats, capsys)
    sub = tmp / "out"
    sub.mkdir()
    rc, _, err = run(["report", feats, sel, "-o", sub / "r.html", "--thumbnails", "link"], capsys)
    assert rc == 0, err
    data = page_data(sub / "r.html")
    for row, link in data["media"].items():
        assert not link.startswith("data:")
        assert (sub / link).resolve() == (root / fs.ids[int(row)]).resolve()
    # archive members become small JPEGs beside the page
    arc = tmp / "images.tar"
    with tarfile.open(arc, "w") as tf:
        tf.add(root, "images")
    rc, _, err = run(["report", feats, sel, "-o", sub / "a.html", "--thumbnails", "link", "--samples", arc], capsys)
    assert rc == 0, err
    data = page_data(sub / "a.html")
    assert data["media"] and all((sub / link).is_file() for link in data["media"].values())
    assert {p.name for p in (sub / "a_files").iterdir()} == {f"{r}.jpg" for r in data["media"]}
    assert not [p for p in sub.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_text_pool(tmp_path, capsys):
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta"]
    lines = [f"{i % 4} {words[i % 4]} sentence number {i} <b>bold?</b>" for i in range(120)]
    txt = tmp_path / "corpus.txt"
    txt.write_text("\n".join(lines) + "\n")
    centers = rng.normal(scale=5, size=(4, 5))
    X = (centers[np.arange(120) % 4] + rng.normal(size=(120, 5))).astype(np.float32)
    fs = FeatureSet(X, ids=[f"corpus.txt:{i + 1}" for i in range(120)], labels=np.arange(120) % 4,
                    meta={"source": f"text:{txt.resolve()}"})
    feats = fs.save(tmp_path / "t.npz")
    sel = select_files(tmp_path, feats, capsys)
    rc, _, err = run(["report", feats, sel, "-o", tmp_path / "t.html"], capsys)
    assert rc == 0, err
    data = page_data(tmp_path / "t.html")
    assert data["kind"] == "text"
    for row in data["picks"]["i"]:
        assert data["media"][str(row)] == lines[row].split(None, 1)[1]  # the text, without its label
    assert "<b>" not in (tmp_path / "t.html").read_text().split('id="bilaf-data">', 1)[1].split("</script>")[0]


def test_ids_cannot_break_out_of_the_page(tmp_path):
    X, _ = blobs(n=30)
    ids = [f"x{i}" for i in range(30)]
    ids[4] = "</script><script>alert(1)</script>"
    fs = FeatureSet(X, ids=ids)
    out = write_report(tmp_path / "r.html", fs, [4, 5, 6])
    text = out.read_text()
    assert text.count("</script>") == 2  # the data block's and the code block's own
    assert page_data(out)["ids"]["4"] == ids[4]


# -- bad input: one line, exit 2, no file ------------------------------------------------------------------------

def test_bad_input(image_pool, capsys):
    tmp, feats, fs, root = image_pool
    sel = select_files(tmp, feats, capsys)
    rc, _, err = run(["report", feats, sel, "-o", tmp / "r.pdf"], capsys)
    assert rc == 2 and "ending in .html" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(["report", feats, sel, "-o", tmp / "r.html", "--samples", tmp / "nope"], capsys)
    assert rc == 2 and "--samples not found" in err
    rc, _, err = run(["report", feats, sel, "-o", tmp / "r.html", "--page-size", "0"], capsys)
    assert rc == 2 and "--page-size must be >= 1" in err
    other = FeatureSet(fs.features + 1, ids=fs.ids).save(tmp / "other.npz")
    rc, _, err = run(["report", other, sel, "-o", tmp / "r.html"], capsys)
    assert rc == 2 and "--ignore-hash" in err and len(err.strip().splitlines()) == 1
    empty = tmp / "empty"
    empty.mkdir()
    rc, _, err = run(["report", feats, sel, "-o", tmp / "r.html", "--samples", empty], capsys)
    assert rc == 2 and "none of the" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "r.html").exists()
    with pytest.raises(ValueError, match="thumbnails"):
        write_report(tmp / "r.html", fs, [1, 2], thumbnails="inline")
