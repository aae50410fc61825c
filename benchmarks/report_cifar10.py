"""The README's report screenshot, and the report's file size at 100 and 10,000 picks (CIFAR-10).

Builds a 5,000-row class-balanced subset of the shared CIFAR-10 EfficientNet-Lite0 features (a FeatureSet
whose recorded source is the shared JPEG archive, so no re-embedding), selects 2% with BiLAF (K=50, so
half the picks are boundary picks), writes the report, and times and sizes a 10,000-pick report on the
50,000-row training pool. Results: benchmarks/results/report_cifar10.md.

    PYTHONPATH=src python benchmarks/report_cifar10.py [--work DIR] [--screenshot docs/img/report_cifar10.png]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "cifar10"
if not SHARED.exists():
    SHARED = Path("/work/shared/data/cifar10")
RESULTS = ROOT / "benchmarks" / "results"


def bilaf(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bilaf", *args], check=True)
    return time.perf_counter() - t0


def browser():
    """Headless Chromium via Selenium, or None where either is missing."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return None
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1900", "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def open_seconds(drv, page: Path) -> str:
    """Seconds until the page's script has rendered it (the first gallery page), or '-' without a browser."""
    if drv is None:
        return "-"
    t0 = time.perf_counter()
    drv.get(page.resolve().as_uri())
    while drv.execute_script("return document.body && document.body.getAttribute('data-ready')") != "1":
        time.sleep(0.05)
    return f"{time.perf_counter() - t0:.1f}"


def subset(out: Path, n_per_class: int, seed: int = 0) -> Path:
    from bilaf.features import FeatureSet

    fs = FeatureSet.load(SHARED / "effnet-lite0" / "train_features.npy")
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(fs.labels == c), n_per_class, replace=False)
                                   for c in range(10)]))
    sub = FeatureSet(np.asarray(fs.features[rows], dtype=np.float32), ids=[fs.ids[i] for i in rows],
                     labels=fs.labels[rows], classes=fs.classes,
                     meta={"source": f"tar:{(SHARED / 'cifar10-jpg.tar.gz').resolve()}",
                           "backbone": "efficientnet_lite0", "note": f"{n_per_class} per class of the train split"})
    return sub.save(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/bilaf_report_cifar10")
    ap.add_argument("--screenshot", default=None, help="PNG to save a screenshot of the 100-pick report to")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    feats = subset(work / "cifar5k.npz", 500)
    drv = browser()
    lines = ["# `bilaf report` on CIFAR-10", "",
             f"Machine: {platform.machine()} {platform.processor() or ''}, 2-core shared box (other jobs running); "
             "command: `PYTHONPATH=src python benchmarks/report_cifar10.py`. Seconds to open: headless Chromium, "
             "from load until the first gallery page is drawn.", "",
             "| pool | picks (method) | thumbnails | seconds (select) | seconds (report) | file size "
             "| seconds to open |",
             "|---|---|---|---|---|---|---|"]
    t_sel = bilaf("select", str(feats), "--budget", "2%", "--n-cores", "50", "-o", str(work / "picks.csv"), "-q")
    t_rep = bilaf("report", str(feats), str(work / "picks.csv"), "-o", str(work / "report.html"), "--projection",
                  "tsne", "-q")
    size = (work / "report.html").stat().st_size
    lines.append(f"| 5,000 | 100 (BiLAF, K=50, t-SNE map) | embed | {t_sel:.1f} | {t_rep:.1f} | "
                 f"{size / 1024:.0f} KB | {open_seconds(drv, work / 'report.html')} |")
    # 10,000 picks on the whole training pool
    big = SHARED / "effnet-lite0" / "train_features.npy"
    t_sel = bilaf("select", str(big), "--budget", "10000", "--method", "random", "-o", str(work / "picks10k.csv"),
                  "-q")  # the page's size is the thumbnails'; random picks keep this run short
    for mode in ("embed", "link"):
        out = work / f"report10k_{mode}.html"
        t_rep = bilaf("report", str(big), str(work / "picks10k.csv"), "-o", str(out), "--samples",
                      str(SHARED / "cifar10-jpg.tar.gz"), "--thumbnails", mode, "-q")
        size = out.stat().st_size
        extra = ""
        if mode == "link":
            files = list((work / f"report10k_{mode}_files").glob("*.jpg"))
            extra = f" + {len(files):,} JPEGs ({sum(f.stat().st_size for f in files) / 1024**2:.1f} MB) beside it"
        lines.append(f"| 50,000 | 10,000 (random) | {mode} | {t_sel:.1f} | {t_rep:.1f} | "
                     f"{size / 1024**2:.1f} MB{extra} | {open_seconds(drv, out)} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report_cifar10.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.screenshot and drv is not None:
        drv.set_window_size(1280, 2150)
        drv.get((work / "report.html").resolve().as_uri())
        time.sleep(1.0)
        drv.execute_script("window.scrollTo(0, document.getElementById('map-section').offsetTop - 52)")
        time.sleep(0.5)
        drv.save_screenshot(args.screenshot)
    if drv is not None:
        drv.quit()


if __name__ == "__main__":
    main()
