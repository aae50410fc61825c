"""What a bench runs: method specs (``bilaf:n_cores=50``), budgets (``1%``, ``250``) and seeds (``5``, ``0,3``, ``3-4``).

Each is parsed and checked here, before any work, by the rules the command line uses for its flags.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Union

import numpy as np

from ..errors import ValidationError, escape
from ..params import param_table, parse_option, parse_text_value, validate_params
from ..selectors import METHODS, get_selector_class
from ..validation import budget_count, parse_budget

__all__ = ["MethodSpec", "Budget", "parse_methods", "parse_method_spec", "parse_budgets", "parse_seeds"]


@dataclass(frozen=True)
class MethodSpec:
    """A selection method with fixed hyper-parameters, e.g. ``bilaf:n_cores=50,normalize=true``.

    Attributes
    ----------
    label : str
        How the method is named in tables and plots (the spec as written).
    method : str
        A registered method name (:data:`bilaf.METHODS`).
    params : dict
        Constructor arguments of the selector.
    """

    label: str
    method: str
    params: Dict[str, Any] = field(default_factory=dict)


def parse_method_spec(spec: Union[str, MethodSpec]) -> MethodSpec:
    """Parse ``NAME`` or ``NAME:key=value,key=value``.

    Each value is read by the selector's parameter table, as the command line
    reads its flags (:func:`bilaf.params.parse_option`): ``none`` is None for
    an option that takes None and has no ``"none"`` choice, a percentage works
    where the command line takes one, and a bad value fails here, before any
    work. Names are checked against the table too (:func:`parse_methods`).
    """
    if isinstance(spec, MethodSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationError(f"a method spec must be a non-empty string like 'bilaf:n_cores=50', got {spec!r}")
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in METHODS:
        raise ValidationError(f"unknown method {name!r} in {text!r}; choose one of {', '.join(METHODS)}")
    params: Dict[str, Any] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key.isidentifier():
                raise ValidationError(f"bad option {item.strip()!r} in method spec {text!r}; write key=value")
            if key == "random_state":
                raise ValidationError(f"method spec {text!r}: the seed comes from --seeds, not random_state")
            params[key] = value
    try:
        table = param_table(get_selector_class(name))
    except ImportError:  # a selector this installation cannot import: its runs fail later, one by one
        table = {}
    try:
        params = {k: parse_option(k, v, table[k]) if k in table else parse_text_value(v) for k, v in params.items()}
    except ValidationError as exc:  # a spec names options as Python does (key=value): so does its error
        raise type(exc)(escape(f"method spec {text!r}: {exc.render()}")) from None
    return MethodSpec(label=text, method=name, params=params)


def _check_spec_params(spec: MethodSpec) -> None:
    """Unknown constructor arguments fail here; a selector that cannot be imported fails later, per run."""
    try:
        cls = get_selector_class(spec.method)
    except ImportError:
        return
    try:
        validate_params(cls, spec.params, owner=f"method spec {spec.label!r}", exclude=("random_state",))
    except ValidationError as exc:
        if exc.refs:  # a bad value: name it as the spec does
            raise type(exc)(escape(f"method spec {spec.label!r}: {exc.render()}")) from None
        raise


def parse_methods(methods: Union[str, Iterable[Union[str, MethodSpec]]]) -> List[MethodSpec]:
    """Parse a list of method specs, or one comma-separated string of them.

    In a string, a comma followed by ``key=value`` continues the previous spec:
    ``"random,bilaf:n_cores=50,normalize=true,kmeans"`` is three methods.
    """
    if isinstance(methods, str):
        parts: List[str] = []
        for tok in methods.split(","):
            tok = tok.strip()
            if not tok:
                continue
            if "=" in tok and ":" not in tok and parts:
                parts[-1] += "," + tok
            else:
                parts.append(tok)
        items: List[Union[str, MethodSpec]] = parts
    else:
        items = list(methods)
    specs = [parse_method_spec(m) for m in items]
    if not specs:
        raise ValidationError("no methods given")
    labels = [s.label for s in specs]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ValidationError(f"method(s) listed twice: {', '.join(dup)}")
    for s in specs:
        _check_spec_params(s)
    return specs


@dataclass(frozen=True)
class Budget:
    """A budget as written (``"0.5%"``, ``"0.01"``, ``"250"``) and its value (fraction or count)."""

    label: str
    value: Union[int, float]

    def count(self, n_samples: int) -> int:
        return budget_count(self.value, n_samples)


def _parse_budget(token: Union[str, int, float, Budget]) -> Budget:
    """A budget as written (the command line's rule, :func:`bilaf.validation.parse_budget`), labelled."""
    if isinstance(token, Budget):
        return token
    if isinstance(token, (bool, np.bool_)):
        raise ValidationError(f"bad budget {token!r}")
    if isinstance(token, numbers.Real) and not isinstance(token, numbers.Integral) and not 0 < float(token) < 1:
        raise ValidationError(f"bad budget {token!r}: a float budget is a fraction and must lie in (0, 1); "
                              "pass an int for a count")
    value = parse_budget(token if isinstance(token, numbers.Real) else str(token))
    if isinstance(value, numbers.Integral):
        return Budget(str(int(value)), int(value))
    return Budget(f"{100 * float(value):g}%", float(value))


def parse_budgets(budgets: Union[str, Iterable[Any]]) -> List[Budget]:
    """Parse budgets: a comma-separated string or a list of percentages, fractions or counts."""
    items = [t for t in budgets.split(",") if t.strip()] if isinstance(budgets, str) else list(budgets)
    out = [_parse_budget(t) for t in items]
    if not out:
        raise ValidationError("no budgets given")
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        raise ValidationError(f"a budget is listed twice: {', '.join(labels)}")
    return out


def parse_seeds(seeds: Union[int, str, Iterable[int]]) -> List[int]:
    """``5`` or ``"5"`` -> seeds 0..4; ``"0,3,7"``, ``"3,"`` or a list -> those seeds; ``"3-4"`` -> seeds 3 and 4.

    A lone number is a count, so a single seed other than 0 is written ``"3,"`` or ``"3-3"``.
    """
    if isinstance(seeds, str):
        text = seeds.strip()
        try:
            if "," in text or "-" in text:
                seeds = []
                for part in (p.strip() for p in text.split(",")):
                    if not part:
                        continue
                    lo, sep, hi = part.partition("-")
                    if sep and (not lo.strip().isdigit() or not hi.strip().isdigit() or int(hi) < int(lo)):
                        raise ValueError
                    seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
            elif text.isdigit():
                seeds = int(text)
            else:
                raise ValueError
        except ValueError:
            raise ValidationError(f"bad seeds {text!r}: a count ('5' = 0..4), a list ('0,1,2', or '3,' for seed 3 alone) "
                             f"or a range ('3-4')") from None
    if isinstance(seeds, bool):
        raise ValidationError(f"bad seeds {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if int(seeds) < 1:
            raise ValidationError(f"the number of seeds must be at least 1, got {seeds}")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise ValidationError(f"seeds must be distinct non-negative ints, got {out}")
    return out
