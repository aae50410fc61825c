"""bilaf as a query strategy of scikit-activeml and modAL, run through the libraries themselves."""

from __future__ import annotations

import numpy as np
import pytest

import bilaf
from conftest import blobs

FAST = {"core_selector": "kmeans"}


@pytest.fixture
def data():
    X, y = blobs(n=240, d=6, k=4)
    return X.astype(np.float64), y


# -- scikit-activeml ------------------------------------------------------------------------------------



def _strategy(**kw):
    pytest.importorskip("skactiveml")
    from bilaf.adapters import BilafQueryStrategy

    return BilafQueryStrategy(**kw)


def test_skactiveml_query_is_bilafs_warm_start(data):
    X, y_true = data
    qs = _strategy(method="bilaf", params=FAST, random_state=3)
    y = np.full(len(X), np.nan)
    labeled = np.array([4, 9, 100])
    y[labeled] = y_true[labeled]
    got = qs.query(X, y, batch_size=8)
    ref = bilaf.select(X, 11, method="bilaf", random_state=3, labeled=labeled, **FAST)
    assert got.tolist() == ref.indices[3:].tolist()
    assert not np.isin(got, labeled).any()


def test_skactiveml_candidates_and_utilities(data):
    X, _ = data
    qs = _strategy(method="kcenter", random_state=0)
    y = np.full(len(X), np.nan)
    y[[0, 1]] = [0, 1]
    cand = np.arange(0, 240, 3)  # holds the labeled row 0: never picked
    idx, util = qs.query(X, y, candidates=cand, batch_size=5, return_utilities=True)
    assert np.isin(idx, cand).all() and 0 not in idx and len(set(idx.tolist())) == 5
    assert util.shape == (5, 240)
    assert np.nanargmax(util, axis=1).tolist() == idx.tolist()
    assert np.isnan(util[:, [0, 1, 2]]).all()  # labeled and non-candidates
    for b in range(5):
        assert np.isnan(util[b, idx[:b]]).all()  # earlier picks
    # candidate samples given directly: the indices refer to them
    Xc = X[100:160]
    idx2, util2 = qs.query(X, y, candidates=Xc, batch_size=4, return_utilities=True)
    assert util2.shape == (4, 60) and ((0 <= idx2) & (idx2 < 60)).all()
    ref = bilaf.select(np.concatenate([X[[0, 1]], Xc]), 6, method="kcenter", random_state=0, labeled=[0, 1])
    assert idx2.tolist() == (ref.indices[2:] - 2).tolist()


def test_skactiveml_integer_labels_and_batch_too_large(data):
    X, y_true = data
    qs = _strategy(method="random", missing_label=-1, random_state=1)
    y = np.full(len(X), -1)
    y[:3] = y_true[:3]
    with pytest.warns(UserWarning, match="batch_size"):  # scikit-activeml's own check
        idx = qs.query(X, y, candidates=[5, 6, 7], batch_size=10)
    assert sorted(idx.tolist()) == [5, 6, 7]


def test_skactiveml_loop_with_a_classifier(data):
    pytest.importorskip("skactiveml")
    from skactiveml.classifier import ParzenWindowClassifier
    from skactiveml.utils import MISSING_LABEL, is_labeled
    from sklearn.base import clone

    X, y_true = data
    qs = clone(_strategy(method="bilaf", params=FAST, random_state=0))  # scikit-learn's clone
    clf = ParzenWindowClassifier(classes=np.unique(y_true), missing_label=MISSING_LABEL, random_state=0)
    y = np.full(len(X), MISSING_LABEL)
    for _ in range(3):
        idx = qs.query(X, y, batch_size=6)
        assert not is_labeled(y[idx]).any()
        y[idx] = y_true[idx]
        clf.fit(X, y)
    assert is_labeled(y).sum() == 18
    assert (clf.predict(X) == y_true).mean() > 0.9  # the blobs are separable


def test_skactiveml_params_cannot_override_the_query():
    X, _ = blobs(n=50, d=3, k=2)
    qs = _strategy(params={"labeled": [1]})
    with pytest.raises(ValueError, match="params must not set 'labeled'"):
        qs.query(X, np.full(50, np.nan))


# -- modAL ---------------------------------------------------------------------------------------------

def test_modal_learner_queries_through_bilaf(data):
    pytest.importorskip("modAL")
    from modAL.models import ActiveLearner
    from sklearn.linear_model import LogisticRegression

    from bilaf.adapters import make_query_strategy

    X, y_true = data
    train = np.array([0, 1, 2, 3])
    pool = np.setdiff1d(np.arange(len(X)), train)
    learner = ActiveLearner(LogisticRegression(max_iter=200), query_strategy=make_query_strategy("bilaf", 2, **FAST),
                            X_training=X[train], y_training=y_true[train])
    idx, inst = learner.query(X[pool], n_instances=6)
    # the learner's training rows are bilaf's warm start
    ref = bilaf.select(np.concatenate([X[train], X[pool]]), 10, method="bilaf", random_state=2,
                       labeled=np.arange(4), **FAST)
    assert np.asarray(idx).tolist() == (ref.indices[4:] - 4).tolist()
    np.testing.assert_array_equal(inst, X[pool][idx])
    # a few rounds of the loop (modAL 0.4.2's teach() calls check_X_y(force_all_finite=...), which
    # scikit-learn 1.9 no longer takes, so the new rows are added to the learner's training data here)
    for _ in range(2):
        learner.X_training = np.concatenate([learner.X_training, X[pool][idx]])
        learner.y_training = np.concatenate([learner.y_training, y_true[pool][idx]])
        pool = np.delete(pool, idx)
        idx, _ = learner.query(X[pool], n_instances=5)
        assert len(set(np.asarray(idx).tolist())) == 5 and np.max(idx) < len(pool)
    assert learner.X_training.shape[0] == 4 + 6 + 5


def test_modal_cold_start_and_plain_function(data):
    pytest.importorskip("modAL")
    from functools import partial

    from modAL.models import ActiveLearner
    from sklearn.linear_model import LogisticRegression

    from bilaf.adapters import bilaf_query

    X, _ = data
    learner = ActiveLearner(LogisticRegression(), query_strategy=partial(bilaf_query, method="kcenter",
                                                                          random_state=0))
    idx, inst = learner.query(X, n_instances=7)
    assert np.asarray(idx).tolist() == bilaf.select(X, 7, method="kcenter", random_state=0).indices.tolist()
    with pytest.raises(ValueError, match="n_instances must be between 1"):
        bilaf_query(learner, X, n_instances=0)
