"""``bilaf plot`` and :mod:`bilaf.plot`: the map renders, is not blank, and bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from bilaf.cli import main  # noqa: E402
from bilaf.plot import class_colors, plot_selection, project_2d, save_selection_plot  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
MIX = SHARED / "fixtures" / "reference" / "mix1200.npy"


def blobs(n=300, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=8.0, size=(k, d))
    y = np.arange(n) % k
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def run(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def image_stats(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))[..., :3]
    flat = img.reshape(-1, 3)
    non_white = (flat < 0.95).any(axis=1).mean()
    # "saturated" pixels: clearly coloured, not grey
    sat = (flat.max(axis=1) - flat.min(axis=1) > 0.25).mean()
    return img.shape, non_white, sat


def test_png_is_not_blank(tmp_path):
    X, _ = blobs()
    pseudo = np.repeat([0, 1, 2], 100)
    pseudo[::17] = -1
    idx = np.array([5, 105, 205, 10, 110, 210, 15])
    roles = ["core", "core", "core", "boundary", "boundary", "boundary", "labeled"]
    out = save_selection_plot(tmp_path / "map.png", X, idx, roles=roles, pseudo_labels=pseudo, dpi=60)
    shape, non_white, sat = image_stats(out)
    assert shape[0] > 200 and shape[1] > 300
    assert 0.01 < non_white < 0.6  # something is drawn, and it is not a solid block
    assert sat > 0.002  # coloured points, not only grey axes and text


def test_blank_detection_would_fail(tmp_path):
    """The check above can fail: an empty figure is (almost) all white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3), dpi=60)
    fig.savefig(tmp_path / "empty.png", facecolor="white")
    plt.close(fig)
    _, non_white, sat = image_stats(tmp_path / "empty.png")
    assert non_white < 0.01 and sat == 0


def test_colour_by_true_label_and_legend(tmp_path):
    X, y = blobs()
    fig = plot_selection(X, [0, 1, 2], labels=y, class_names=["cat", "dog", "ship"])
    texts = {t.get_text() for leg in fig.axes[0].findobj(lambda a: a.__class__.__name__ == "Legend")
             for t in leg.get_texts()}
    assert {"cat", "dog", "ship"} <= texts
    assert any(t.startswith("selected (3)") for t in texts)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("projection", ["pca", "tsne"])
def test_projections(projection):
    X, _ = blobs(n=80)
    Z = project_2d(X, projection, random_state=0)
    assert Z.shape == (80, 2) and np.isfinite(Z).all() and Z.std(axis=0).min() > 0
    if projection == "pca":
        assert np.allclose(Z, project_2d(X, projection, random_state=0))


def test_projection_errors():
    X, _ = blobs(n=20)
    with pytest.raises(ValueError, match="projection"):
        project_2d(X, "mds")
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="umap-learn"):
            project_2d(X, "umap")


def test_class_colors_distinct():
    for n in (1, 5, 9, 10, 12, 19, 20, 60):
        c = class_colors(n)
        assert c.shape == (n, 3)
        assert len({tuple(np.round(r, 3)) for r in c}) == n
        assert not any(np.allclose(r, r.mean()) for r in c)  # no greys (grey means noise)


def test_subsample_keeps_every_pick(tmp_path):
    X, _ = blobs(n=2000)
    idx = np.arange(0, 2000, 40)
    fig = plot_selection(X, idx, max_points=100)
    offsets = [c.get_offsets() for c in fig.axes[0].collections]
    assert sum(len(o) for o in offsets) == 100 + len(idx)
    import matplotlib.pyplot as plt

    plt.close(fig)


# -- the CLI ----------------------------------------------------------------------------------------

@pytest.fixture
def selection(tmp_path, capsys):
    X, y = blobs()
    np.save(tmp_path / "pool_features.npy", X)
    np.save(tmp_path / "pool_labels.npy", y)
    (tmp_path / "pool_files.txt").write_text("".join(f"p/{i}.jpg\n" for i in range(len(X))))
    rc, _, err = run(["select", tmp_path / "pool_features.npy", "-b", "15", "--core-selector", "kmeans",
                      "--n-cores", "3", "-o", tmp_path / "sel.csv", "-o", tmp_path / "sel.json"], capsys)
    assert rc == 0, err
    return tmp_path


def test_cli_plot_from_csv(selection, capsys):
    d = selection
    rc, _, err = run(["plot", d / "pool_features.npy", d / "sel.csv", "-o", d / "map.png", "--dpi", "60"], capsys)
    assert rc == 0, err
    _, non_white, sat = image_stats(d / "map.png")
    assert non_white > 0.01 and sat > 0.002


def test_cli_plot_from_plain_json_uses_manifest(selection, capsys, monkeypatch):
    d = selection
    seen = {}
    import bilaf.plot as bp

    real = bp.save_selection_plot

    def spy(path, X, idx, **kw):
        seen.update(kw)
        return real(path, X, idx, **kw)

    monkeypatch.setattr(bp, "save_selection_plot", spy)
    rc, _, err = run(["plot", d / "pool_features.npy", d / "sel.json", "-o", d / "m.svg"], capsys)
    assert rc == 0, err
    man = json.loads((d / "sel.json.manifest.json").read_text())
    roles = np.asarray(seen["roles"])
    picks = np.asarray(json.loads((d / "sel.json").read_text()))
    assert (roles == "core").sum() == 3 and (roles == "boundary").sum() == 12
    assert set(picks[roles == "core"].tolist()) == set(man["result"]["core_indices"])
    assert seen["pseudo_labels"] is not None and seen["color_by"] == "pseudo"
    assert (d / "m.svg").read_text().lstrip().startswith("<?xml")


def test_cli_plot_without_manifest_colours_by_label(selection, capsys):
    d = selection
    (d / "bare.json").write_text(json.dumps([1, 2, 3, 4]))
    rc, _, err = run(["plot", d / "pool_features.npy", d / "bare.json", "-o", d / "bare.png", "--dpi", "50"], capsys)
    assert rc == 0, err
    rc, _, err = run(["plot", d / "pool_features.npy", d / "bare.json", "-o", d / "x.png", "--color-by", "pseudo"],
                     capsys)
    assert rc == 2 and "pseudo-labels" in err


def test_cli_plot_bad_input(selection, capsys):
    d = selection
    np.save(d / "small.npy", np.zeros((10, 3), np.float32) + np.arange(10)[:, None])
    (d / "far.json").write_text("[1, 5000]")
    cases = {
        "missing features": ["plot", d / "none.npy", d / "sel.csv", "-o", d / "o.png"],
        "missing selection": ["plot", d / "pool_features.npy", d / "none.csv", "-o", d / "o.png"],
        "bad image suffix": ["plot", d / "pool_features.npy", d / "sel.csv", "-o", d / "o.gif"],
        "no out": ["plot", d / "pool_features.npy", d / "sel.csv"],
        "index out of range": ["plot", d / "pool_features.npy", d / "far.json", "-o", d / "o.png"],
        "other pool": ["plot", d / "small.npy", d / "sel.json", "--manifest", d / "sel.json.manifest.json",
                       "-o", d / "o.png"],
        "bad projection": ["plot", d / "pool_features.npy", d / "sel.csv", "-o", d / "o.png", "--projection", "x"],
        "labels wrong length": ["plot", d / "pool_features.npy", d / "sel.csv", "-o", d / "o.png",
                                "--labels", d / "small.npy"],
    }
    before = sorted(p.name for p in d.iterdir())
    for name, args in cases.items():
        rc, out, err = run(args, capsys)
        assert rc == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("bilaf plot: error: "), (name, err)
        assert sorted(p.name for p in d.iterdir()) == before, name


@pytest.mark.skipif(not MIX.exists(), reason="shared fixtures not available")
def test_cli_plot_fixture_pool(tmp_path, capsys):
    rc, _, err = run(["select", MIX, "-b", "3%", "--core-param", "max_iter=30", "-o", tmp_path / "m.parquet"], capsys)
    assert rc == 0, err
    rc, _, err = run(["plot", MIX, tmp_path / "m.parquet", "-o", tmp_path / "m.png", "--dpi", "60",
                      "--labels", MIX.with_name("mix1200_y.npy")], capsys)
    assert rc == 0, err
    _, non_white, sat = image_stats(tmp_path / "m.png")
    assert non_white > 0.01 and sat > 0.002
