"""Bad input: a ValueError/TypeError naming the problem, before any work."""

import numpy as np
import pytest

import bilaf
from bilaf.validation import check_budget, parse_memory_budget

X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)


@pytest.mark.parametrize("method", bilaf.METHODS)
def test_nan_and_inf_rejected(method):
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN.*row 7"):
        bilaf.select(bad, 5, method=method)
    bad[7, 2] = np.inf
    with pytest.raises(ValueError, match="inf"):
        bilaf.select(bad, 5, method=method)


@pytest.mark.parametrize("bad,err,msg", [
    (np.zeros(10), ValueError, "2-D"),
    (np.zeros((2, 3, 4)), ValueError, "2-D"),
    (np.zeros((1, 3)), ValueError, "at least 2 samples"),
    (np.zeros((0, 3)), ValueError, "at least 2 samples"),
    (np.zeros((5, 0)), ValueError, "no feature columns"),
    (np.array([["a", "b"], ["c", "d"]]), TypeError, "real numbers"),
    (np.array([[1 + 2j, 0], [0, 1]]), TypeError, "real numbers"),
    (np.ones((3, 2), dtype=bool), TypeError, "real numbers"),
    ("features.npy", TypeError, "2-D numeric array"),
    (None, TypeError, "2-D numeric array"),
])
def test_bad_feature_matrices(bad, err, msg):
    with pytest.raises(err, match=msg):
        bilaf.select(bad, 1, method="random")


def test_integer_and_float16_features_accepted():
    assert len(bilaf.select(np.arange(20).reshape(10, 2), 3, method="kcenter").indices) == 3
    assert len(bilaf.select(X.astype(np.float16), 3, method="kcenter").indices) == 3


@pytest.mark.parametrize("budget,msg", [
    (0, "positive"), (-3, "positive"), (51, "exceeds the pool size 50"),
    (0.0, r"\(0, 1\)"), (1.0, r"\(0, 1\)"), (1.5, r"\(0, 1\)"), (-0.1, r"\(0, 1\)"), (float("nan"), r"\(0, 1\)"),
])
def test_bad_budgets(budget, msg):
    with pytest.raises(ValueError, match=msg):
        bilaf.select(X, budget, method="random")


@pytest.mark.parametrize("budget", ["10", None, True, [3]])
def test_budget_types(budget):
    with pytest.raises(TypeError, match="budget"):
        bilaf.select(X, budget, method="random")


def test_fraction_budget():
    assert check_budget(0.1, 50) == 5
    assert check_budget(0.001, 50) == 1  # at least one
    assert len(bilaf.select(X, 0.2, method="random", random_state=0).indices) == 10


def test_unknown_method_and_option():
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        bilaf.select(X, 3, method="nope")
    with pytest.raises(TypeError, match="unknown option.*n_coers"):
        bilaf.select(X, 3, method="bilaf", n_coers=3)


@pytest.mark.parametrize("kw,msg", [
    (dict(denoise="idk"), "denoise must be one of"),
    (dict(criterion="x"), "criterion must be one of"),
    (dict(process="x"), "process must be one of"),
    (dict(opponent="max"), "opponent must be one of"),
    (dict(core_selector="dbscan"), "core_selector must be one of"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(opponent_penalty=0.5), "opponent_penalty"),
    (dict(remove_fraction=1.0), "remove_fraction"),
    (dict(cycle_fraction=0.0), "cycle_fraction"),
    (dict(density_k=0), "density_k"),
    (dict(n_cores=0), "n_cores"),
    (dict(n_cores=1.5), "n_cores"),
    (dict(n_cores=500), "exceeds the pool size"),
    (dict(n_cores="many"), "n_cores"),
    (dict(memory_budget="lots"), "memory_budget"),
    (dict(memory_budget="10KB"), "at least 1MB"),
    (dict(cores=[0, 1, 50]), "out of range"),
    (dict(cores=[0, 1, 1]), "repeats index 1"),
    (dict(cores=[-1, 2]), "out of range"),
    (dict(cores=[]), "empty"),
    (dict(cores=[0.5, 2]), "integer pool indices"),
    (dict(cores=[0, 1, 2], core_selector="kmeans"), "leave core_selector at auto"),
    (dict(cores=[0, 1, 2], n_cores=3), "leave n_cores unset"),
    (dict(cores=[0, 1, 2], core_params={"n_iter": 5}), "core_params would be ignored"),
    (dict(core_selector="kmeans", core_params={"bogus": 1}), "unknown option"),
])
def test_bad_bilaf_options_raise_before_work(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        bilaf.BiLAF(**kw).select(X, 10)


def test_indices_in_core_selector_still_mean_given_cores_with_a_warning():
    cores = [3, 17, 40]
    with pytest.warns(FutureWarning, match="cores=<indices>"):
        old = bilaf.BiLAF(core_selector=cores, random_state=0).select(X, 10)
    new = bilaf.BiLAF(cores=cores, random_state=0).select(X, 10)
    np.testing.assert_array_equal(old.indices, new.indices)
    assert sorted(old.core_indices.tolist()) == cores
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="out of range"):
        bilaf.BiLAF(core_selector=[0, 1, 50]).select(X, 10)


def test_bad_random_state():
    with pytest.raises(TypeError, match="random_state"):
        bilaf.select(X, 3, method="random", random_state="seed")
    with pytest.raises(ValueError, match="random_state"):
        bilaf.select(X, 3, method="random", random_state=-1)


def test_bad_labeled():
    with pytest.raises(ValueError, match="labeled holds index 99"):
        bilaf.BiLAF(core_selector="kmeans").select(X, 5, labeled=[1, 99])
    with pytest.raises(ValueError, match="more than the budget"):
        bilaf.KCenterGreedy().select(X, 2, labeled=[1, 2, 3])


def test_device_errors():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            bilaf.select(X, 3, method="kcenter", device="cuda")
    with pytest.raises(ValueError, match="device"):
        bilaf.select(X, 3, method="kcenter", device="tpu")


def test_memory_budget_parsing():
    assert parse_memory_budget("4GB") == 4 * 1024**3
    assert parse_memory_budget("512 MiB") == 512 * 1024**2
    assert parse_memory_budget(2**30) == 2**30
    with pytest.raises(ValueError):
        parse_memory_budget("4 parsecs")
