"""2-D maps of a selection, in the spirit of the BiLAF paper's Fig. 3 and 4.

Pool samples are drawn faint and coloured by pseudo-class (or by true label),
cores as stars, boundary picks as circles, removed noise as grey crosses,
already-labeled samples as squares. The projection is PCA (default), t-SNE
(scikit-learn, on a subsample of the pool plus every pick) or UMAP (when
``umap-learn`` is installed).

matplotlib is an optional dependency (``pip install 'bilaf[plot]'``); it is
imported on first use, with the non-interactive Agg backend.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ValidationError, ValidationTypeError
from .result import atomic_path

__all__ = ["PROJECTIONS", "project_2d", "plot_selection", "save_selection_plot", "class_colors"]

PROJECTIONS = ("pca", "tsne", "umap")

_ROLE_STYLE = {
    # role: (marker, size, label, zorder)
    "boundary": ("o", 34, "boundary pick", 5),
    "selected": ("o", 34, "selected", 5),
    "core": ("*", 210, "core (pseudo-class centre)", 6),
    "labeled": ("s", 36, "already labeled", 4),
}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ValidationError("plotting needs matplotlib: pip install 'bilaf[plot]'") from None
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg", force=True)
        except Exception:  # pragma: no cover - a backend already in use
            pass
    import matplotlib.pyplot as plt

    return plt


def class_colors(n: int, random_state: int = 0) -> np.ndarray:
    """``n`` distinct RGB colours: tab10/tab20 for few classes, spread hues for many.

    Returns
    -------
    numpy.ndarray of shape (n, 3)
    """
    if n <= 0:
        return np.empty((0, 3))
    plt = _pyplot()
    # tab10 / tab20 without their greys (grey marks removed noise); tab10's grey slot becomes dark indigo
    tab10 = [c if i != 7 else (0.22, 0.23, 0.47) for i, c in enumerate(plt.get_cmap("tab10").colors)]
    if n <= 10:
        return np.asarray(tab10[:n])
    if n <= 19:
        light = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i % 2 == 1 and i != 15]
        return np.asarray((tab10 + light)[:n])
    # many classes: golden-ratio hues at three lightness/saturation levels, shuffled so neighbours differ
    phi = 0.618033988749895
    levels = [(0.50, 0.80), (0.38, 0.90), (0.62, 0.70)]
    out = []
    for i in range(n):
        h = (i * phi) % 1.0
        lightness, sat = levels[i % 3]
        out.append(colorsys.hls_to_rgb(h, lightness, sat))
    out = np.asarray(out)
    rng = np.random.default_rng(random_state)
    return out[rng.permutation(n)]


def project_2d(X: Any, projection: str = "pca", *, random_state: int = 0,
               perplexity: float = 30.0) -> np.ndarray:
    """Project rows of ``X`` to 2-D.

    Parameters
    ----------
    X : array-like of shape (m, d)
        The rows to draw (subsample first for t-SNE and UMAP on big pools).
    projection : {"pca", "tsne", "umap"}
        ``tsne`` runs scikit-learn's t-SNE after a 50-d PCA; ``umap`` needs
        ``umap-learn``.
    random_state : int, default=0
    perplexity : float, default=30
        t-SNE only (lowered for tiny inputs).

    Returns
    -------
    numpy.ndarray of shape (m, 2)
    """
    from sklearn.decomposition import PCA

    from .validation import check_choice

    check_choice(projection, "projection", PROJECTIONS)
    X = np.asarray(X, dtype=np.float32)
    m, d = X.shape
    if m < 3:
        raise ValidationError(f"need at least 3 points to draw a map, got {m}")
    if projection == "pca" or d <= 2:
        if d == 1:
            return np.column_stack([X[:, 0], np.zeros(m)])
        return PCA(n_components=2, random_state=random_state).fit_transform(X)
    Z = PCA(n_components=min(50, d, m), random_state=random_state).fit_transform(X) if d > 50 else X
    if projection == "tsne":
        from sklearn.manifold import TSNE

        from threadpoolctl import threadpool_limits

        perp = float(min(perplexity, max(2.0, (m - 1) / 3.0)))
        tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=random_state)
        if m < 1000:  # small maps: OpenMP start-up and spinning cost more than they save
            with threadpool_limits(1):
                return tsne.fit_transform(Z)
        return tsne.fit_transform(Z)
    try:
        import umap  # type: ignore
    except ImportError:
        raise ValidationError("projection 'umap' needs umap-learn: pip install umap-learn") from None
    return umap.UMAP(n_components=2, random_state=random_state).fit_transform(Z)


def _draw_rows(n: int, picks: np.ndarray, max_points: Optional[int], rng: np.random.Generator) -> np.ndarray:
    """Pool rows to draw: every pick, plus at most ``max_points`` other rows at random (sorted)."""
    rest = np.setdiff1d(np.arange(n), picks)
    if max_points is not None and len(rest) > max_points:
        rest = np.sort(rng.choice(rest, size=max_points, replace=False))
    return np.concatenate([rest, picks])


def plot_selection(X: Any, indices: Any, *, roles: Optional[Sequence[str]] = None,
                   core_indices: Optional[Any] = None, pseudo_labels: Optional[Any] = None,
                   labels: Optional[Any] = None, class_names: Optional[Sequence[str]] = None,
                   color_by: str = "auto", projection: str = "pca", max_points: Optional[int] = 5000,
                   random_state: int = 0, title: Optional[str] = None, figsize: Tuple[float, float] = (10.5, 7.0),
                   ax: Any = None):
    """Draw a selection on a 2-D map of the pool.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Pool features.
    indices : array-like of int
        The selection (pool indices).
    roles : sequence of str, optional
        Role of each pick: ``core``, ``boundary``, ``labeled`` or ``selected``.
        Default: from ``core_indices`` (cores), else ``selected``.
    core_indices : array-like of int, optional
        The cores (drawn as stars).
    pseudo_labels : array-like of int of shape (n_samples,), optional
        Pseudo-class of every pool sample, -1 for removed noise (drawn as grey
        crosses).
    labels : array-like of int of shape (n_samples,), optional
        True labels (-1 = unknown), to colour by instead.
    class_names : sequence of str, optional
        Names of the true labels, for the legend.
    color_by : {"auto", "pseudo", "label", "none"}
        ``auto``: true labels when given, else pseudo-classes, else one colour.
    projection : {"pca", "tsne", "umap"}
        See :func:`project_2d`.
    max_points : int or None, default=5000
        Most pool samples drawn besides the picks (a random subsample).
    random_state : int, default=0
        Seeds the subsample and the projection.
    title : str, optional
    figsize : (float, float)
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .kernels.tensors import to_numpy
    from .validation import check_choice, check_features, check_indices

    X = to_numpy(check_features(X, name="features"))
    n = X.shape[0]
    idx = check_indices(indices, n, name="selection")
    check_choice(color_by, "color_by", ("auto", "pseudo", "label", "none"))
    if max_points is not None and (isinstance(max_points, bool) or int(max_points) < 0):
        raise ValidationError(f"max_points must be a non-negative integer or None, got {max_points!r}")
    pseudo = _per_sample(pseudo_labels, n, "pseudo_labels")
    truth = _per_sample(labels, n, "labels")
    cores = np.asarray(core_indices if core_indices is not None else [], dtype=np.int64)
    if roles is None:
        roles_arr = np.where(np.isin(idx, cores), "core", "boundary" if len(cores) else "selected").astype(object)
    else:
        roles_arr = np.asarray(roles, dtype=object)
        if roles_arr.shape[0] != idx.shape[0]:
            raise ValidationError(f"{roles_arr.shape[0]} roles for {idx.shape[0]} picks")

    if color_by == "auto":
        color_by = "label" if truth is not None and (truth >= 0).any() else ("pseudo" if pseudo is not None else "none")
    if color_by == "label" and truth is None:
        raise ValidationError("color_by='label' needs the true labels")
    if color_by == "pseudo" and pseudo is None:
        raise ValidationError("color_by='pseudo' needs the pseudo-labels (a BiLAF selection's manifest)")
    colour_of = truth if color_by == "label" else (pseudo if color_by == "pseudo" else None)

    rng = np.random.default_rng(random_state)
    rows = _draw_rows(n, idx, max_points, rng)
    xy_all = project_2d(np.asarray(X[rows], dtype=np.float32), projection, random_state=random_state)
    pos = {int(r): i for i, r in enumerate(rows)}
    n_pool = len(rows) - len(idx)
    xy_pool, pool_rows = xy_all[:n_pool], rows[:n_pool]
    xy_pick = xy_all[[pos[int(i)] for i in idx]]

    plt = _pyplot()
    from matplotlib.lines import Line2D

    own_fig = ax is None
    if own_fig:
        fig, ax = plt.subplots(figsize=figsize, dpi=100)
    else:
        fig = ax.figure
    n_cls = int(colour_of.max()) + 1 if colour_of is not None and (colour_of >= 0).any() else 0
    palette = class_colors(n_cls, random_state)
    grey = (0.55, 0.55, 0.55)

    def colours(rows_: np.ndarray) -> np.ndarray:
        if colour_of is None or n_cls == 0:
            return np.tile((0.25, 0.45, 0.75), (len(rows_), 1))
        c = colour_of[rows_]
        out = np.tile(grey, (len(rows_), 1))
        ok = c >= 0
        out[ok] = palette[c[ok]]
        return out

    # pool: faint dots; removed noise: grey crosses
    noise = pseudo[pool_rows] < 0 if pseudo is not None else np.zeros(len(pool_rows), bool)
    size = float(np.clip(30000.0 / max(len(pool_rows), 1), 5, 18))
    ax.scatter(xy_pool[~noise, 0], xy_pool[~noise, 1], s=size, c=colours(pool_rows[~noise]), alpha=0.55,
               linewidths=0, zorder=1, rasterized=True)
    if noise.any():
        ax.scatter(xy_pool[noise, 0], xy_pool[noise, 1], s=size * 1.6, c=[(0.45, 0.45, 0.45)], marker="x",
                   alpha=0.45, linewidths=0.7, zorder=2, rasterized=True)
    # picks, by role
    pick_cols = colours(idx)
    handles = [Line2D([], [], ls="", marker="o", ms=5, mfc=(0.4, 0.4, 0.4), mec="none", alpha=0.5,
                      label=f"pool sample ({n_pool:,} of {n - len(idx):,} drawn)" if n_pool < n - len(idx)
                      else "pool sample")]
    if noise.any():
        handles.append(Line2D([], [], ls="", marker="x", ms=6, mec=(0.45, 0.45, 0.45), label="removed as noise"))
    for role in ("labeled", "selected", "boundary", "core"):
        mask = roles_arr == role
        if not mask.any():
            continue
        marker, s, label, z = _ROLE_STYLE[role]
        s = s * float(np.clip(np.sqrt(120.0 / max(len(idx), 1)), 0.5, 1.2))  # many picks: smaller markers
        face = pick_cols[mask] if role != "labeled" else "white"
        ax.scatter(xy_pick[mask, 0], xy_pick[mask, 1], s=s, c=face, marker=marker, edgecolors="black",
                   linewidths=0.8 if len(idx) <= 200 else 0.6, zorder=z)
        ms = np.sqrt(_ROLE_STYLE[role][1]) * (0.75 if role == "core" else 1.0)
        handles.append(Line2D([], [], ls="", marker=marker, ms=ms,
                              mfc=(0.85, 0.85, 0.85) if role != "labeled" else "white", mec="black",
                              label=f"{label} ({int(mask.sum())})"))
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
                    title="markers", title_fontsize=9, alignment="left")
    ax.add_artist(leg)
    if color_by == "label" and 0 < n_cls <= 20:
        names = list(class_names) if class_names is not None else [str(i) for i in range(n_cls)]
        ch = [Line2D([], [], ls="", marker="o", ms=7, mfc=palette[c], mec="none",
                     label=names[c] if c < len(names) else str(c)) for c in range(n_cls)]
        ax.legend(handles=ch, loc="lower left", bbox_to_anchor=(1.01, 0.0), frameon=False, fontsize=9,
                  title="true class", title_fontsize=9, alignment="left")
    elif color_by == "pseudo":
        ax.text(1.02, 0.0, f"colour = pseudo-class\n({n_cls} classes)", transform=ax.transAxes, fontsize=9,
                va="bottom", ha="left", color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("0.8")
    name = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[projection]
    ax.set_xlabel(f"{name} 1", color="0.4", fontsize=9)
    ax.set_ylabel(f"{name} 2", color="0.4", fontsize=9)
    if title is None:
        title = f"{len(idx):,} of {n:,} samples selected"
    ax.set_title(title, fontsize=11, loc="left")
    if own_fig:
        fig.subplots_adjust(left=0.04, right=0.70, top=0.93, bottom=0.05)
    return fig


def _per_sample(a: Any, n: int, name: str) -> Optional[np.ndarray]:
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.shape != (n,):
        raise ValidationError(f"{name} must hold one value per pool sample ({n}), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValidationTypeError(f"{name} must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def save_selection_plot(path: Union[str, Path], X: Any, indices: Any, *, dpi: int = 150,
                        **kwargs: Any) -> Path:
    """Draw :func:`plot_selection` and save it (PNG, SVG or PDF by suffix), atomically.

    Parameters
    ----------
    path : str or path-like
        Target file; ``.png``, ``.svg`` or ``.pdf``.
    X, indices, **kwargs
        See :func:`plot_selection`.
    dpi : int, default=150

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf"):
        raise ValidationError(f"cannot tell the image format of {str(path)!r}; use .png, .svg or .pdf")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    fig = plot_selection(X, indices, **kwargs)
    plt = _pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=suffix[1:], facecolor="white")
    finally:
        plt.close(fig)
    import os

    from .utils.files import default_mode

    try:
        os.chmod(path, default_mode())
    except OSError:  # pragma: no cover
        pass
    return path
