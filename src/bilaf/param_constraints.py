"""The kinds of value a parameter takes (the constraints of :class:`bilaf.params.Param`).

Each constraint says whether a value meets it, whether the value at least has
its type (so a failure is a bad value rather than a bad type), how to describe
it in an error message, and how to read it from text (command line, bench
specs). ``make_constraint`` turns the short forms of a parameter table
(``None``, ``"boolean"``, ``"random_state"``, ``"memory"``, ``"indices"``, a
type) into constraint objects.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, Iterable, Optional

import numpy as np

__all__ = ["Constraint", "Interval", "Options", "Check", "make_constraint", "NONE", "is_indices", "is_boolean",
           "dict_kind"]


class Constraint:
    """One kind of acceptable value."""

    #: the metavar a command-line flag of this kind shows
    metavar = "VALUE"

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def has_type_of(self, value: Any) -> bool:
        """Whether ``value`` is of this constraint's type (so a failure is a bad value, not a bad type)."""
        return self.is_satisfied_by(value)

    def describe(self) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for, or ``ValueError`` when it is not of this kind."""
        raise ValueError


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Interval(Constraint):
    """A number (``numbers.Integral`` or ``numbers.Real``) between ``left`` and ``right`` (None: unbounded).

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``. A real
    interval takes ints too, but never NaN or infinity.
    """

    def __init__(self, kind: type, left: Optional[float], right: Optional[float], *, closed: str = "both") -> None:
        if kind not in (numbers.Integral, numbers.Real):
            raise TypeError("Interval kind must be numbers.Integral or numbers.Real")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.metavar = "N" if kind is numbers.Integral else "X"

    def has_type_of(self, value: Any) -> bool:
        return _is_int(value) if self.kind is numbers.Integral else _is_real(value)

    def is_satisfied_by(self, value: Any) -> bool:
        if not self.has_type_of(value):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        lo_ok = self.left is None or (v >= self.left if self.closed in ("both", "left") else v > self.left)
        hi_ok = self.right is None or (v <= self.right if self.closed in ("both", "right") else v < self.right)
        return lo_ok and hi_ok

    def describe(self) -> str:
        integral = self.kind is numbers.Integral
        what = "an integer" if integral else "a number"
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.right is None:
            if self.left is None:
                return what
            if self.left == 0 and not lo_in or integral and self.left == 1 and lo_in:
                return "a positive integer" if integral else "a positive number"
            if self.left == 0 and lo_in:
                return f"a non-negative {'integer' if integral else 'number'}"
            return f"{what} {'>=' if lo_in else '>'} {_num(self.left)}"
        if self.left is None:
            return f"{what} {'<=' if hi_in else '<'} {_num(self.right)}"
        return (f"{what} in {'[' if lo_in else '('}{_num(self.left)}, {_num(self.right)}{']' if hi_in else ')'}")

    def parse(self, text: str) -> Any:
        s = text.strip()
        if self.kind is numbers.Integral:
            if not re.fullmatch(r"[+-]?\d+", s):
                raise ValueError
            return int(s)
        v = float(s)
        if not math.isfinite(v):
            raise ValueError
        return v


class Options(Constraint):
    """One of a fixed set of strings (in the order given)."""

    def __init__(self, options: Iterable[str]) -> None:
        self.options = tuple(options)
        self.metavar = "{" + ",".join(self.options) + "}"

    def has_type_of(self, value: Any) -> bool:
        return isinstance(value, str)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def parse(self, text: str) -> Any:
        if text.strip() in self.options:
            return text.strip()
        raise ValueError


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "none"

    def parse(self, text: str) -> Any:
        if text.strip().lower() in ("none", "null"):
            return None
        raise ValueError


class _Boolean(Constraint):
    metavar = "BOOL"

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "true or false"

    def parse(self, text: str) -> Any:
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError


class _RandomState(Constraint):
    metavar = "N"

    def has_type_of(self, value: Any) -> bool:
        return value is None or _is_int(value) or isinstance(value, (np.random.Generator, np.random.RandomState))

    def is_satisfied_by(self, value: Any) -> bool:
        return self.has_type_of(value) and not (_is_int(value) and int(value) < 0)

    def describe(self) -> str:
        return "none, a non-negative int or a numpy Generator"

    def parse(self, text: str) -> Any:
        if not re.fullmatch(r"\d+", text.strip()):
            raise ValueError
        return int(text)


class _Memory(Constraint):
    metavar = "SIZE"

    def has_type_of(self, value: Any) -> bool:
        return isinstance(value, str) or _is_real(value)

    def is_satisfied_by(self, value: Any) -> bool:
        from .validation import parse_memory_budget

        try:
            parse_memory_budget(value)
        except ValueError:
            return False
        return True

    def describe(self) -> str:
        return "a size of at least 1MB such as '1GB' or '512MB', or bytes"

    def parse(self, text: str) -> Any:
        s = text.strip()
        return int(s) if s.isdigit() else s


class _Indices(Constraint):
    metavar = "FILE"

    def has_type_of(self, value: Any) -> bool:
        return not isinstance(value, (str, bytes, dict)) and value is not None and not _is_real(value)

    def is_satisfied_by(self, value: Any) -> bool:
        if not self.has_type_of(value):
            return False
        try:
            arr = np.asarray(value)
        except Exception:
            return False
        if arr.ndim > 1 or arr.dtype == object:
            return False
        if arr.size and arr.dtype.kind == "f":
            return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
        return arr.size == 0 or arr.dtype.kind in "iu"

    def describe(self) -> str:
        return "a list of integer pool indices"

    def parse(self, text: str) -> Any:
        value = _json(text)
        if not isinstance(value, list):
            raise ValueError
        return value


class _InstanceOf(Constraint):
    def __init__(self, kind: type) -> None:
        self.kind = kind

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.kind)

    def describe(self) -> str:
        return {dict: "a dict"}.get(self.kind, f"a {self.kind.__name__}")

    def parse(self, text: str) -> Any:
        value = _json(text)
        if not isinstance(value, self.kind):
            raise ValueError
        return value


def _json(text: str) -> Any:
    import json

    return json.loads(text)  # a ValueError when it is not JSON


class Check(Constraint):
    """A value accepted by ``func(value) -> bool``, described by ``description``."""

    def __init__(self, func: Callable[[Any], bool], description: str, *,
                 parse: Optional[Callable[[str], Any]] = None) -> None:
        self.func, self.description, self._parse = func, description, parse

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.func(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.description

    def parse(self, text: str) -> Any:
        if self._parse is None:
            raise ValueError
        return self._parse(text)


NONE = _NoneConstraint()
_MARKERS = {"boolean": _Boolean(), "random_state": _RandomState(), "memory": _Memory(), "indices": _Indices()}


def make_constraint(c: Any) -> Constraint:
    """A constraint object from a table's short form."""
    if isinstance(c, Constraint):
        return c
    if c is None:
        return NONE
    if isinstance(c, str) and c in _MARKERS:
        return _MARKERS[c]
    if isinstance(c, type):
        return _InstanceOf(c)
    raise TypeError(f"not a parameter constraint: {c!r}")


def is_indices(c: Constraint) -> bool:
    """Whether ``c`` takes pool indices."""
    return isinstance(c, _Indices)


def is_boolean(c: Constraint) -> bool:
    """Whether ``c`` takes True/False."""
    return isinstance(c, _Boolean)


def dict_kind(c: Constraint) -> bool:
    """Whether ``c`` takes a dict (NAME=VALUE pairs on the command line)."""
    return isinstance(c, _InstanceOf) and c.kind is dict
