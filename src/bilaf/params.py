"""Parameter tables: every option of every estimator declared once, and checked in one place.

An estimator declares ``_parameter_constraints``, a dict from each constructor
parameter to a :class:`Param`: the constraints a value must meet (any one of
them suffices, as in scikit-learn's ``_parameter_constraints``) and one line
of help. The same table serves

- the Python API: :func:`validate_params` before any work (``select``),
  unknown names in ``set_params``, ``bilaf.select(**params)``;
- the command line: a flag per parameter, its help, metavar and choices, and
  the parsing of its text (:func:`parse_option`);
- bench method specs (``bilaf:n_cores=50``) and manifests, through
  :func:`parse_option` and :func:`validate_params`.

Constraints are :class:`Interval`, :class:`Options`, ``None``, and the names
``"boolean"``, ``"random_state"``, ``"memory"`` (a size such as ``"1GB"``),
``"indices"`` (pool indices), a type (e.g. ``dict``) or a :class:`Check`
(a callable with a description). An unknown option raises
:class:`~bilaf.errors.ValidationTypeError` (a ``TypeError``); a bad value
raises :class:`~bilaf.errors.ValidationError` (a ``ValueError``; also a
``TypeError`` when no constraint even has the value's type). Messages have one
form: ``{option} must be {what}, got {value}``.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import ValidationError, ValidationTypeError

__all__ = ["Param", "Interval", "Options", "Check", "validate_params", "validate_param", "check_unknown",
           "parse_option", "parse_text_value", "param_table", "ValidationError", "ValidationTypeError"]


def _esc(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


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


_MARKERS = {"boolean": _Boolean(), "random_state": _RandomState(), "memory": _Memory(), "indices": _Indices()}
_NONE = _NoneConstraint()


def _make(c: Any) -> Constraint:
    if isinstance(c, Constraint):
        return c
    if c is None:
        return _NONE
    if isinstance(c, str) and c in _MARKERS:
        return _MARKERS[c]
    if isinstance(c, type):
        return _InstanceOf(c)
    raise TypeError(f"not a parameter constraint: {c!r}")


@dataclass(frozen=True, init=False)
class Param:
    """One constructor parameter: what values it takes and how the command line shows it.

    Parameters
    ----------
    *constraints
        Accepted kinds of value; a value meeting any one is valid.
    help : str
        One line for ``--help``, in the user's words.
    what : str, optional
        How an error message names the valid values (default: the
        constraints' descriptions joined with "or").
    parse : callable, optional
        ``parse(text) -> value`` for the command line and bench specs, when
        the constraints' own parsing does not fit (e.g. a percentage).
    metavar : str, optional
        The flag's metavar (default: from the constraints).
    flag : str or None, optional
        The command-line flag (default ``--name-with-dashes``); ``None``: the
        command line does not offer this parameter as a flag of its own.
    """

    constraints: Tuple[Constraint, ...]
    help: str
    what: Optional[str]
    parse: Optional[Callable[[str], Any]]
    metavar: Optional[str]
    flag: Optional[str]

    def __init__(self, *constraints: Any, help: str, what: Optional[str] = None,
                 parse: Optional[Callable[[str], Any]] = None, metavar: Optional[str] = None,
                 flag: Optional[str] = "") -> None:
        object.__setattr__(self, "constraints", tuple(_make(c) for c in constraints))
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "what", what)
        object.__setattr__(self, "parse", parse)
        object.__setattr__(self, "metavar", metavar)
        object.__setattr__(self, "flag", flag)

    def describe(self) -> str:
        if self.what:
            return self.what
        parts = [c.describe() for c in self.constraints]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]

    def accepts(self, value: Any) -> bool:
        return any(c.is_satisfied_by(value) for c in self.constraints)

    @property
    def choices(self) -> Optional[Tuple[str, ...]]:
        """The strings it takes, when it takes nothing else (for the command line's ``choices``)."""
        if len(self.constraints) == 1 and isinstance(self.constraints[0], Options):
            return self.constraints[0].options
        return None

    @property
    def is_boolean(self) -> bool:
        return len(self.constraints) == 1 and isinstance(self.constraints[0], _Boolean)

    def cli_metavar(self) -> str:
        if self.metavar:
            return self.metavar
        kinds = [c.metavar for c in self.constraints if c is not _NONE and not isinstance(c, Options)]
        return kinds[0] if kinds else "VALUE"


def param_table(estimator: Any) -> Dict[str, Param]:
    """The parameter table of an estimator class or instance."""
    cls = estimator if isinstance(estimator, type) else type(estimator)
    table = getattr(cls, "_parameter_constraints", None)
    if table is None:
        raise TypeError(f"{cls.__name__} declares no _parameter_constraints")
    return table


def _owner(estimator: Any) -> str:
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return cls.__name__


def check_unknown(names: Iterable[str], allowed: Sequence[str], owner: str,
                  owner_refs: Optional[Mapping[str, Any]] = None) -> None:
    """Raise :class:`ValidationTypeError` naming every name not in ``allowed``.

    With ``owner_refs``, ``owner`` is a :class:`~bilaf.errors.ValidationError`
    template whose fields name options (so the command line can show flags).
    """
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        head = owner if owner_refs else _esc(owner)
        raise ValidationTypeError(head + _esc(f" got unknown option(s) {', '.join(unknown)}; "
                                              f"valid: {', '.join(sorted(allowed))}"), **dict(owner_refs or {}))


def validate_param(name: str, value: Any, spec: Param) -> Any:
    """Check one value against its :class:`Param`; returns it unchanged."""
    if spec.accepts(value):
        return value
    shown = value
    if isinstance(value, np.ndarray):
        shown = f"an array of shape {value.shape}"
    else:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
    exc = ValidationError if any(c.has_type_of(value) for c in spec.constraints) else ValidationTypeError
    raise exc("{param} must be " + _esc(spec.describe()) + ", got " + _esc(shown), param=name)


def validate_params(estimator: Any, params: Mapping[str, Any], *, owner: Optional[str] = None,
                    exclude: Sequence[str] = (), owner_refs: Optional[Mapping[str, Any]] = None) -> None:
    """Check option names and values against an estimator's table (class or instance).

    Unknown names raise :class:`ValidationTypeError`; a bad value raises
    :class:`ValidationError` naming the option.
    """
    table = param_table(estimator)
    allowed = [n for n in table if n not in exclude]
    check_unknown(params, allowed, owner or _owner(estimator), owner_refs)
    for name, value in params.items():
        validate_param(name, value, table[name])


def parse_text_value(text: str) -> Any:
    """An option value written as text, for an option with no table: JSON, true/false, none/null, else the text."""
    import json

    s = text.strip()
    low = s.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(s)
    except ValueError:
        return s


def parse_option(name: str, text: Any, spec: Param) -> Any:
    """The value the text ``text`` gives option ``name`` (command line, bench spec); checked.

    Each constraint reads the text in the table's order (so ``none`` is the
    string ``"none"`` for an option that has it among its choices, and ``None``
    otherwise); a value that is not text is only checked.
    """
    if not isinstance(text, str):
        return validate_param(name, text, spec)
    if spec.parse is not None:
        try:
            value = spec.parse(text)
        except ValueError:
            pass  # not a form of its own: the constraints read it
        else:
            return validate_param(name, value, spec)
    for c in spec.constraints:
        try:
            value = c.parse(text)
        except (ValueError, TypeError):
            continue
        if c.is_satisfied_by(value):
            return value
        return validate_param(name, value, spec)  # read, but out of range: say so
    raise ValidationError("{param} must be " + _esc(spec.describe()) + ", got " + _esc(repr(text.strip())),
                          param=name)
