"""Writing a selection report: one self-contained HTML file (CSS, script, data and thumbnails inline).

The page needs no server and no network. Thumbnails are embedded as small
JPEG data URIs (``thumbnails="embed"``), or linked relative to the report
(``thumbnails="link"``: the original files of a folder, or small JPEGs written
to ``<report>_files/`` for archives), or left out (``"none"``).
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..errors import ValidationError
from ..result import SelectionResult, atomic_write
from ..utils.files import PathLike, default_mode
from .build import as_result, build_report_data
from .samples import SampleSource, make_thumbnail, read_image_bytes, read_texts_of, resolve_source

__all__ = ["THUMBNAIL_MODES", "render_html", "write_report"]

THUMBNAIL_MODES = ("embed", "link", "none")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="bilaf report">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header class="top"><div class="wrap"><h1 id="title">{title}</h1><p class="sub" id="subtitle"></p></div></header>
<nav class="toc"><div class="wrap"><a href="#summary">Summary</a><a href="#map-section">Map</a>
<a href="#coverage">Coverage</a><a href="#gallery">Gallery</a>
<a href="#removed" id="toc-removed">Removed as noise</a></div></nav>
<main class="wrap">
<section id="summary"><h2>Summary</h2><div class="tiles" id="summary-tiles"></div>
<details class="more" id="summary-more"><summary>Timings, hashes, parameters, versions</summary></details></section>
<section id="map-section"><h2 id="map-title">Map of the pool</h2>
<p class="lead">Faint points: pool samples; stars: cores (one per pseudo-class); circles: picks; crosses: samples
the denoising removed.</p>
<div class="mapbox"><canvas id="map" width="960" height="600" aria-label="2-D map of the pool and the picks"></canvas>
<div class="legend" id="map-legend"></div></div></section>
<section id="coverage"><h2>Coverage</h2><div id="coverage-body"></div></section>
<section id="gallery"><h2>Gallery: <span id="gallery-count"></span> picks</h2>
<p class="lead" id="gallery-lead">Grouped by pseudo-class: its core first, then the boundary picks, each beside
the core of its own pseudo-class and the core of the pseudo-class it borders.</p>
<div class="toolbar" id="toolbar"></div><div class="pager" id="pager-top"></div>
<div id="gallery-body"></div><div class="pager" id="pager-bottom"></div></section>
<section id="removed" class="removed"><h2>Removed as noise</h2><p class="lead" id="removed-lead"></p>
<div id="removed-body"></div></section>
<footer id="footer"></footer>
</main>
<div class="tip" id="tip"></div>
<script type="application/json" id="bilaf-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_html(data: Dict[str, Any]) -> str:
    """The report page for the content of :func:`bilaf.report.build.build_report_data` plus media.

    The data is embedded as JSON in a ``<script type="application/json">``
    element, with every ``<`` escaped so that no text can close it.
    """
    payload = json.dumps({k: v for k, v in data.items() if k != "rows"}, ensure_ascii=False, allow_nan=False,
                         separators=(",", ":"))
    payload = payload.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _PAGE.format(title=html.escape(str(data.get("title", "bilaf report"))), css=_asset("report.css"),
                        js=_asset("report.js"), data=payload)


def _data_uri(blob: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(blob).decode("ascii")


def _media(data: Dict[str, Any], source: Optional[SampleSource], mode: str, out: Path, thumb_size: int,
           files_dir: Optional[Path]) -> Dict[str, Any]:
    """Fill ``data["media"]`` (row -> data URI, relative link or text) and say what could not be found."""
    rows = data["rows"]
    wanted = {int(r): data["ids"][str(r)] for r in rows}
    media: Dict[str, str] = {}
    kind = "none"
    if source is not None and source.is_text:
        kind = "text"
        media = {str(r): t for r, t in read_texts_of(source, wanted).items()}
    elif source is not None and mode != "none":
        kind = "image"
        if mode == "link" and source.kind in ("folder", "files"):
            base = out.resolve().parent
            for r, rid in wanted.items():
                f = Path(rid) if source.path is None or os.path.isabs(rid) else source.path / rid
                if f.is_file():
                    media[str(r)] = Path(os.path.relpath(f.resolve(), base)).as_posix()
        else:
            blobs = read_image_bytes(source, wanted)
            for r, blob in blobs.items():
                thumb = make_thumbnail(blob, thumb_size)
                if thumb is None:
                    continue
                if mode == "embed":
                    media[str(r)] = _data_uri(*thumb)
                else:
                    assert files_dir is not None
                    (files_dir / f"{r}.jpg").write_bytes(thumb[0])
                    media[str(r)] = f"{out.stem}_files/{r}.jpg"
    data["kind"] = kind
    data["media"] = media
    missing = [r for r in rows if str(r) not in media]
    if kind != "none" and missing:
        where = source.path if source is not None and source.path is not None else "their paths"
        what = "texts" if kind == "text" else "images"
        data["missing"] = (f"{len(missing):,} of {len(rows):,} {what} could not be found or read in {where} "
                           f"(e.g. {data['ids'][str(missing[0])]})")
        if len(missing) == len(rows):
            raise ValidationError(f"none of the {len(rows):,} samples the report shows was found in {where} "
                             f"(e.g. id {data['ids'][str(missing[0])]!r}); give the folder, archive or text "
                             f"file the features were made from")
    return data


def write_report(path: PathLike, features: Any, selection: Any, *, manifest: Optional[Dict[str, Any]] = None,
                 samples: Optional[PathLike] = None, thumbnails: str = "embed", thumb_size: int = 96,
                 projection: str = "pca", max_points: Optional[int] = 5000, n_removed: int = 48,
                 true_labels: bool = True, page_size: int = 200, random_state: int = 0,
                 title: Optional[str] = None) -> Path:
    """Write a selection report: one HTML file that opens from disk.

    It holds a summary (method, budget, K, seed, timings, hashes), a 2-D map
    of the pool and the picks, the picks per pseudo-class and the
    pseudo-classes without one, a gallery of the picks grouped by
    pseudo-class (role, rank, score; each boundary pick beside the core of
    its own pseudo-class and that of its opponent) and a sample of the
    samples the denoising removed. Texts are shown as text.

    Parameters
    ----------
    path : str or path-like
        The ``.html`` file to write (atomically).
    features : FeatureSet or array-like of shape (n_samples, n_features)
        The features the selection was made from. A :class:`~bilaf.features.FeatureSet`
        brings ids, true labels and the recorded place of the samples.
    selection : SelectionResult or array-like of int
        The selection (plain indices give a report without roles).
    manifest : dict, optional
        The selection's manifest (:func:`bilaf.manifest.read_manifest`), for
        the budget as requested, seed, timings and hashes.
    samples : path, optional
        Where the samples are: a folder, a ``.tar``/``.zip`` archive or a text
        file (one sample per line). Default: the place recorded in the feature
        file (``bilaf embed`` records it); without either the report shows ids.
    thumbnails : {"embed", "link", "none"}, default="embed"
        ``embed``: small JPEGs inside the file; ``link``: images referenced
        relative to the report (folder images as they are, archive members as
        small JPEGs in ``<report>_files/``); ``none``: ids only.
    thumb_size : int, default=96
        Longest side of an embedded thumbnail, in pixels (never enlarged).
    projection : {"pca", "tsne", "umap"}, default="pca"
        The map's projection (see :func:`bilaf.plot.project_2d`).
    max_points : int or None, default=5000
        Most pool samples drawn on the map besides the picks.
    n_removed : int, default=48
        Most removed samples shown (a random sample of them).
    true_labels : bool, default=True
        Offer the feature file's true labels as an optional colouring and
        column (a benchmark view); ``False`` leaves them out of the file.
    page_size : int, default=200
        Picks per gallery page.
    random_state : int, default=0
        Seeds the map's subsample and projection and the removed sample.
    title : str, optional
        Default: method and counts.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Bad options, a selection that does not fit the features, or samples
        of which none can be found.
    """
    from ..features import FeatureSet
    from ..validation import check_choice

    check_choice(thumbnails, "thumbnails", THUMBNAIL_MODES)
    for name, v, lo in (("thumb_size", thumb_size, 8), ("page_size", page_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValidationError(f"{name} must be an integer >= {lo}, got {v!r}")
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    fs = features if isinstance(features, FeatureSet) else None
    X = fs.features if fs is not None else features
    n = int(np.asarray(X).shape[0]) if not hasattr(X, "shape") else int(X.shape[0])
    result: SelectionResult = as_result(selection, n)
    labels = fs.labels if fs is not None and true_labels and fs.has_labels else None
    data = build_report_data(X, result, ids=fs.ids if fs is not None else None, labels=labels,
                             class_names=fs.classes if fs is not None else None, manifest=manifest,
                             projection=projection, max_points=max_points, n_removed=n_removed,
                             random_state=random_state, title=title)
    data["page_size"] = int(page_size)
    source = resolve_source(samples, fs.meta.get("source") if fs is not None else None)
    files_dir = None
    staging = None
    if thumbnails == "link" and source is not None and source.kind == "archive":
        staging = Path(tempfile.mkdtemp(prefix=f".{out.stem}_files.", dir=parent))
        files_dir = staging
    try:
        _media(data, source, thumbnails, out, thumb_size, files_dir)
        page = render_html(data)
        with atomic_write(out, encoding="utf-8") as fh:
            fh.write(page)
        if staging is not None:
            final = parent / f"{out.stem}_files"
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
            os.chmod(final, default_mode(directory=True))
            staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return out
