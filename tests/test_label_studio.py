"""Label Studio tasks: one prediction per task, score in [0, 1] ordering the queue as bilaf ranks the picks."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bilaf
from bilaf.writers import labelstudio_priority, read_selection, write_selection

from conftest import blobs

IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="a"/><Choice value="b"/></Choices>
</View>"""

FAST = {"bilaf": {"core_selector": "kmeans", "n_cores": 4}, "activeft": {"n_iter": 30}}


def _select(method, X, budget=16, **kw):
    return bilaf.select(X, budget, method=method, random_state=0, **{**FAST.get(method, {}), **kw})


def _cases():
    """(name, result) for every method, BiLAF's two criteria and a warm start (all roles)."""
    X, _ = blobs(n=200, d=6, k=4)
    out = [(m, _select(m, X)) for m in bilaf.METHODS]
    # raw boundary scores outside [0, 1]: the distance criterion gives distances, the boundary score can be < 0
    out.append(("bilaf-distance", _select("bilaf", X, criterion="distance")))
    out.append(("bilaf-warm", _select("bilaf", X, labeled=[0, 1, 2])))
    return X, out


def _tasks(tmp_path, res, ids):
    p = write_selection(res, tmp_path / "t.labelstudio.json", ids=ids, paths=ids)
    return json.loads(p.read_text())


def test_every_task_has_one_prediction_that_orders_the_queue(tmp_path):
    X, cases = _cases()
    ids = [f"img/{i:04d}.jpg" for i in range(len(X))]
    roles_seen = set()
    for name, res in cases:
        tasks = _tasks(tmp_path, res, ids)
        assert len(tasks) == len(res), name
        scores = []
        for rank, (task, idx, role, raw) in enumerate(zip(tasks, res.indices, res.roles, res.scores)):
            assert len(task["predictions"]) == 1, name
            (pred,) = task["predictions"]
            assert pred["result"] == []
            assert 0.0 <= pred["score"] <= 1.0, (name, pred["score"])
            scores.append(pred["score"])
            d = task["data"]
            assert d["bilaf_rank"] == rank and d["bilaf_index"] == int(idx) and d["bilaf_role"] == role
            assert d["image"] == ids[idx]
            if np.isfinite(raw):
                assert d["bilaf_score"] == raw  # the raw score is kept, exactly
            else:
                assert d["bilaf_score"] is None
            roles_seen.add(role)
        # a descending sort by prediction score is bilaf's order (no ties)
        order = sorted(range(len(tasks)), key=lambda i: -scores[i])
        assert [tasks[i]["data"]["bilaf_rank"] for i in order] == list(range(len(tasks))), name
        assert len(set(scores)) == len(scores)
    assert roles_seen == {"core", "boundary", "labeled", "selected"}
    # the case that made the issue: raw scores outside [0, 1]
    raw = dict(cases)["bilaf-distance"].scores
    assert np.nanmax(raw) > 1.0


@given(st.integers(1, 10_000), st.data())
def test_priority_in_unit_interval_and_strictly_decreasing(n, data):
    r = data.draw(st.integers(0, n - 1))
    p = labelstudio_priority(r, n)
    assert 0.0 < p <= 1.0
    if r + 1 < n:
        assert labelstudio_priority(r + 1, n) < p
    assert labelstudio_priority(0, n) == 1.0


def test_priority_rejects_a_rank_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        labelstudio_priority(3, 3)


def test_warns_when_the_features_have_no_ids(tmp_path):
    X, _ = blobs(n=100, d=4, k=3)
    res = _select("kcenter", X, budget=5)
    with pytest.warns(UserWarning, match="no ids or paths.*row number"):
        tasks = _tasks(tmp_path, res, None)
    assert [t["data"]["image"] for t in tasks] == [str(i) for i in res.indices]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _tasks(tmp_path, res, [f"f{i}.png" for i in range(len(X))])  # ids: no warning
        write_selection(res, tmp_path / "t.csv")  # other formats: no warning


def test_cli_warns_when_the_features_have_no_ids(tmp_path, capsys):
    from bilaf.cli import main

    X, _ = blobs(n=100, d=4, k=3)
    np.save(tmp_path / "f.npy", X)
    rc = main(["select", str(tmp_path / "f.npy"), "-b", "5", "-m", "kcenter", "-o", str(tmp_path / "t.labelstudio.json")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "bilaf select: warning: the features have no ids" in err
    assert "Traceback" not in err and "UserWarning" not in err


def test_raw_score_reads_back(tmp_path):
    X, _ = blobs(n=200, d=6, k=4)
    res = _select("bilaf", X)
    write_selection(res, tmp_path / "t.labelstudio.json", ids=[f"s{i}" for i in range(len(X))])
    back = read_selection(tmp_path / "t.labelstudio.json")
    assert back["indices"].tolist() == res.indices.tolist()
    np.testing.assert_array_equal(np.isnan(back["score"]), np.isnan(res.scores))
    fin = np.isfinite(res.scores)
    assert fin.any()
    np.testing.assert_array_equal(back["score"][fin], res.scores[fin])


def test_label_studio_sdk_accepts_every_task(tmp_path):
    """label-studio-sdk's own validation (``LabelInterface.validate_prediction``) accepts every prediction."""
    li_mod = pytest.importorskip("label_studio_sdk.label_interface")
    from label_studio_sdk.label_interface.objects import TaskValue

    li = li_mod.LabelInterface(IMAGE_CONFIG)
    # the check is live: it refuses what bilaf used to write (a raw distance as the score)
    assert li.validate_prediction({"result": [], "score": 23.5}, return_errors=True)
    X, cases = _cases()
    ids = [f"/data/local-files/?d=img/{i:04d}.jpg" for i in range(len(X))]
    for name, res in cases:
        for task in _tasks(tmp_path, res, ids):
            assert li.validate_task({"data": task["data"]}), name  # the $image field is there
            TaskValue(**task)  # the task's shape parses
            for pred in task["predictions"]:
                assert li.validate_prediction(pred, return_errors=True) == [], (name, pred)
                assert not math.isnan(pred["score"])
