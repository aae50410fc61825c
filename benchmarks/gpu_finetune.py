"""Full-network finetuning on a GPU: the paper's recipe (224 px, every layer, augmentation) for a small grid.

Selection methods x seeds on a CIFAR-10-style archive (``train/<class>/<file>`` and ``test/<class>/<file>``,
e.g. ``cifar10-jpg.tar.gz``), with EfficientNet-Lite0 (``bilaf[images]``):

1. decode the train pool and the test set from the archive (``bilaf``'s own archive reader), keep them as uint8;
2. embed the pool on the device (images resized to 224 px with torch's bicubic, scaled to [0, 1] and normalised
   as (x - 0.5) / 0.5, mean over space of the last feature map: the preprocessing of ``bilaf embed``, except that
   the resize runs in torch rather than PIL, so the features differ slightly from a CPU ``bilaf embed``);
3. every method selects the budget from those features, once per seed (``bilaf.select``);
4. every selection is finetuned with :func:`bilaf.evaluation.finetune` (SGD momentum 0.9, lr 3e-3, weight decay
   1e-4, warm-up then cosine, label smoothing 0.1, random-resized crop + flip, gradient clipping 2.0, batch 64;
   all layers train; 224 px) and scored on the test set. The seed fixes the selection *and* the finetune's own
   randomness (head initialisation, batches, augmentation), identically for every method, so differences are
   paired by seed.

Step count: ``--steps auto`` (default) times two short finetunes after the selections (10 and 40 steps: the slope is
the time per step, the intercept the copy + test-set scoring), then gives every cell the steps that fit the rest of
``--minutes`` (rounded down to a multiple of 50, at most ``--max-steps``, 1,000 as in the paper). Every cell uses the
same count, fixed before any method is compared. One JSON line per finished cell goes to ``gpu_finetune.jsonl``, so a
run stopped by a time limit keeps what it finished; ``gpu_finetune.md`` gets per-method means and, per method, the
paired difference of default BiLAF minus that method (mean over seeds, 95% Student t interval,
``bilaf.stats.paired_table``).

Run on the device machine: see ``benchmarks/run_gpu.md``. A CPU check of the same code path (tiny settings, about a
minute)::

    PYTHONPATH=src python benchmarks/gpu_finetune.py --smoke --archive ../shared/data/cifar10/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_OUT = Path(__file__).resolve().parents[1] / "out" / "gpu_finetune_smoke"
DEFAULT_METHODS = "random,kmeans:normalize=true,activeft,bilaf,bilaf:n_cores=50,maxherding"
REFERENCE = "bilaf"
FULL = {"image_px": 224, "steps": "auto", "pool": 50_000, "test_rows": 10_000, "seeds": [0, 1],
        "methods": DEFAULT_METHODS, "budget": "500", "batch_size": 64}
SMOKE = {"image_px": 64, "steps": "5", "pool": 200, "test_rows": 100, "seeds": [0], "methods": "random,bilaf",
         "budget": "20", "batch_size": 16}


def fail(msg: str) -> None:
    print(f"gpu_finetune.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def decode_split(archive: Path, split: str, raw_px: int, rows: int, seed: int
                 ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """uint8 images (n, raw_px, raw_px, 3), labels and class names of ``rows`` images of one split of the archive.

    All of the split when ``rows`` reaches its size, else a seeded subsample (the same for every method), in
    source order.
    """
    from PIL import Image

    from bilaf.features.inputs import open_image_source

    src = open_image_source(archive, split=split)
    if src.labels is None or not len(src.ids):
        fail(f"{archive} has no {split}/<class>/<file> images")
    n = len(src.ids)
    keep = np.arange(n) if rows >= n else np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))
    slot = {int(p): i for i, p in enumerate(keep)}
    images = np.empty((len(keep), raw_px, raw_px, 3), dtype=np.uint8)
    try:
        for pos, data in src.iter_items():
            if pos not in slot:
                continue
            if isinstance(data, Exception):
                fail(f"cannot read {src.ids[pos]} from {archive}: {data}")
            im = Image.open(io.BytesIO(data)).convert("RGB")
            if im.size != (raw_px, raw_px):
                im = im.resize((raw_px, raw_px), Image.BICUBIC)
            images[slot[pos]] = np.asarray(im)
    finally:
        src.close()
    return images, np.asarray(src.labels, dtype=np.int64)[keep], list(src.classes)


def make_transform(px: int):
    """uint8-scaled [0, 1] batch (B, 3, h, w) -> the backbone's input: bicubic to px, then (x - 0.5) / 0.5."""
    def tf(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != px or x.shape[-2] != px:
            x = torch.nn.functional.interpolate(x, size=(px, px), mode="bicubic", align_corners=False).clamp_(0, 1)
        return (x - 0.5) / 0.5
    return tf


def embed(module: torch.nn.Module, images: np.ndarray, tf, device: torch.device, batch: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(images[s:s + batch]).to(device).permute(0, 3, 1, 2).float().div_(255)
            out.append(module(tf(x)).float().cpu().numpy())
    return np.concatenate(out)


def emit(path: Path, rec: Dict[str, Any]) -> None:
    print(json.dumps(rec), flush=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


def choose_steps(times: Sequence[Tuple[int, float]], seconds_per_cell: float, max_steps: int) -> int:
    """Steps that fit ``seconds_per_cell`` given two timed finetunes ``(steps, seconds)`` (a line through both)."""
    (s1, t1), (s2, t2) = times
    per_step = max((t2 - t1) / (s2 - s1), 1e-6)
    fixed = max(t1 - s1 * per_step, 0.0)
    steps = int((seconds_per_cell - fixed) / per_step)
    unit = 50 if steps >= 100 else 1
    return int(min(max_steps, max(1, steps // unit * unit)))


def markdown(runs: List[Dict[str, Any]], head: Dict[str, Any], command: str) -> str:
    from bilaf.stats import format_difference, paired_table

    methods = list(dict.fromkeys(r["method"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    title = "# Full-network finetuning on a GPU (paper's recipe)"
    if head["smoke"]:
        title += ": SMOKE RUN (tiny CPU settings; checks the code path, measures nothing)"
    lines = [title, "",
             f"Command: `{command}`", "",
             f"Device: {head['device']} (torch {head['torch']}); {head['pool']:,} pool images, "
             f"{head['test']:,} test images, budget {head['budget_count']} labels, {head['image_px']} px, "
             f"{head['steps']} steps of batch {head['batch_size']} (every layer; SGD, warm-up + cosine, label "
             f"smoothing 0.1, random-resized crop + flip), seeds {seeds}. Steps chosen: {head['steps_how']}.", "",
             "## Test accuracy (%)", "",
             "| method | mean | per seed | select s | finetune s |", "|---|---|---|---|---|"]
    for m in methods:
        rs = sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"])
        acc = [100 * r["accuracy"] for r in rs]
        lines.append(f"| {m} | {np.mean(acc):.2f} | {', '.join(f'{a:.2f}' for a in acc)} | "
                     f"{np.mean([r['select_seconds'] for r in rs]):.1f} | "
                     f"{np.mean([r['finetune_seconds'] for r in rs]):.1f} |")
    lines += ["", f"## Paired differences: {REFERENCE} minus each method (points, 95% Student t CI over seeds)", ""]
    cells = [c for m in methods if m != REFERENCE for c in paired_table(runs, REFERENCE, m, by=("budget",))]
    if cells:
        lines += [f"| other method | seeds | {REFERENCE} | other | difference [95% CI] | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['reference']} | {c['n']} | {c['method_mean']:.2f} | {c['reference_mean']:.2f} | "
                  f"{format_difference(c['mean'], c['lo'], c['hi'], digits=2)} | {c['verdict']} |" for c in cells]
        lines.append("")
    else:
        lines += [f"(no method paired with {REFERENCE}: it was not in the grid or failed)", ""]
    lines += [f"With {len(seeds)} seed(s) an interval is wide; a 'tie' says the seeds do not separate the methods.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archive", type=Path, required=True, help="tar/zip/folder with train/<class>/ and test/<class>/")
    p.add_argument("--out-dir", type=Path, default=None, help="where gpu_finetune.jsonl / .md go "
                   "(default benchmarks/results; with --smoke out/gpu_finetune_smoke)")
    p.add_argument("--methods", help=f"comma-separated method specs (default {DEFAULT_METHODS})")
    p.add_argument("--budget", help="labels: a count, or a fraction of the pool (0.01); default 500")
    p.add_argument("--seeds", type=int, nargs="+", help="default 0 1")
    p.add_argument("--pool", type=int, help="pool rows (a seeded subsample when fewer than train); default 50000")
    p.add_argument("--test-rows", type=int, help="test images scored (a seeded subsample); default 10000")
    p.add_argument("--image-px", type=int, help="training / scoring resolution; default 224")
    p.add_argument("--raw-px", type=int, default=32, help="side the decoded images are stored at")
    p.add_argument("--steps", help="finetune steps per cell, or 'auto' (fit --minutes; the default)")
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, help="default 64 (the paper's)")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-time target of the whole run (--steps auto)")
    p.add_argument("--probe-steps", type=int, nargs=2, default=[10, 40], help="the two timed finetunes of --steps auto")
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true",
                   help="tiny CPU settings (for the options not given): " + json.dumps(SMOKE))
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    command = "python benchmarks/gpu_finetune.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for k, v in (SMOKE if args.smoke else FULL).items():  # the options not given
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.smoke:  # always the CPU
        args.device = "cpu"
    if not args.archive.exists():
        fail(f"--archive {args.archive} does not exist (see benchmarks/run_gpu.md for how it travels)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail("no CUDA GPU here: the full grid is for a GPU; run --smoke for the CPU check")
    if args.steps != "auto" and not (str(args.steps).isdigit() and int(args.steps) > 0):
        fail(f"--steps must be a positive count or 'auto', got {args.steps!r}")
    if not 0 < args.probe_steps[0] < args.probe_steps[1]:
        fail(f"--probe-steps must be two increasing positive counts, got {args.probe_steps}")
    warnings.simplefilter("ignore")
    import bilaf
    from bilaf.bench import parse_methods
    from bilaf.evaluation import finetune
    from bilaf.features.backbones.efficientnet import _effnet_module

    try:
        specs = parse_methods(args.methods)
    except ValueError as exc:
        fail(f"--methods: {exc}")
    try:
        budget: Any = float(args.budget) if "." in args.budget else int(args.budget)
    except ValueError:
        fail(f"--budget must be a count (500) or a fraction of the pool (0.01), got {args.budget!r}")
    try:
        module = _effnet_module()[0]
    except (ImportError, FileNotFoundError) as exc:
        fail(f"{exc} (on the GPU machine: carry them in .gpu_data/site, see benchmarks/run_gpu.md)")
    out_dir = args.out_dir or (SMOKE_OUT if args.smoke else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, md = out_dir / "gpu_finetune.jsonl", out_dir / "gpu_finetune.md"
    jsonl.write_text("")
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    t0 = time.perf_counter()
    train_img, train_y, classes = decode_split(args.archive, "train", args.raw_px, args.pool, 0)
    test_img, test_y, test_classes = decode_split(args.archive, "test", args.raw_px, args.test_rows, 1)
    if test_classes != classes:
        fail(f"train and test classes differ in {args.archive}: {classes} vs {test_classes}")
    decode_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    module = module.to(dev).eval()
    tf = make_transform(args.image_px)
    X = embed(module, train_img, tf, dev, 512 if dev.type == "cuda" else 32)
    embed_s = time.perf_counter() - t0
    emit(jsonl, {"event": "start", "device": name, "torch": torch.__version__, "pool": len(train_y),
                 "test": len(test_y), "classes": len(classes), "decode_s": round(decode_s, 1),
                 "embed_s": round(embed_s, 1), "image_px": args.image_px})

    picks: Dict[Tuple[str, int], Tuple[np.ndarray, float]] = {}
    for seed in args.seeds:
        for spec in specs:
            params = dict(spec.params)
            params.setdefault("device", args.device)
            t0 = time.perf_counter()
            try:
                res = bilaf.select(X, budget, method=spec.method, random_state=seed, **params)
            except Exception as exc:  # one failed method must not lose the grid
                emit(jsonl, {"event": "error", "method": spec.label, "seed": seed, "stage": "select",
                             "error": f"{type(exc).__name__}: {exc}"})
                continue
            picks[(spec.label, seed)] = (np.asarray(res.indices), time.perf_counter() - t0)
    if not picks:
        fail("every selection failed (see the error lines above)")
    n_label = len(next(iter(picks.values()))[0])

    def run_finetune(idx: np.ndarray, steps: int, seed: int) -> float:
        return finetune(module, train_img[idx], train_y[idx], test_img, test_y, n_classes=len(classes),
                        steps=steps, batch_size=args.batch_size, transform=tf, device=args.device,
                        random_state=seed)

    if args.steps == "auto":
        probe_idx = next(iter(picks.values()))[0]
        times = []
        run_finetune(probe_idx, args.probe_steps[0], 0)  # warm-up (cuDNN autotuning), not timed
        for s in args.probe_steps:
            t0 = time.perf_counter()
            run_finetune(probe_idx, s, 0)
            times.append((s, time.perf_counter() - t0))
        left = args.minutes * 60 - (time.perf_counter() - t_start)
        steps = choose_steps(times, 0.95 * left / len(picks), args.max_steps)
        how = (f"auto: probes {times[0][0]} / {times[1][0]} steps took {times[0][1]:.1f} / {times[1][1]:.1f} s, "
               f"{left:.0f} s left for {len(picks)} cells")
    else:
        steps, how = int(args.steps), "fixed (--steps)"
    head = {"event": "plan", "device": name, "torch": torch.__version__, "pool": len(train_y), "test": len(test_y),
            "budget_count": n_label, "image_px": args.image_px, "steps": steps, "batch_size": args.batch_size,
            "steps_how": how, "smoke": bool(args.smoke)}
    emit(jsonl, head)

    runs: List[Dict[str, Any]] = []
    for seed in args.seeds:
        for spec in specs:
            if (spec.label, seed) not in picks:
                continue
            idx, sel_s = picks[(spec.label, seed)]
            if time.perf_counter() - t_start > 1.1 * args.minutes * 60:  # keep what is done; never lose the table
                emit(jsonl, {"event": "skipped", "method": spec.label, "seed": seed, "why": "past --minutes"})
                continue
            t0 = time.perf_counter()
            try:
                acc = run_finetune(idx, steps, seed)
            except Exception as exc:
                emit(jsonl, {"event": "error", "method": spec.label, "seed": seed, "stage": "finetune",
                             "error": f"{type(exc).__name__}: {exc}"})
                continue
            rec = {"event": "cell", "method": spec.label, "budget": str(args.budget), "budget_count": len(idx),
                   "seed": seed, "protocol": "finetune-full", "accuracy": acc, "steps": steps,
                   "select_seconds": round(sel_s, 2), "finetune_seconds": round(time.perf_counter() - t0, 2),
                   "classes_picked": int(len(np.unique(train_y[idx])))}
            emit(jsonl, rec)
            runs.append(rec)
    emit(jsonl, {"event": "end", "wall_s": round(time.perf_counter() - t_start, 1)})
    if not runs:
        fail(f"no cell finished (see the error / skipped lines in {jsonl})")
    skipped = len(picks) - len(runs)
    md.write_text(markdown(runs, head, command)
                  + (f"{skipped} of {len(picks)} cells did not finish (failed or past --minutes: see {jsonl.name}).\n"
                     if skipped else "")
                  + f"Whole run: {time.perf_counter() - t_start:.0f} s wall (decode {decode_s:.0f} s, "
                    f"embed {embed_s:.0f} s).\n")
    print(f"wrote {jsonl} and {md}")


if __name__ == "__main__":
    main()
