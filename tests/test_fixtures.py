"""Faithfulness: the published method's outputs, reproduced exactly."""

import numpy as np
import pytest

import bilaf
from conftest import REFERENCE, reference_files

FILES = reference_files()
pytestmark = pytest.mark.skipif(not FILES, reason="reference fixtures not found in ../shared")


def _load(path):
    z = np.load(path)
    X = np.load(REFERENCE / str(z["features_file"]))
    return z, X


def _bilaf_for(z, **kw):
    return bilaf.BiLAF(cores=z["cores"], density_k=int(z["k"]), remove_fraction=float(z["remove"]),
                       cycle_fraction=float(z["cycle"]), opponent_penalty=float(z["delta"]), dtype="float64", **kw)


CASES = [(f, key) for f in FILES for key in np.load(f).files if key.startswith("fixed_B")]


@pytest.mark.parametrize("path,key", CASES, ids=[f"{p.stem}-{k}" for p, k in CASES])
def test_bilaf_reproduces_fixture_exactly(path, key):
    z, X = _load(path)
    budget = int(key[len("fixed_B"):])
    model = _bilaf_for(z)
    res = model.select(X, budget)
    np.testing.assert_array_equal(res.indices, z[key])  # order included
    assert set(res.core_indices) == set(z["cores"])


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_pseudo_labels_match_kept_cluster(path):
    z, X = _load(path)
    first = min(int(k[len("fixed_B"):]) for k in z.files if k.startswith("fixed_B"))
    model = _bilaf_for(z)
    res = model.select(X, first)
    np.testing.assert_array_equal(res.pseudo_labels, z["fixed_kept_cluster"])
    np.testing.assert_array_equal(model.pseudo_labels_, z["fixed_kept_cluster"])


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_float64_tensor_input_gives_same_selection(path):
    torch = pytest.importorskip("torch")
    z, X = _load(path)
    key = [k for k in z.files if k.startswith("fixed_B")][0]
    res = _bilaf_for(z).select(torch.from_numpy(X.astype(np.float64)), int(key[len("fixed_B"):]))
    np.testing.assert_array_equal(res.indices, z[key])


ACTIVEFT = [f for f in FILES if "activeft_init" in np.load(f).files]


@pytest.mark.parametrize("path", ACTIVEFT, ids=[p.stem for p in ACTIVEFT])
def test_activeft_from_init_reaches_reference_cores(path):
    z, X = _load(path)
    init = z["activeft_init"]
    res = bilaf.ActiveFT(init=init, n_iter=int(z["activeft_iters"])).select(X, len(init))
    overlap = len(np.intersect1d(res.indices, z["cores"])) / len(z["cores"])
    assert overlap >= 0.9, overlap


@pytest.mark.parametrize("path", ACTIVEFT, ids=[p.stem for p in ACTIVEFT])
def test_bilaf_with_activeft_cores_end_to_end(path):
    """The whole pipeline: ActiveFT from the recorded init, then stage 2, gives the fixture selection."""
    z, X = _load(path)
    key = [k for k in z.files if k.startswith("fixed_B")][0]
    model = bilaf.BiLAF(n_cores=len(z["cores"]), core_selector="activeft",
                        core_params={"init": z["activeft_init"], "n_iter": int(z["activeft_iters"])},
                        density_k=int(z["k"]), remove_fraction=float(z["remove"]), cycle_fraction=float(z["cycle"]),
                        opponent_penalty=float(z["delta"]), dtype="float64")
    res = model.select(X, int(key[len("fixed_B"):]))
    if set(model.core_indices_) == set(z["cores"]):
        np.testing.assert_array_equal(res.indices, z[key])
    else:  # numeric drift moved a core: most of the selection must still agree
        assert len(np.intersect1d(res.indices, z[key])) >= 0.8 * len(z[key])
