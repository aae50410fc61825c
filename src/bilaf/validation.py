"""Every check of user input, done once at the public edge, before any work.

Errors name the problem in one line (``ValueError`` for bad values, ``TypeError``
for bad types) so that the CLI can print them as they are.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable, Union

import numpy as np

from .errors import ValidationError, ValidationTypeError

__all__ = [
    "check_features",
    "check_budget",
    "check_indices",
    "check_choice",
    "check_fraction",
    "check_positive_int",
    "check_positive_number",
    "check_random_state",
    "parse_memory_budget",
    "parse_budget",
    "budget_count",
    "ValidationError",
    "ValidationTypeError",
]


def _is_torch_tensor(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return isinstance(x, torch.Tensor)


def check_features(X: Any, *, min_samples: int = 2, name: str = "X", check_finite: bool = True):
    """Validate a feature matrix.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Numeric features. numpy arrays (memory-mapped ones included) are returned
        without a copy when they are already floating point; torch tensors are
        returned as they are (kept on their device).
    min_samples : int, default=2
        The fewest rows accepted.
    name : str, default="X"
        The name used in error messages.
    check_finite : bool, default=True
        Reject NaN and infinite values.

    Returns
    -------
    X : numpy.ndarray or torch.Tensor
        A 2-D floating-point array (float32 or float64).

    Raises
    ------
    TypeError
        If ``X`` is not numeric.
    ValueError
        If ``X`` is not 2-D, has too few rows, no columns, or holds NaN/inf.
    """
    if _is_torch_tensor(X):
        import torch

        if X.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise ValidationTypeError(f"{name} must hold real numbers, got a tensor of dtype {X.dtype}")
        if not torch.is_floating_point(X):
            X = X.to(torch.float32)
        elif X.dtype not in (torch.float32, torch.float64):
            X = X.to(torch.float32)
        ndim, shape = X.dim(), tuple(X.shape)
    else:
        if isinstance(X, (str, bytes)) or X is None:
            raise ValidationTypeError(f"{name} must be a 2-D numeric array, got {type(X).__name__}")
        if not isinstance(X, np.ndarray):
            try:
                X = np.asarray(X)
            except Exception as exc:  # ragged lists and the like
                raise ValidationTypeError(f"{name} must be a 2-D numeric array ({exc})") from None
        if X.dtype == object or X.dtype.kind not in "biuf":
            raise ValidationTypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        if X.dtype.kind == "b":
            raise ValidationTypeError(f"{name} must hold real numbers, got dtype bool")
        if X.dtype.kind in "iu" or X.dtype == np.float16:
            X = X.astype(np.float32)
        elif X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        ndim, shape = X.ndim, X.shape
    if ndim != 2:
        raise ValidationError(f"{name} must be 2-D (n_samples, n_features), got shape {shape}")
    if shape[0] < min_samples:
        raise ValidationError(f"{name} needs at least {min_samples} samples, got {shape[0]}")
    if shape[1] < 1:
        raise ValidationError(f"{name} has no feature columns (shape {shape})")
    if check_finite:
        _check_finite(X, name)
    return X


def _check_finite(X: Any, name: str, chunk_rows: int = 65536) -> None:
    """Reject NaN/inf, scanning in row chunks so a memory map is never loaded whole."""
    if _is_torch_tensor(X):
        import torch

        ok = bool(torch.isfinite(X).all())
        if ok:
            return
        bad = ~torch.isfinite(X)
        row = int(torch.nonzero(bad.any(dim=1))[0, 0])
        kind = "NaN" if bool(torch.isnan(X[row]).any()) else "inf"
        raise ValidationError(f"{name} contains {kind} values (first at row {row})")
    n = X.shape[0]
    for start in range(0, n, chunk_rows):
        block = X[start : start + chunk_rows]
        if not np.isfinite(block).all():
            bad_rows = np.nonzero(~np.isfinite(block).all(axis=1))[0]
            row = start + int(bad_rows[0])
            kind = "NaN" if np.isnan(X[row]).any() else "inf"
            raise ValidationError(f"{name} contains {kind} values (first at row {row})")


def check_budget(budget: Any, n_samples: int) -> int:
    """Turn a budget (int count or float fraction of the pool) into a count.

    Parameters
    ----------
    budget : int or float
        A count in ``[1, n_samples]`` or a fraction in ``(0, 1)``. A fraction is
        rounded to the nearest count, and at least 1.
    n_samples : int
        Pool size.

    Returns
    -------
    int
        The number of samples to select.
    """
    if isinstance(budget, (bool, np.bool_)):
        raise ValidationTypeError(f"budget must be an int count or a float fraction, got {budget!r}")
    if isinstance(budget, numbers.Integral):
        b = int(budget)
        if b <= 0:
            raise ValidationError(f"budget must be positive, got {b}")
        if b > n_samples:
            raise ValidationError(f"budget {b} exceeds the pool size {n_samples}")
        return b
    if isinstance(budget, numbers.Real):
        f = float(budget)
        if not np.isfinite(f) or f <= 0.0 or f >= 1.0:
            raise ValidationError(
                f"a fractional budget must lie in (0, 1), got {budget!r} "
                "(pass an int for a count)"
            )
        return max(1, min(n_samples, int(round(f * n_samples))))
    raise ValidationTypeError(f"budget must be an int count or a float fraction, got {type(budget).__name__}")


def parse_budget(text: Any) -> Union[int, float]:
    """Read a budget written as text (command line, bench): what :func:`check_budget` takes.

    ``"500"`` is a count, ``"0.01"`` a fraction of the pool in (0, 1) and
    ``"1%"`` a percentage in (0, 100]; ``"100%"`` is the whole pool and gives
    ``1.0`` (see :func:`budget_count`). A count is written in digits; a number
    with a point or an exponent is a fraction (``"1e-2"``) and must lie in
    (0, 1), so ``"1.0"`` (one sample or the whole pool?), ``"2.5"`` and
    ``"1e2"`` are refused. A number that is already an int or a float is
    returned as it is.

    Raises
    ------
    ValidationError
        One line naming the budget as written.
    """
    if isinstance(text, numbers.Real) and not isinstance(text, (bool, np.bool_)):
        return text
    s = str(text).strip()
    hint = "give a count (500), a fraction (0.01) or a percentage (1%)"
    if s.endswith("%"):
        num = s[:-1].strip()
        if re.fullmatch(r"\d+(\.\d*)?|\.\d+", num):
            p = float(num)
            if 0 < p <= 100:
                return 1.0 if p == 100 else p / 100.0
        raise ValidationError(f"bad budget {s!r}: a percentage must lie in (0%, 100%]; {hint}")
    if re.fullmatch(r"\+?\d+", s):
        if int(s) >= 1:
            return int(s)
        raise ValidationError(f"bad budget {s!r}: a count must be at least 1; {hint}")
    try:
        f = float(s)
    except ValueError:
        f = math.nan
    if math.isfinite(f) and 0 < f < 1:
        return f
    if math.isfinite(f) and f >= 1:
        raise ValidationError(f"bad budget {s!r}: a number with a point or an exponent is a fraction and must lie "
                              f"in (0, 1); write a count in digits ({int(f) if f.is_integer() else 500}) or 100% "
                              "for the whole pool")
    raise ValidationError(f"bad budget {s!r}: {hint}")


def budget_count(budget: Any, n_samples: int) -> int:
    """:func:`check_budget`, with the whole pool (``1.0`` from ``"100%"``) allowed."""
    if isinstance(budget, float) and budget == 1.0:
        return int(n_samples)
    return check_budget(budget, n_samples)


def check_indices(indices: Any, n_samples: int, *, name: str = "indices", allow_empty: bool = False) -> np.ndarray:
    """Validate an array of distinct pool indices and return it as int64."""
    arr = np.asarray(indices)
    if arr.dtype == object or (arr.size and arr.dtype.kind not in "iu"):
        if arr.size and arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValidationTypeError(f"{name} must be integer pool indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    if arr.size == 0 and not allow_empty:
        raise ValidationError(f"{name} is empty")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_samples:
            bad = lo if lo < 0 else hi
            raise ValidationError(f"{name} holds index {bad}, out of range for a pool of {n_samples}")
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValidationError(f"{name} repeats index {int(uniq[counts > 1][0])}")
    return arr


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices`` (strings)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValidationError("unknown {param} " + _esc(f"{value!r}; choose one of {', '.join(map(repr, choices))}"),
                              param=name)
    return value


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0,
                   low_inclusive: bool = True, high_inclusive: bool = False) -> float:
    """Check a real number in a range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValidationError("{param} must be a finite number, got " + _esc(repr(value)), param=name)
    v = float(value)
    ok_low = v >= low if low_inclusive else v > low
    ok_high = v <= high if high_inclusive else v < high
    if not (ok_low and ok_high):
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        raise ValidationError("{param} must lie in " + _esc(f"{lb}{low}, {high}{hb}, got {value!r}"), param=name)
    return v


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValidationError("{param} must be a positive integer, got " + _esc(repr(value)), param=name)
    return int(value)


def check_positive_number(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check a finite real number > 0 (``>= 0`` with ``allow_zero``); returns it as a float."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value)
            or (value < 0 if allow_zero else value <= 0)):
        what = "a non-negative number" if allow_zero else "a positive number"
        raise ValidationError("{param} must be " + what + ", got " + _esc(repr(value)), param=name)
    return float(value)


def check_random_state(seed: Any) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a ``numpy.random.Generator``."""
    if seed is None or isinstance(seed, (numbers.Integral, np.integer)):
        if seed is not None and int(seed) < 0:
            raise ValidationError("{param} must be a non-negative int, got " + _esc(str(seed)), param="random_state")
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise ValidationTypeError("{param} must be None, an int or a numpy Generator, got " + type(seed).__name__,
                              param="random_state")


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def parse_memory_budget(value: Any) -> int:
    """Parse a memory budget such as ``"4GB"``, ``"512MiB"`` or a byte count.

    Returns
    -------
    int
        Bytes; at least 1 MiB.
    """
    if isinstance(value, bool):
        raise ValidationError("{param} must be bytes or a string like '4GB', got " + _esc(repr(value)), param="memory_budget")
    if isinstance(value, numbers.Real):
        b = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValidationError("{param} must look like '4GB' or '512MB', got " + _esc(repr(value)), param="memory_budget")
        b = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise ValidationError("{param} must be bytes or a string like '4GB', got " + _esc(repr(value)), param="memory_budget")
    if b < 1024**2:
        raise ValidationError("{param} must be at least 1MB, got " + _esc(repr(value)), param="memory_budget")
    return b


def _esc(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
