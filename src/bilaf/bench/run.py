"""The bench run: every (method, budget, seed) selection made once, then scored by every protocol.

Every method sees the same pool, the same test set, the same budgets and the
same seeds; each selection is made with :func:`bilaf.select` and scored by
every requested protocol (:mod:`bilaf.evaluation`). A method that fails is
recorded (with its error) and the run goes on.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ValidationError
from ..evaluation import FEATURE_PROTOCOLS, evaluate_features
from ..evaluation._checks import check_labels
from ..selectors import get_selector_class
from ..validation import check_features
from .report import BenchResult
from .spec import MethodSpec, parse_budgets, parse_methods, parse_seeds

__all__ = ["run_bench", "code_version"]


def code_version() -> str:
    """``bilaf <version>``, plus the git commit (and ``+changes`` when src/ differs from it) in a checkout."""
    from .. import __version__
    from ..provenance import git_state

    state = git_state(short=True)
    if state is None:
        return f"bilaf {__version__}"
    return f"bilaf {__version__} {state[0]}" + ("+changes" if state[1] else "")


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}"[:300] if msg else type(exc).__name__


def _check_protocols(protocols: Sequence[str], finetuner: Optional[Callable]) -> List[str]:
    protocols = list(protocols)
    if not protocols:
        raise ValidationError("no evaluation protocols given")
    for p in protocols:
        if p == "finetune":
            if finetuner is None:
                raise ValidationError("the finetune protocol needs a finetuner (bilaf.evaluation.CachedFinetuner): "
                                      "it trains the backbone on the raw samples, not on the features")
        elif p not in FEATURE_PROTOCOLS:
            raise ValidationError(f"unknown protocol {p!r} for a feature bench; choose from "
                                  f"{', '.join(FEATURE_PROTOCOLS)} or finetune")
    if len(set(protocols)) != len(protocols):
        raise ValidationError("a protocol is listed twice")
    return protocols


@dataclass
class _Data:
    """The pool and test set of a bench, as float32 on the CPU and (``*_sel``) on the selection device."""

    Xn: np.ndarray
    Xsel: Any
    y: np.ndarray
    Tn: np.ndarray
    Tsel: Any
    test_y: np.ndarray
    dev: Any

    @classmethod
    def build(cls, X: Any, y: np.ndarray, test_X: Any, test_y: np.ndarray, device: str) -> "_Data":
        import torch

        from ..kernels.tensors import resolve_device

        dev = resolve_device(device)

        def cpu32(A: Any) -> np.ndarray:
            if isinstance(A, torch.Tensor):
                return A.detach().to("cpu", torch.float32).numpy()
            return np.ascontiguousarray(np.asarray(A, dtype=np.float32))

        Xn, Tn = cpu32(X), cpu32(test_X)
        on_dev = (lambda A: torch.from_numpy(A).to(dev)) if dev.type != "cpu" else (lambda A: A)
        return cls(Xn=Xn, Xsel=on_dev(Xn), y=y, Tn=Tn, Tsel=on_dev(Tn), test_y=test_y, dev=dev)


def _select_cell(spec: MethodSpec, count: int, seed: int, data: _Data) -> Tuple[Optional[np.ndarray], str, str,
                                                                                  float]:
    """One selection: ``(indices or None, notes, error, seconds)``; a failing method is reported, not fatal."""
    from ..api import select

    params = dict(spec.params)
    err = ""
    notes = ""
    idx = None
    t0 = time.perf_counter()
    try:
        cls = get_selector_class(spec.method)
        if "device" in cls._param_names() and "device" not in params:
            params["device"] = str(data.dev) if data.dev.type != "cpu" else "cpu"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = select(data.Xsel, count, method=spec.method, random_state=seed, **params)
        idx = np.asarray(res.indices, dtype=np.int64)
        said = [str(w.message) for w in caught] + [str(m) for m in (getattr(res, "notes", None) or [])]
        notes = "; ".join(dict.fromkeys(" ".join(m.split()) for m in said))[:300]
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # a failing method is reported, not fatal
        err = _one_line(exc)
    return idx, notes, err, time.perf_counter() - t0


def _score(p: str, idx: np.ndarray, seed: int, data: _Data, eval_params: Dict[str, Dict[str, Any]],
           finetuner: Optional[Callable]) -> float:
    """The test accuracy of a selection under protocol ``p``."""
    kw = dict(eval_params.get(p, {}))
    dev = data.dev
    if p == "finetune":
        return float(finetuner(idx, data.y[idx], seed))
    if p == "knn":
        kw.setdefault("device", str(dev))
        return evaluate_features(p, data.Xsel if dev.type != "cpu" else data.Xn, data.y, idx, data.Tsel,
                                 data.test_y, random_state=seed, params=kw)
    if p == "linear":
        kw.setdefault("device", str(dev))
    return evaluate_features(p, data.Xn, data.y, idx, data.Tn, data.test_y, random_state=seed, params=kw)


def _split_previous(previous: Optional[Sequence[Dict]], result: BenchResult, counts: Dict[str, int]
                    ) -> Dict[Tuple[str, str, int, str], Dict]:
    """The earlier runs inside the grid, by (method, budget, seed, protocol); the others go to ``other_runs``."""
    done = {}
    for r in previous or []:
        if r["method"] in result.methods and r["budget"] in counts and r["seed"] in result.seeds \
                and r["protocol"] in result.protocols:
            if int(r["budget_count"]) != counts[r["budget"]]:
                raise ValidationError(f"the previous runs were made on another pool (budget {r['budget']} was "
                                      f"{r['budget_count']} samples, now {counts[r['budget']]}); use a new output name")
            done[(r["method"], r["budget"], r["seed"], r["protocol"])] = r
        else:
            result.other_runs.append(r)
    return done


def run_bench(X: Any, y: Any, test_X: Any, test_y: Any, methods: Any, budgets: Any, seeds: Any = 5,
              protocols: Sequence[str] = ("linear", "knn"), *, device: str = "cpu",
              eval_params: Optional[Dict[str, Dict[str, Any]]] = None, previous: Optional[Sequence[Dict]] = None,
              on_progress: Optional[Callable[["BenchResult"], None]] = None, verbose: bool = True,
              log: Optional[Callable[[str], None]] = None, meta: Optional[Dict[str, Any]] = None,
              run_missing: bool = True, finetuner: Optional[Callable[[np.ndarray, np.ndarray, int], float]] = None
              ) -> BenchResult:
    """Run ``methods x budgets x seeds`` selections and score each with every protocol.

    Parameters
    ----------
    X : array-like of shape (n_pool, d)
        Pool features (a float16 memory map is fine; it is read once).
    y : array-like of int, shape (n_pool,)
        Pool labels (used only to score the selected rows; selection never sees them).
    test_X, test_y
        The labeled test set.
    methods : str or list of str or MethodSpec
        Specs such as ``"random"``, ``"bilaf:n_cores=50"`` (see :func:`parse_methods`).
    budgets : str or list
        ``"0.5%,1%"``, fractions or counts (see :func:`parse_budgets`).
    seeds : int, str or list of int, default=5
        A count (seeds 0..n-1) or the seeds. Seed ``s`` is the ``random_state``
        of every method's selection and of every protocol.
    protocols : sequence of {"linear", "knn", "finetune"}
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where selectors that take a ``device`` run, and where kNN runs. With
        ``"cuda"`` the pool is moved to the GPU once.
    eval_params : dict or None
        Extra options per protocol, e.g. ``{"knn": {"k": 10}}``.
    previous : list of run dicts or None
        Runs already done (:func:`read_runs_csv`): those cells are kept and
        not run again (resume). Runs outside the grid asked for are kept in
        ``other_runs`` (written back, not tabulated).
    on_progress : callable or None
        Called with the partial result after every selection (e.g. to save it).
    verbose : bool, default=True
        A progress bar and one log line per selection on stderr.
    log : callable or None
        Where log lines go (default: stderr).
    meta : dict or None
        Stored in the result (command, title...).
    run_missing : bool, default=True
        ``False``: only gather ``previous`` runs into tables (no selection is
        made; cells without runs stay empty or show fewer seeds).
    finetuner : callable or None
        Needed by the ``"finetune"`` protocol: ``finetuner(rows, labels, seed)
        -> accuracy`` trains on the selected pool rows (e.g. a
        :class:`bilaf.evaluation.CachedFinetuner`); seed ``s`` fixes its
        randomness, the same for every method.

    Returns
    -------
    BenchResult
    """
    specs = parse_methods(methods)
    blist = parse_budgets(budgets)
    slist = parse_seeds(seeds)
    protocols = _check_protocols(protocols, finetuner)
    X = check_features(X, name="pool features")
    test_X = check_features(test_X, min_samples=1, name="test features")
    n = int(X.shape[0])
    if int(test_X.shape[1]) != int(X.shape[1]):
        raise ValidationError(f"pool features have {X.shape[1]} columns but test features have {test_X.shape[1]}")
    y = check_labels(y, n, name="pool labels", rows_name="pool rows")
    test_y = check_labels(test_y, int(test_X.shape[0]), name="test labels", rows_name="test rows")
    counts = {b.label: b.count(n) for b in blist}
    eval_params = dict(eval_params or {})
    unknown = sorted(set(eval_params) - set(protocols))
    if unknown:
        raise ValidationError(f"eval_params for protocol(s) not run: {', '.join(unknown)}")

    data = _Data.build(X, y, test_X, test_y, device)
    dev = data.dev
    result = BenchResult(runs=[], methods=[s.label for s in specs], budgets=[b.label for b in blist], seeds=slist,
                         protocols=protocols, meta={"n_pool": n, "n_test": int(data.Tn.shape[0]),
                                                    "dim": int(data.Xn.shape[1]), "device": str(dev), **(meta or {})})
    done = _split_previous(previous, result, counts)
    host = str(result.meta.get("host") or dev)
    code = code_version()
    result.meta.setdefault("code", code)
    cells = [(s, b, seed) for s in specs for b in blist for seed in slist]  # method by method
    t_start = time.perf_counter()
    from ..utils.progress import progress as _progress

    bar = _progress(total=len(cells), desc="bench", enabled=verbose, unit="selection")
    if log is None:
        if hasattr(bar, "write"):  # a tqdm bar: print above it
            log = lambda s: bar.write(s, file=sys.stderr)  # noqa: E731
        else:
            log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        for i, (spec, b, seed) in enumerate(cells, 1):
            keys = [(spec.label, b.label, seed, p) for p in protocols]
            if all(k in done and not done[k]["error"] for k in keys) or not run_missing:
                result.runs += [done[k] for k in keys if k in done]
                bar.update(1)
                continue
            count = counts[b.label]
            idx, notes, err, t_sel = _select_cell(spec, count, seed, data)
            accs = {}
            for p in protocols:
                acc, e2, t_ev = float("nan"), err, float("nan")
                if idx is not None:
                    t1 = time.perf_counter()
                    try:
                        acc = _score(p, idx, seed, data, eval_params, finetuner)
                    except (KeyboardInterrupt, MemoryError):
                        raise
                    except Exception as exc:
                        e2 = _one_line(exc)
                    t_ev = time.perf_counter() - t1
                accs[p] = acc
                result.runs.append({"method": spec.label, "budget": b.label, "budget_count": count, "seed": seed,
                                    "protocol": p, "accuracy": acc, "select_seconds": t_sel if not err else float("nan"),
                                    "eval_seconds": t_ev, "error": e2, "notes": notes, "host": host,
                                    "code": code})
            bar.update(1)
            if verbose:
                what = "  ".join(f"{p} {100 * a:.1f}" for p, a in accs.items() if not math.isnan(a))
                status = f"FAILED ({err})" if err else f"{what}  (select {t_sel:.1f} s)"
                log(f"[{i}/{len(cells)}] {spec.label} {b.label} ({count}) seed {seed}: {status}")
            result.meta["wall_seconds"] = time.perf_counter() - t_start
            if on_progress is not None:
                on_progress(result)
    finally:
        bar.close()
    result.meta["wall_seconds"] = time.perf_counter() - t_start if run_missing else None
    if verbose:
        failed = sorted({f[0] for f in result.failures()})
        if failed:
            log(f"bench: {len(result.failures())} failed selection(s), in: {', '.join(failed)} (see the table)")
    return result
