"""The exceptions bilaf raises for bad input from its user.

Every check of user input raises :class:`ValidationError` (a ``ValueError``)
or :class:`ValidationTypeError` (also a ``TypeError``: a wrong type, or an
option the estimator does not take). The command line prints these as one
line with exit code 2; any other exception is a bug and keeps its traceback.

A message may name options of an estimator; it is written with Python names
(``n_cores``, ``on_error='skip'``) and :meth:`ValidationError.render` turns
them into the command line's words (``--n-cores``, ``--on-error skip``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

__all__ = ["ValidationError", "ValidationTypeError", "escape"]

Ref = Union[str, Tuple[str, Any]]


def _py(ref: Ref) -> str:
    if isinstance(ref, tuple):
        return f"{ref[0]}={ref[1]!r}"
    return ref


class ValidationError(ValueError):
    """Bad input from the user (a bad value): one line naming the problem.

    Parameters
    ----------
    template : str
        The message. Fields in braces name options: ``{param}`` for ``param``,
        any other field for the keyword of the same name.
    param : str, optional
        The option the message is about (a constructor parameter name).
    **refs : str or (str, value)
        Other fields of ``template``: an option name, or an option and a value
        (shown as ``name=value`` in Python, ``--flag value`` on the command line).
    """

    def __init__(self, template: str, *, param: Optional[str] = None, **refs: Ref) -> None:
        self.template = template
        self.param = param
        self.refs = dict(refs)
        if param is not None:
            self.refs.setdefault("param", param)
        super().__init__(self.render())

    def render(self, flag: Optional[Callable[[str], str]] = None) -> str:
        """The message with option names in Python (``flag=None``) or as ``flag(name)`` gives them."""
        if not self.refs:
            return self.template
        if flag is None:
            fields = {k: _py(v) for k, v in self.refs.items()}
        else:
            fields = {k: (f"{flag(v[0])} {_cli_value(v[1])}" if isinstance(v, tuple) else flag(v))
                      for k, v in self.refs.items()}
        return self.template.format(**fields)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> Any:  # keep the option names across pickling (e.g. from a worker process)
        return (_rebuild, (type(self), self.template, self.param, self.refs))


def _rebuild(cls: type, template: str, param: Optional[str], refs: dict) -> "ValidationError":
    refs = {k: v for k, v in refs.items() if k != "param"}
    return cls(template, param=param, **refs)


def escape(text: str) -> str:
    """``text`` with its braces doubled, to be part of a :class:`ValidationError` template."""
    return text.replace("{", "{{").replace("}", "}}")


class ValidationTypeError(ValidationError, TypeError):
    """Bad input of the wrong type, or an option the estimator does not take (a ``TypeError`` too)."""


def _cli_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
