"""The selectors' command-line options, generated from their parameter tables.

Each constructor parameter of each selector is declared once, in the
selector's ``_parameter_constraints`` (:mod:`bilaf.params`): its constraints,
its one line of help and its flag. This module turns those tables into
``bilaf select`` flags (help, metavar, choices, defaults read from the
constructors) and turns the flags' text back into checked values with the
chosen method's table (:func:`bilaf.params.parse_option`). Nothing here
parses docstrings.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ValidationError
from ..param_constraints import dict_kind, is_indices
from ..params import Param, param_table, parse_option, parse_text_value

__all__ = ["flag_of", "add_selector_options", "selector_params", "available_classes", "signature_defaults"]

#: parameters whose command-line flag is not ``--<name-with-dashes>``
_SPECIAL_FLAGS = {"random_state": "--seed", "verbose": "--progress"}


def _flags(name: str, spec: Optional[Param]) -> Tuple[str, ...]:
    if spec is not None and spec.flag:
        return (spec.flag,) if isinstance(spec.flag, str) else tuple(spec.flag)
    return ("--" + name.replace("_", "-"),)


def flag_of(name: str) -> str:
    """The command-line flag of a Python parameter name (for messages)."""
    if name in _SPECIAL_FLAGS:
        return _SPECIAL_FLAGS[name]
    for cls in available_classes().values():
        spec = param_table(cls).get(name)
        if spec is not None:
            return _flags(name, spec)[0]
    return "--" + name.replace("_", "-")


def signature_defaults(cls: type) -> Dict[str, Any]:
    """Constructor defaults by parameter name (the class and its bases)."""
    out: Dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object:
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in out:
                out[p.name] = p.default
    return out


def available_classes() -> Dict[str, type]:
    """Method name -> selector class, for the methods this installation can import."""
    from ..selectors import METHODS, get_selector_class

    out = {}
    for m in METHODS:
        try:
            out[m] = get_selector_class(m)
        except (ImportError, AttributeError):  # a method whose module is not in this build
            continue
    return out


def _fmt_default(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _is_dict(spec: Param) -> bool:
    return any(dict_kind(c) for c in spec.constraints)


def _add(group: Any, name: str, specs: Dict[str, Param], default_text: str) -> None:
    """One flag for parameter ``name``, which the methods of ``specs`` take (method -> its Param)."""
    first = next(iter(specs.values()))
    flags = _flags(name, first)
    help_text = first.help.replace("%", "%%")
    others = [m for m, s in specs.items() if s.help != first.help]
    if others:  # the help text is the first method's; the others document their own
        help_text += f" [{', '.join(others)}: see docs/baselines.md]"
    help_text += f" ({default_text})"
    dest = f"opt_{name}"
    if all(s.is_boolean for s in specs.values()):
        group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif _is_dict(first):
        group.add_argument(*flags, dest=dest, action="append", default=None, metavar=first.cli_metavar(),
                           help=help_text)
    elif all(s.choices for s in specs.values()):
        choices: List[str] = []
        for s in specs.values():
            choices += [c for c in s.choices if c not in choices]
        group.add_argument(*flags, dest=dest, choices=choices, default=None, help=help_text)
    else:
        group.add_argument(*flags, dest=dest, default=None, metavar=first.cli_metavar(), help=help_text)


def add_selector_options(parser: argparse.ArgumentParser, classes: Dict[str, type]) -> None:
    """Add a flag for every parameter of every selector in ``classes``, in three groups."""
    from ..selectors.base import BaseSelector

    common = {n: s for n, s in BaseSelector._parameter_constraints.items() if s.flag is not None}
    defaults = {m: signature_defaults(c) for m, c in classes.items()}
    if "bilaf" in classes:
        gb = parser.add_argument_group("BiLAF options (method bilaf)")
        for name, spec in param_table(classes["bilaf"]).items():
            if name in common or spec.flag is None:
                continue
            d = defaults["bilaf"].get(name)
            shown = "auto" if name == "n_cores" and d is None else _fmt_default(d)
            _add(gb, name, {"bilaf": spec}, f"default: {shown}")
    gc = parser.add_argument_group("options of every method")
    base = signature_defaults(BaseSelector)
    for name, spec in common.items():
        shown = _fmt_default(base.get(name))
        odd = {m: d.get(name) for m, d in defaults.items() if d.get(name) != base.get(name)}
        if odd:  # a method with its own default: say so
            shown += "; " + ", ".join(f"{m}: {_fmt_default(v)}" for m, v in odd.items())
        _add(gc, name, {"bilaf": spec}, f"default: {shown}")
    taken = set(common) | (set(param_table(classes["bilaf"])) if "bilaf" in classes else set())
    others: Dict[str, Dict[str, Param]] = {}
    for m, cls in classes.items():
        if m == "bilaf":
            continue
        for name, spec in param_table(cls).items():
            if name in taken or spec.flag is None:
                continue
            others.setdefault(name, {})[m] = spec
    if others:
        ga = parser.add_argument_group("options of the other methods")
        for name, specs in others.items():
            ds = {m: defaults[m].get(name) for m in specs}
            if len({repr(v) for v in ds.values()}) > 1:  # methods disagree: show each one's default
                shown = "; ".join(f"{m}: {_fmt_default(v)}" for m, v in ds.items())
            else:
                shown = _fmt_default(next(iter(ds.values())))
            _add(ga, name, specs, f"{', '.join(specs)}; default: {shown}")


# -- turning the flags' text into values -------------------------------------------------------------

def _kv(items: Sequence[str], flag: str) -> Dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValidationError(f"{flag} expects NAME=VALUE, got {item!r}".replace("{", "{{").replace("}", "}}"))
        out[name.strip().replace("-", "_")] = value
    return out


def _takes_indices(spec: Param) -> bool:
    return any(is_indices(c) for c in spec.constraints)


def convert(name: str, raw: Any, spec: Param, read_indices: Callable[[str, str], list]) -> Any:
    """The value of option ``name`` from its command-line text, checked by its :class:`Param`.

    For an option that takes pool indices, a text that is no other valid value
    names a file of indices, read by ``read_indices(path, what)``.
    """
    if raw is None or isinstance(raw, bool):
        return raw
    try:
        return parse_option(name, raw, spec)
    except ValidationError:
        if not _takes_indices(spec):
            raise
    path = str(raw).strip()
    if not Path(path).exists():
        opts = [o for c in spec.constraints for o in getattr(c, "options", ())]
        what = f"neither one of {', '.join(opts)} nor a file of indices" if opts else "not a file of indices"
        raise ValidationError("{param} " + f"{path!r} is {what}".replace("{", "{{").replace("}", "}}"), param=name)
    return read_indices(path, flag_of(name).lstrip("-"))


def selector_params(args: argparse.Namespace, method: str, read_indices: Callable[[str, str], list]) -> Dict[str, Any]:
    """The constructor options the command line sets (only those given), checked with ``method``'s table.

    ``read_indices(path, what)`` reads a file of pool indices (options such as
    ``--cores FILE``).
    """
    from ..selectors import get_selector_class

    cls = get_selector_class(method)
    table = param_table(cls)
    given: Dict[str, Any] = {}
    flags: Dict[str, str] = {}
    raw: Dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("opt_") and value is not None:
            raw[key[4:]] = value
            flags[key[4:]] = flag_of(key[4:])
    for name, value in _kv(args.param, "--param").items():
        if name == "random_state":
            raise ValidationError("use --seed for the random seed, not --param random_state")
        raw[name] = value
        flags[name] = f"--param {name}"
    for name in raw:
        if name not in table or table[name].flag is None:
            allowed = [n for n in table if n != "random_state"]
            raise ValidationError(f"option {flags[name]} does not apply to method {method!r} (its options: "
                                  f"{', '.join(flag_of(a) for a in allowed)})")
    for name, value in raw.items():
        spec = table[name]
        if _is_dict(spec) and isinstance(value, list):  # NAME=VALUE pairs, e.g. --core-param
            given[name] = _dict_option(cls, name, _kv(value, flags[name]), raw)
        else:
            given[name] = convert(name, value, spec, read_indices)
    return given


def _dict_option(cls: type, name: str, pairs: Dict[str, str], raw: Dict[str, Any]) -> Dict[str, Any]:
    """``--core-param NAME=VALUE`` pairs, each value read by the core selector's table when it has the name."""
    sub_table: Dict[str, Param] = {}
    if name == "core_params" and hasattr(cls, "core_selector_class"):
        try:
            sub = cls.core_selector_class(raw.get("core_selector", "auto"), raw.get("n_cores"))
            sub_table = param_table(sub)
        except ValidationError:
            sub_table = {}
    out = {}
    for k, v in pairs.items():
        try:
            out[k] = parse_option(k, v, sub_table[k]) if k in sub_table else parse_text_value(v)
        except ValidationError as exc:
            raise ValidationError(f"--core-param {k}={v}: {exc.render()}".replace("{", "{{").replace("}", "}}")) \
                from None
    return out
