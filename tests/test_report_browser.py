"""The report in a real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``) via Selenium.

Each test opens a report from disk, fails on any console error, checks that the gallery holds the
picks, and saves a screenshot (to ``$BILAF_SCREENSHOT_DIR`` too when set). Skipped where no browser
or driver is installed; ``.ci/run`` installs them.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from bilaf import select
from bilaf.features import FeatureSet
from bilaf.report import write_report

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")
PIL = pytest.importorskip("PIL.Image")

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")
                if shutil.which(b)), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(BROWSER is None or DRIVER is None,
                                reason="no headless Chromium and chromedriver installed (apt-get install chromium "
                                       "chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              "--window-size=1280,2400"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(DRIVER))
    yield drv
    drv.quit()


def open_page(drv, path: Path) -> list:
    """Load the page, wait until its script has run, and return the console errors."""
    drv.get(Path(path).resolve().as_uri())
    for _ in range(100):
        if drv.execute_script("return document.body && document.body.getAttribute('data-ready')") == "1":
            break
        time.sleep(0.1)
    return errors(drv)


def errors(drv) -> list:
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(drv, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    drv.save_screenshot(str(out))
    with PIL.open(out) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert px.shape[0] > 500 and px.std() > 10  # something was drawn, not a blank page
    target = os.environ.get("BILAF_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(target) / name)
    return out


def image_pool(tmp_path: Path, n=240, k=4, seed=0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(scale=6.0, size=(k, 6))[y] + rng.normal(size=(n, 6))).astype(np.float32)
    root = tmp_path / "images"
    ids = []
    for i, c in enumerate(y):
        a = np.zeros((32, 32, 3), np.uint8)
        a[..., c % 3] = 90 + 40 * c
        a[i % 32] = 255
        rid = f"class{c}/{i:04d}.png"
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        PIL.fromarray(a).save(buf, format="PNG")
        (root / rid).write_bytes(buf.getvalue())
        ids.append(rid)
    return FeatureSet(X, ids=ids, labels=y, classes=[f"class{c}" for c in range(k)],
                      meta={"source": f"folder:{root.resolve()}"})


def test_bilaf_report_renders(browser, tmp_path):
    fs = image_pool(tmp_path)
    res = select(fs.features, 24, method="bilaf", random_state=0, n_cores=8)
    out = write_report(tmp_path / "report.html", fs, res)
    assert open_page(browser, out) == []
    cards = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body .card'))"
                                   ".map(c => +c.getAttribute('data-rank'))")
    assert sorted(cards) == list(range(1, 25))  # every pick, once
    n_between = browser.execute_script("return document.querySelectorAll('#gallery-body .card.boundary "
                                       ".between img').length")
    assert n_between == 2 * int((res.roles == "boundary").sum())
    broken = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body img'))"
                                    ".filter(i => i.complete && i.naturalWidth === 0).length")
    assert broken == 0
    assert browser.execute_script("return document.querySelectorAll('.ctile').length") == 8
    # a click on a pick in the map shows its card in the gallery
    canvas = browser.find_element("id", "map")
    xy = browser.execute_script(
        "const d = JSON.parse(document.getElementById('bilaf-data').textContent), r = arguments[0]"
        ".getBoundingClientRect(); const j = d.picks.r.indexOf(1);"
        "return [j, (18 + d.map.kx[j] / 1000 * 924) * r.width / 960 - r.width / 2,"
        " (18 + d.map.ky[j] / 1000 * 564) * r.height / 600 - r.height / 2];", canvas)
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element_with_offset(canvas, int(round(xy[1])), int(round(xy[2]))).click().perform()
    flashed = browser.execute_script("const c = document.querySelector('.card.flash'); return c && c.id")
    assert flashed is not None and flashed.startswith("pick-")
    # the filters work: boundary picks only
    browser.execute_script("document.querySelector('.seg button[data-role=boundary]').click()")
    roles = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body .card .chip'))"
                                   ".map(c => c.textContent)")
    assert roles and set(roles) == {"boundary"}
    assert errors(browser) == []
    browser.execute_script("document.documentElement.style.scrollBehavior = 'auto'; window.scrollTo(0, 0)")
    screenshot(browser, tmp_path, "report_bilaf.png")


def test_ten_thousand_picks_paginate(browser, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12000, 4)).astype(np.float32)
    out = write_report(tmp_path / "big.html", X, rng.permutation(12000)[:10000], page_size=200)
    assert open_page(browser, out) == []
    ranks = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body .card'))"
                                   ".map(c => +c.getAttribute('data-rank'))")
    assert ranks == list(range(1, 201))
    assert "of 10,000" in browser.find_element("id", "pager-top").text
    browser.execute_script("document.querySelector('#pager-top button:last-child').click()")
    ranks = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body .card'))"
                                   ".map(c => +c.getAttribute('data-rank'))")
    assert ranks == list(range(201, 401))
    assert errors(browser) == []
    screenshot(browser, tmp_path, "report_10k.png")


def test_text_report_shows_texts(browser, tmp_path):
    rng = np.random.default_rng(2)
    lines = [f"{i % 3} question {i}: what is {['a cat', 'a ship', 'rain'][i % 3]}?" for i in range(90)]
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(lines) + "\n")
    X = (rng.normal(scale=5, size=(3, 4))[np.arange(90) % 3] + rng.normal(size=(90, 4))).astype(np.float32)
    fs = FeatureSet(X, ids=[f"q.txt:{i + 1}" for i in range(90)], labels=np.arange(90) % 3,
                    meta={"source": f"text:{txt.resolve()}"})
    res = select(X, 9, method="bilaf", random_state=0, n_cores=3)
    out = write_report(tmp_path / "text.html", fs, res)
    assert open_page(browser, out) == []
    texts = browser.execute_script("return Array.from(document.querySelectorAll('#gallery-body .card > .text'))"
                                   ".map(t => t.textContent)")
    assert sorted(texts) == sorted(lines[i].split(None, 1)[1] for i in res.indices)
    screenshot(browser, tmp_path, "report_text.png")
