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

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import ValidationError, ValidationTypeError
from .param_constraints import NONE, Check, Constraint, Interval, Options, is_boolean, make_constraint

__all__ = ["Param", "Interval", "Options", "Check", "validate_params", "validate_param", "check_unknown",
           "parse_option", "parse_text_value", "param_table", "ValidationError", "ValidationTypeError"]


def _esc(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


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
        object.__setattr__(self, "constraints", tuple(make_constraint(c) for c in constraints))
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
        return len(self.constraints) == 1 and is_boolean(self.constraints[0])

    def cli_metavar(self) -> str:
        if self.metavar:
            return self.metavar
        kinds = [c.metavar for c in self.constraints if c is not NONE and not isinstance(c, Options)]
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
