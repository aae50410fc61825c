"""``bilaf select``: output formats, manifest round-trip, warm start, bad input at the CLI."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bilaf.cli import main
from bilaf.cli.select import parse_budget
from bilaf.manifest import (decode_labels, encode_labels, features_sha256, manifest_path_for, read_manifest,
                            reproduce)
from bilaf.result import SelectionResult
from bilaf.writers import format_for_path, read_selection, write_outputs, write_selection

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR = SHARED / "data" / "cifar10" / "effnet-lite0"
MIX = SHARED / "fixtures" / "reference" / "mix1200.npy"

# BiLAF with a quick stage 1, so the tests stay fast
FAST = ["--core-param", "max_iter=30"]


def blobs(n=240, d=8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(k, d))
    y = np.arange(n) % k
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture
def pool(tmp_path):
    """A .npy pool with ids (<name>_files.txt) and labels beside it."""
    X, y = blobs()
    f = tmp_path / "pool_features.npy"
    np.save(f, X)
    (tmp_path / "pool_files.txt").write_text("".join(f"img/{i:04d}.jpg\n" for i in range(len(X))))
    np.save(tmp_path / "pool_labels.npy", y)
    return f


def run(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def files_in(d):
    return sorted(p.name for p in Path(d).iterdir())


# -- budgets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [("1%", 0.01), ("0.01", 0.01), ("500", 500), ("100%", 1.0), ("2.5%", 0.025),
                                       ("1e-2", 0.01)])
def test_parse_budget(text, want):
    assert parse_budget(text) == pytest.approx(want)
    assert type(parse_budget(text)) is type(want)


@pytest.mark.parametrize("text", ["abc", "0", "-3", "0%", "150%", "1.5", "nan", "", "inf", "1e3", "1.0"])
def test_parse_budget_rejects(text):
    with pytest.raises(ValueError, match="bad budget"):
        parse_budget(text)


# -- output formats -------------------------------------------------------------------------------

def test_all_formats_agree(pool, tmp_path, capsys):
    outs = ["s.json", "s.csv", "s.parquet", "s.labelstudio.json", "s.txt"]
    rc, _, err = run(["select", pool, "-b", "5%", "--seed", "1", *FAST, "--path-prefix", "/data/",
                      *sum((["-o", tmp_path / o] for o in outs), [])], capsys)
    assert rc == 0, err
    assert "12 of 240 samples with bilaf" in err
    idx = json.loads((tmp_path / "s.json").read_text())
    assert isinstance(idx, list) and all(isinstance(i, int) for i in idx) and len(idx) == 12
    assert len(set(idx)) == 12

    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(rows[0]) == ["rank", "index", "id", "path", "role", "pseudo_class", "score", "opponent_class"]
    assert [int(r["index"]) for r in rows] == idx
    assert [int(r["rank"]) for r in rows] == list(range(12))
    assert rows[0]["id"] == f"img/{idx[0]:04d}.jpg" and rows[0]["path"] == f"/data/img/{idx[0]:04d}.jpg"
    roles = {r["role"] for r in rows}
    assert roles == {"core", "boundary"}
    for r in rows:
        if r["role"] == "core":
            assert r["score"] == "" and r["opponent_class"] == "-1"
        else:
            assert np.isfinite(float(r["score"])) and int(r["opponent_class"]) >= 0
            assert int(r["opponent_class"]) != int(r["pseudo_class"])

    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "s.parquet").to_pydict()
    assert t["index"] == idx and t["role"] == [r["role"] for r in rows]
    assert t["pseudo_class"] == [int(r["pseudo_class"]) for r in rows]

    tasks = json.loads((tmp_path / "s.labelstudio.json").read_text())
    assert [t["data"]["bilaf_index"] for t in tasks] == idx
    assert tasks[0]["data"]["image"] == f"/data/img/{idx[0]:04d}.jpg"
    for task, r in zip(tasks, rows):
        # one prediction per task; its score is the pick's priority, the raw score stays in data
        (pred,) = task["predictions"]
        assert pred["score"] == 1 - int(r["rank"]) / 12 and pred["result"] == []
        if r["score"]:
            assert task["data"]["bilaf_score"] == pytest.approx(float(r["score"]))
        else:
            assert task["data"]["bilaf_score"] is None
        assert task["data"]["bilaf_role"] == r["role"]

    paths = (tmp_path / "s.txt").read_text().splitlines()
    assert paths == [f"/data/img/{i:04d}.jpg" for i in idx]
    # one manifest for the one stem; files get ordinary permissions
    assert (tmp_path / "s.csv.manifest.json").exists()
    assert os.stat(tmp_path / "s.csv").st_mode & 0o044  # readable by others (mkstemp makes 0600)
    # every format reads back to the same indices
    ids = [f"img/{i:04d}.jpg" for i in range(240)]
    for o in outs:
        if o == "s.txt":  # paths with a prefix are not ids of the pool
            continue
        got = read_selection(tmp_path / o, ids=ids)["indices"]
        assert got.tolist() == idx, o


def test_paths_list_without_prefix_reads_back(pool, tmp_path, capsys):
    rc, _, err = run(["select", pool, "-b", "7", "-m", "kcenter", "-o", tmp_path / "p.txt"], capsys)
    assert rc == 0, err
    ids = (tmp_path / "pool_files.txt").read_text().splitlines()
    got = read_selection(tmp_path / "p.txt", ids=ids)["indices"]
    assert len(got) == 7 and (tmp_path / "p.txt").read_text().startswith("img/")


def test_format_flag_and_suffix_rules(pool, tmp_path, capsys):
    rc, _, err = run(["select", pool, "-b", "5", "-m", "random", "-o", tmp_path / "tasks.out",
                      "--format", "labelstudio"], capsys)
    assert rc == 0, err
    assert "data" in json.loads((tmp_path / "tasks.out").read_text())[0]
    assert format_for_path("a.labelstudio.json") == "labelstudio"
    assert format_for_path("a.JSON") == "json" and format_for_path("a.pq") == "parquet"
    with pytest.raises(ValueError):
        format_for_path("a.xlsx")


@pytest.mark.parametrize("method,extra", [("random", []), ("kcenter", []), ("kmeans", ["--n-init", "2"]),
                                          ("activeft", ["--n-iter", "20", "--lr", "0.01"]),
                                          ("bilaf", ["--n-cores", "3", "--core-selector", "kmeans",
                                                     "--denoise", "density", "--process", "oneshot",
                                                     "--opponent", "min", "--opponent-penalty", "1.0",
                                                     "--remove-fraction", "0.2", "--density-k", "5",
                                                     "--criterion", "distance", "--normalize",
                                                     "--dtype", "float64", "--memory-budget", "64MB"])])
def test_every_method_and_its_options(pool, tmp_path, capsys, method, extra):
    out = tmp_path / f"{method}.json"
    rc, _, err = run(["select", pool, "-b", "10", "-m", method, *extra, "-o", out], capsys)
    assert rc == 0, err
    assert len(set(json.loads(out.read_text()))) == 10
    man = read_manifest(manifest_path_for(out))
    assert man["method"] == method and man["seed"] == 0
    if method == "bilaf":
        p = man["params"]
        assert (p["n_cores"], p["core_selector"], p["denoise"], p["process"], p["opponent"]) == \
            (3, "kmeans", "density", "oneshot", "min")
        assert (p["opponent_penalty"], p["remove_fraction"], p["density_k"], p["criterion"]) == \
            (1.0, 0.2, 5, "distance")
        assert p["normalize"] is True and p["dtype"] == "float64" and p["memory_budget"] == "64MB"
    if method == "activeft":
        assert man["params"]["n_iter"] == 20 and man["params"]["lr"] == 0.01


def test_generic_param_and_given_cores(pool, tmp_path, capsys):
    cores = tmp_path / "cores.txt"
    cores.write_text("3\n50\n101\n")
    out = tmp_path / "g.csv"
    rc, _, err = run(["select", pool, "-b", "12", "--cores", cores, "--param", "cycle_fraction=0.2",
                      "-o", out], capsys)
    assert rc == 0, err
    rows = list(csv.DictReader(open(out)))
    assert sorted(int(r["index"]) for r in rows if r["role"] == "core") == [3, 50, 101]
    man = read_manifest(manifest_path_for(out))
    assert man["params"]["cores"] == [3, 50, 101] and man["params"]["cycle_fraction"] == 0.2
    # the older spelling, a file given to --core-selector, still means the same cores
    out2 = tmp_path / "g2.csv"
    rc, _, err = run(["select", pool, "-b", "12", "--core-selector", cores, "--param", "cycle_fraction=0.2",
                      "-o", out2], capsys)
    assert rc == 0, err
    assert [r["index"] for r in csv.DictReader(open(out2))] == [r["index"] for r in rows]


def test_help_explains_every_option_with_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["select", "--help"])
    assert e.value.code == 0
    raw = capsys.readouterr().out.split("positional arguments:", 1)[1]
    blocks = []  # the help of each option, whitespace collapsed
    for line in raw.splitlines():
        if line.startswith("  -"):
            blocks.append(line)
        elif line.startswith("      ") and blocks:
            blocks[-1] += " " + line.strip()

    def help_of(flag):
        hits = [" ".join(b.split()) for b in blocks if re.match(rf"\s+(\S+ \S*, )?{re.escape(flag)}([ ,]|$)", b)]
        assert hits, flag
        return hits[0]

    for flag, default in [("--budget", None), ("--method", "default: bilaf"), ("--seed", "default: 0"),
                          ("--n-cores", "default: auto"), ("--core-selector", "default: auto"),
                          ("--denoise", "default: idc"), ("--criterion", "default: boundary"),
                          ("--process", "default: iterative"), ("--opponent", "default: nearest"),
                          ("--opponent-penalty", "default: 1.1"), ("--remove-fraction", "default: 0.1"),
                          ("--cycle-fraction", "default: 0.1"), ("--density-k", "default: 10"),
                          ("--normalize", "default: off"), ("--dtype", "default: float32"),
                          ("--device", "default: cpu"), ("--memory-budget", "default: 1GB"),
                          ("--n-iter", "default: none"), ("--algorithm", "default: auto"),
                          ("--max-iter", "default: kmeans: 100; typiclust: none"),  # methods that differ: each
                          ("--max-clusters", "default: 500"), ("--normalize", "typiclust: on, probcover: on"),
                          ("--labeled", "default: none"), ("--manifest", None), ("--param", None)]:
        text = help_of(flag)
        if default:
            assert default in text, (flag, text)


# -- manifest ------------------------------------------------------------------------------------

def test_manifest_contents_and_round_trip(pool, tmp_path, capsys):
    out = tmp_path / "sel.csv"
    rc, _, err = run(["select", pool, "-b", "12", "--seed", "7", *FAST, "-o", out, "-o", tmp_path / "sel.json"],
                     capsys)
    assert rc == 0, err
    man = read_manifest(tmp_path / "sel.json.manifest.json")
    assert man["features"]["sha256"] == features_sha256(np.load(pool))
    assert man["features"]["shape"] == [240, 8] and man["features"]["dtype"] == "float32"
    assert man["pool_size"] == 240 and man["seed"] == 7 and man["budget"] == {"requested": "12", "count": 12}
    assert set(man["versions"]) >= {"bilaf", "numpy", "torch", "scikit-learn", "python"}
    assert {"load features", "hash features", "selection", "write outputs", "total"} <= set(man["timings"])
    assert {"cores", "assignment", "denoising"} <= set(man["timings"]["selection"])
    assert man["params"]["core_params"] == {"max_iter": 30}
    # what "auto" resolved to is recorded beside the parameters as given
    assert man["params"]["core_selector"] == "auto"
    derived = man["result"]["derived"]
    assert derived["core_selector_used"] == "kmeans:normalize=True" and derived["n_cores_used"] >= 1
    pseudo = decode_labels(man["pseudo_labels"])
    assert pseudo.shape == (240,) and pseudo.min() >= -1
    idx = json.loads((tmp_path / "sel.json").read_text())
    assert set(man["result"]["core_indices"]) <= set(idx)

    # check mode: same picks -> exit 0
    rc, _, err = run(["select", "--manifest", tmp_path / "sel.json.manifest.json"], capsys)
    assert rc == 0 and "identical" in err
    # reproduce to a file: same bytes
    rc, _, err = run(["select", "--manifest", tmp_path / "sel.json.manifest.json", "-o", tmp_path / "again.json"],
                     capsys)
    assert rc == 0, err
    assert (tmp_path / "again.json").read_text() == (tmp_path / "sel.json").read_text()
    assert read_manifest(tmp_path / "again.json.manifest.json")["reproduced_from"].endswith("sel.json.manifest.json")
    # a changed seed is reported as different, exit 1
    rc, _, err = run(["select", "--manifest", tmp_path / "sel.json.manifest.json", "--seed", "8"], capsys)
    assert rc == 1 and "DIFFER" in err
    # the library form
    res, same = reproduce(tmp_path / "sel.json.manifest.json")
    assert same and res.indices.tolist() == idx


def test_manifest_refuses_other_features(pool, tmp_path, capsys):
    out = tmp_path / "sel.json"
    assert run(["select", pool, "-b", "5", "-m", "kcenter", "-o", out], capsys)[0] == 0
    other = tmp_path / "other.npy"
    X = np.load(pool)
    X[0, 0] += 1
    np.save(other, X)
    rc, _, err = run(["select", other, "--manifest", tmp_path / "sel.json.manifest.json"], capsys)
    assert rc == 2 and "differ from the manifest" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(["select", other, "--manifest", tmp_path / "sel.json.manifest.json", "--ignore-hash"], capsys)
    assert rc in (0, 1)


def test_manifest_finds_moved_features(pool, tmp_path, capsys):
    out = tmp_path / "sel.json"
    assert run(["select", pool, "-b", "5", "-m", "kcenter", "-o", out], capsys)[0] == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in ("pool_features.npy", "pool_files.txt", "pool_labels.npy", "sel.json", "sel.json.manifest.json"):
        os.replace(tmp_path / f, moved / f)
    rc, _, err = run(["select", "--manifest", moved / "sel.json.manifest.json"], capsys)
    assert rc == 0 and "identical" in err


def test_label_encoding_round_trip():
    a = np.array([-1, 0, 5, 5, 2**20, -1])
    assert decode_labels(encode_labels(a)).tolist() == a.tolist()
    assert encode_labels(None) is None and decode_labels(None) is None


def test_features_hash_streams_chunks():
    X = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float16)
    import hashlib

    assert features_sha256(X, chunk_bytes=100) == hashlib.sha256(X.tobytes()).hexdigest()
    assert features_sha256(X) != features_sha256(X[:-1])


# -- warm start -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bilaf", "kcenter", "random"])
def test_warm_start(pool, tmp_path, capsys, method):
    lab = tmp_path / "labeled.txt"
    lab.write_text("5\n17\n230\n")
    out = tmp_path / "w.csv"
    extra = FAST if method == "bilaf" else []
    rc, _, err = run(["select", pool, "-b", "15", "-m", method, *extra, "--labeled", lab, "-o", out], capsys)
    assert rc == 0, err
    assert "3 already labeled" in err
    rows = list(csv.DictReader(open(out)))
    idx = [int(r["index"]) for r in rows]
    assert len(idx) == 15 and len(set(idx)) == 15
    assert idx[:3] == [5, 17, 230]
    assert [r["role"] for r in rows[:3]] == ["labeled"] * 3
    assert "labeled" not in {r["role"] for r in rows[3:]}
    man = read_manifest(tmp_path / "w.csv.manifest.json")
    assert man["labeled"]["indices"] == [5, 17, 230]
    # the manifest reproduces the warm start too
    rc, _, err = run(["select", "--manifest", tmp_path / "w.csv.manifest.json"], capsys)
    assert rc == 0 and "identical" in err


def test_warm_start_by_path_and_from_a_selection_file(pool, tmp_path, capsys):
    lab = tmp_path / "labeled.txt"
    lab.write_text("img/0009.jpg\nimg/0100.jpg\n")
    rc, _, err = run(["select", pool, "-b", "6", "-m", "kcenter", "--labeled", lab, "-o", tmp_path / "a.csv"],
                     capsys)
    assert rc == 0, err
    first = [int(r["index"]) for r in csv.DictReader(open(tmp_path / "a.csv"))]
    assert first[:2] == [9, 100]
    # the next round: everything chosen so far counts as labeled
    rc, _, err = run(["select", pool, "-b", "10", "-m", "kcenter", "--labeled", tmp_path / "a.csv",
                      "-o", tmp_path / "b.json"], capsys)
    assert rc == 0, err
    second = json.loads((tmp_path / "b.json").read_text())
    assert second[:6] == first and len(set(second)) == 10


# -- bad input ------------------------------------------------------------------------------------

def _bad_cases(tmp_path, pool):
    nan = tmp_path / "nan.npy"
    X = np.load(pool).copy()
    X[7, 2] = np.nan
    np.save(nan, X)
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "garbage.npy").write_text("not an array")
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    (tmp_path / "lab_range.txt").write_text("1\n2\n999\n")
    (tmp_path / "lab_dup.txt").write_text("4\n4\n")
    (tmp_path / "lab_neg.json").write_text("[1, -2]")
    (tmp_path / "lab_unknown.txt").write_text("img/0001.jpg\nnot/a/file.jpg\n")
    (tmp_path / "lab_float.json").write_text("[1.5]")
    cores_file = tmp_path / "cores.txt"
    cores_file.write_text("1\n5\n9\n")
    o = ["-o", tmp_path / "out.csv"]
    return {
        "missing file": ["select", tmp_path / "nope.npy", "-b", "5", *o],
        "folder": ["select", tmp_path, "-b", "5", *o],
        "wrong type": ["select", tmp_path / "pool_files.txt", "-b", "5", *o],
        "garbage npy": ["select", tmp_path / "garbage.npy", "-b", "5", *o],
        "strings": ["select", tmp_path / "strings.npy", "-b", "1", *o],
        "1-D": ["select", tmp_path / "flat.npy", "-b", "1", *o],
        "budget text": ["select", pool, "-b", "lots", *o],
        "budget zero": ["select", pool, "-b", "0", *o],
        "budget too big": ["select", pool, "-b", "241", *o],
        "budget percent": ["select", pool, "-b", "101%", *o],
        "no budget": ["select", pool, *o],
        "unknown method": ["select", pool, "-b", "5", "-m", "magic", *o],
        "unknown option": ["select", pool, "-b", "5", "--magic", "3", *o],
        "unknown param": ["select", pool, "-b", "5", "--param", "magic=3", *o],
        "option of another method": ["select", pool, "-b", "5", "-m", "kmeans", "--n-cores", "3", *o],
        "bad param syntax": ["select", pool, "-b", "5", "--param", "magic", *o],
        "bad option value": ["select", pool, "-b", "5", "--remove-fraction", "1.5", *o],
        "bad option type": ["select", pool, "-b", "5", "--density-k", "ten", *o],
        "bad choice": ["select", pool, "-b", "5", "--denoise", "magic", *o],
        "bad core file": ["select", pool, "-b", "5", "--cores", "nowhere.txt", *o],
        "cores and a core selector": ["select", pool, "-b", "5", "--cores", cores_file, "--core-selector", "kmeans",
                                      *o],
        "cores and K": ["select", pool, "-b", "5", "--cores", cores_file, "-k", "3", *o],
        "NaN features": ["select", nan, "-b", "5", *o],
        "labeled out of range": ["select", pool, "-b", "5", "--labeled", tmp_path / "lab_range.txt", *o],
        "labeled repeats": ["select", pool, "-b", "5", "--labeled", tmp_path / "lab_dup.txt", *o],
        "labeled negative": ["select", pool, "-b", "5", "--labeled", tmp_path / "lab_neg.json", *o],
        "labeled unknown path": ["select", pool, "-b", "5", "--labeled", tmp_path / "lab_unknown.txt", *o],
        "labeled float": ["select", pool, "-b", "5", "--labeled", tmp_path / "lab_float.json", *o],
        "labeled missing": ["select", pool, "-b", "5", "--labeled", tmp_path / "none.txt", *o],
        "labeled over budget": ["select", pool, "-b", "2", "--labeled", tmp_path / "lab_range.txt", *o],
        "unknown out suffix": ["select", pool, "-b", "5", "-o", tmp_path / "out.xlsx"],
        "out folder missing": ["select", pool, "-b", "5", "-o", tmp_path / "no" / "out.csv"],
        "no out": ["select", pool, "-b", "5"],
        "manifest missing": ["select", "--manifest", tmp_path / "none.manifest.json"],
        "manifest not json": ["select", "--manifest", tmp_path / "pool_files.txt"],
        "memory budget": ["select", pool, "-b", "5", "--memory-budget", "lots", *o],
    }


def test_bad_input_exit_2_one_line_no_output(pool, tmp_path, capsys):
    cases = _bad_cases(tmp_path, pool)
    before = files_in(tmp_path)
    for name, args in cases.items():
        rc, out, err = run(args, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2, (name, rc, err)
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith("bilaf select: error: "), (name, err)
        assert "Traceback" not in err and out == "", name
        assert files_in(tmp_path) == before, (name, files_in(tmp_path))


def test_bad_input_real_process(tmp_path):
    """The installed command: exit status 2 and one line on stderr."""
    np.save(tmp_path / "x.npy", np.full((10, 3), np.nan, dtype=np.float32))
    p = subprocess.run([sys.executable, "-m", "bilaf", "select", str(tmp_path / "x.npy"), "-b", "2", "-o",
                        str(tmp_path / "s.csv")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "NaN" in p.stderr
    assert not (tmp_path / "s.csv").exists()


# -- atomic writes -------------------------------------------------------------------------------

def test_outputs_all_or_none(tmp_path, monkeypatch):
    import bilaf.writers as w

    res = SelectionResult(indices=np.array([3, 1, 2]), n_samples=10)
    keep = tmp_path / "a.json"
    keep.write_text("old")

    def boom(*a, **k):
        (a[2]).write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setitem(w._WRITERS, "csv", boom)
    with pytest.raises(RuntimeError):
        write_outputs(res, [tmp_path / "a.json", tmp_path / "b.csv", tmp_path / "c.txt"])
    assert files_in(tmp_path) == ["a.json"] and keep.read_text() == "old"
    monkeypatch.undo()
    write_selection(res, tmp_path / "a.json")
    assert json.loads(keep.read_text()) == [3, 1, 2]
    with pytest.raises(ValueError, match="given twice"):
        write_outputs(res, [tmp_path / "d.csv", tmp_path / "d.csv"])


def test_read_selection_published_format(tmp_path):
    (tmp_path / "plain.json").write_text("[4, 2, 9]")
    assert read_selection(tmp_path / "plain.json")["indices"].tolist() == [4, 2, 9]
    np.save(tmp_path / "i.npy", np.array([1, 2]))
    assert read_selection(tmp_path / "i.npy")["indices"].tolist() == [1, 2]
    with pytest.raises(ValueError):
        read_selection(_write(tmp_path, "x.json", "{"))
    with pytest.raises(ValueError, match="no ids"):
        read_selection(_write(tmp_path, "names.txt", "cat.jpg\n"))


def _write(d, name, text):
    (d / name).write_text(text)
    return d / name


# -- real data ------------------------------------------------------------------------------------

@pytest.mark.skipif(not MIX.exists(), reason="shared fixtures not available")
def test_fixture_pool_end_to_end(tmp_path, capsys):
    rc, _, err = run(["select", MIX, "-b", "2%", *FAST, "-o", tmp_path / "m.parquet"], capsys)
    assert rc == 0, err
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "m.parquet").to_pydict()
    assert len(t["index"]) == 24 and t["id"] == [str(i) for i in t["index"]] and set(t["path"]) == {""}


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR / "train_features.npy").exists(), reason="shared CIFAR-10 features not available")
def test_cifar10_slice_end_to_end(tmp_path, capsys):
    """5,000 real CIFAR-10 rows (float16, with file names): select 1% and write every format."""
    X = np.load(CIFAR / "train_features.npy", mmap_mode="r")
    files = (CIFAR / "train_files.txt").read_text().splitlines()
    rows = np.arange(0, 50000, 10)  # every class
    np.save(tmp_path / "c_features.npy", np.asarray(X[rows]))
    (tmp_path / "c_files.txt").write_text("\n".join(files[i] for i in rows) + "\n")
    np.save(tmp_path / "c_labels.npy", np.load(CIFAR / "train_labels.npy")[rows])
    rc, _, err = run(["select", tmp_path / "c_features.npy", "-b", "1%", *FAST, "-o", tmp_path / "c.csv",
                      "-o", tmp_path / "c.labelstudio.json", "-o", tmp_path / "c.txt"], capsys)
    assert rc == 0, err
    recs = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert len(recs) == 50 and recs[0]["path"].startswith("train/") and recs[0]["path"].endswith(".jpg")
    man = read_manifest(tmp_path / "c.csv.manifest.json")
    assert man["features"]["dtype"] == "float16"
    assert man["result"]["n_cores"] >= 10 and man["result"]["n_cores"] + man["result"]["n_boundary"] == 50
    assert {r["role"] for r in recs} <= {"core", "boundary"}


def test_every_api_option_has_a_flag(capsys):
    """Each constructor option of each installed selector is a flag of `bilaf select`."""
    from bilaf.selectors import METHODS, get_selector_class

    with pytest.raises(SystemExit):
        main(["select", "--help"])
    text = capsys.readouterr().out
    special = {"random_state": "--seed", "verbose": "--progress", "core_params": "--core-param"}
    for m in METHODS:
        try:
            cls = get_selector_class(m)
        except ImportError:
            continue
        for name in cls._param_names():
            flag = special.get(name, "--" + name.replace("_", "-"))
            assert re.search(rf"{re.escape(flag)}\b", text), (m, name)


def test_labelstudio_text_pool_holds_the_texts(tmp_path, capsys):
    """Features of a text file (as bilaf embed writes them): Label Studio tasks carry the texts."""
    from bilaf.features import FeatureSet

    lines = [f"{i % 3} question number {i} ?" for i in range(60)]
    src = tmp_path / "q.txt"
    src.write_text("\n".join(lines[:30]) + "\n\n" + "\n".join(lines[30:]) + "\n")  # an empty line in between
    line_no = list(range(1, 31)) + list(range(32, 62))
    X, _ = blobs(n=60)
    fs = FeatureSet(features=X, ids=[f"q.txt:{n}" for n in line_no], labels=np.arange(60) % 3,
                    meta={"kind": "text", "source": f"text:{src}"})
    fs.save(tmp_path / "q.npz")
    rc, _, err = run(["select", tmp_path / "q.npz", "-b", "8", "-m", "kcenter", "-o", tmp_path / "t.labelstudio.json",
                      "-o", tmp_path / "t.csv"], capsys)
    assert rc == 0, err
    tasks = json.loads((tmp_path / "t.labelstudio.json").read_text())
    for t in tasks:
        i = t["data"]["bilaf_index"]
        assert t["data"]["text"] == f"question number {i} ?"
        assert t["data"]["bilaf_id"] == f"q.txt:{line_no[i]}"


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_reads_npz_and_parquet_with_ids(tmp_path, capsys, suffix):
    from bilaf.features import FeatureSet

    X, y = blobs(n=90)
    FeatureSet(features=X, ids=[f"dir/{i}.png" for i in range(90)], labels=y).save(tmp_path / f"f{suffix}")
    rc, _, err = run(["select", tmp_path / f"f{suffix}", "-b", "6", "-m", "kcenter", "-o", tmp_path / "s.csv",
                      "-o", tmp_path / "s.txt"], capsys)
    assert rc == 0, err
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["path"] for r in rows] == [f"dir/{r['index']}.png" for r in rows]
    assert (tmp_path / "s.txt").read_text().splitlines() == [r["path"] for r in rows]


def test_progress_flag(pool, tmp_path, capsys):
    rc, _, err = run(["select", pool, "-b", "10", "--progress", *FAST, "-o", tmp_path / "s.json"], capsys)
    assert rc == 0, err
    man = read_manifest(tmp_path / "s.json.manifest.json")
    assert man["params"]["verbose"] is True
    rc, _, err = run(["select", pool, "-b", "10", "-q", "-m", "random", "-o", tmp_path / "r.json"], capsys)
    assert rc == 0 and err == ""


def test_option_of_another_method_is_refused_naming_real_flags(pool, tmp_path, capsys):
    out = tmp_path / "sel.csv"
    rc, _, err = run(["select", pool, "-b", "10", "-m", "probcover", "--n-init", "2", "-o", out], capsys)
    assert rc == 2 and "option --n-init does not apply to method 'probcover'" in err
    listed = err.split("its options:", 1)[1]
    assert "--delta" in listed and "--progress" in listed and "--verbose" not in listed
    rc, _, err = run(["select", pool, "-b", "10", "-m", "kmeans", "--density-k", "3", "-o", out], capsys)
    assert rc == 2 and "--density-k does not apply to method 'kmeans'" in err and "--n-init" in err
    assert not out.exists()


def test_reproduce_is_what_select_manifest_runs(pool, tmp_path, capsys, monkeypatch):
    """`select --manifest` replays through manifest.reproduce: the recorded constraints, warm start and
    parameters, or the command line's replacements."""
    import bilaf
    import bilaf.manifest as manifest_mod
    from bilaf.manifest import recorded_constraints, recorded_labeled, reproduce

    (tmp_path / "ex.txt").write_text("0\n1\n2\n3\n")
    (tmp_path / "lab.txt").write_text("10\n11\n")
    out = tmp_path / "s.csv"
    rc, _, err = run(["select", pool, "-b", "12", "-k", "4", "--exclude", tmp_path / "ex.txt", "--labeled",
                      tmp_path / "lab.txt", "--seed", "3", "-o", out], capsys)
    assert rc == 0, err
    man = read_manifest(manifest_path_for(out))
    assert recorded_constraints(man)["exclude"].tolist() == [0, 1, 2, 3]
    assert recorded_labeled(man).tolist() == [10, 11]

    res, same = reproduce(man)
    assert same and not set(res.indices.tolist()) & {0, 1, 2, 3} and {10, 11} <= set(res.indices.tolist())
    # the same method handed in as a selector: the same picks
    res2, same2 = reproduce(man, selector=bilaf.BiLAF(n_cores=4, random_state=3))
    assert same2 and res2.indices.tolist() == res.indices.tolist()
    # a replaced constraint is used, not the recorded one
    res3, _ = reproduce(man, exclude=[int(i) for i in res.indices[2:4] if i not in (10, 11)])
    assert not set(res3.indices.tolist()) & set(int(i) for i in res.indices[2:4] if i not in (10, 11))
    with pytest.raises(TypeError, match="either a selector or parameter overrides"):
        reproduce(man, selector=bilaf.BiLAF(), density_k=3)

    calls = []
    real = manifest_mod.reproduce
    monkeypatch.setattr(manifest_mod, "reproduce", lambda *a, **k: calls.append(k) or real(*a, **k))
    rc, _, err = run(["select", "--manifest", manifest_path_for(out)], capsys)
    assert rc == 0 and "identical" in err and len(calls) == 1
    rc, _, err = run(["select", "--manifest", manifest_path_for(out), "-b", "13", "-o", tmp_path / "t.csv"], capsys)
    assert rc == 0 and "DIFFER" in err and calls[-1]["budget"] == 13
