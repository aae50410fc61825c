"""The parameter tables: one source of every option's checks, CLI flag and help; scikit-learn's parameter API."""

import argparse
import numbers
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils.estimator_checks import (check_get_params_invariance, check_no_attributes_set_in_init,
                                            check_parameters_default_constructible, check_set_params)

import bilaf
from bilaf.bench import parse_budgets, parse_methods
from bilaf.cli import build_parser, main
from bilaf.errors import ValidationError, ValidationTypeError
from bilaf.params import Interval, Param, param_table, parse_option, validate_params
from bilaf.selectors import METHODS, get_selector_class
from bilaf.selectors.base import BaseSelector
from bilaf.validation import parse_budget

X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
CLASSES = [get_selector_class(m) for m in METHODS]


def _defaults(cls):
    from bilaf.cli.options import signature_defaults

    return signature_defaults(cls)


# -- scikit-learn's parameter API -------------------------------------------------------------------

def test_clone_of_bilaf():
    """Regression: clone(BiLAF()) raised "get_params() got an unexpected keyword argument 'deep'"."""
    est = bilaf.BiLAF(n_cores=7, core_params={"n_iter": 5})
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    assert copy.core_params == {"n_iter": 5} and copy.core_params is not est.core_params


@pytest.mark.parametrize("cls", CLASSES, ids=METHODS)
@pytest.mark.parametrize("check", [check_get_params_invariance, check_set_params,
                                   check_parameters_default_constructible, check_no_attributes_set_in_init])
def test_scikit_learn_parameter_checks(cls, check):
    """scikit-learn's own checks of get_params / set_params / clone / __init__, on every selector.

    (The checks that call ``fit``/``predict`` do not apply: a selector has ``select(X, budget)``.)
    """
    with _no_set_params_warning():
        check(cls.__name__, cls())


class _no_set_params_warning:
    """check_set_params warns when set_params validates; ours must not (values are checked by select)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.caught = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        bad = [str(w.message) for w in self.caught if "set_params" in str(w.message)]
        assert not bad, bad
        return False


def test_set_params_nested_and_unknown():
    sel = bilaf.KMeansSelector()
    assert sel.set_params(max_iter=5, n_init=2) is sel and sel.max_iter == 5 and sel.n_init == 2
    with pytest.raises(TypeError, match=r"KMeansSelector got unknown option\(s\) n_cores; valid: .*max_iter"):
        sel.set_params(n_cores=3)
    with pytest.raises(ValueError):  # scikit-learn callers catch ValueError: the same error is one too
        sel.set_params(n_cores=3)


# -- the table is the constructor --------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES, ids=METHODS)
def test_table_matches_constructor_and_accepts_defaults(cls):
    table = param_table(cls)
    assert list(table) and set(table) == set(cls._param_names())
    for name, spec in table.items():
        assert isinstance(spec, Param) and spec.help, (cls.__name__, name)
    validate_params(cls, _defaults(cls))  # every default is a valid value


def test_a_selector_must_declare_its_table():
    with pytest.raises(TypeError, match="undeclared.*'width'"):
        class Bad(BaseSelector):
            def __init__(self, width: int = 3, **kw):
                super().__init__(**kw)
                self.width = width

    class Good(BaseSelector):
        _parameter_constraints = {**BaseSelector._parameter_constraints,
                                  "width": Param(Interval(numbers.Integral, 1, None), help="a width")}

        def __init__(self, width: int = 3, **kw):
            super().__init__(**kw)
            self.width = width

    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        Good(width=0).select(X, 3)


# -- one check, one message ---------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: bilaf.select(X, 3, method="kmeans", n_cores=3),
    lambda: bilaf.KMeansSelector().set_params(n_cores=3),
    lambda: parse_methods("kmeans:n_cores=3"),
    lambda: validate_params(bilaf.KMeansSelector, {"n_cores": 3}, owner="x"),
])
def test_unknown_option_is_a_type_error_everywhere(call):
    with pytest.raises(ValidationTypeError, match=r"got unknown option\(s\) n_cores; valid: "):
        call()


@pytest.mark.parametrize("method,kw,msg", [
    ("bilaf", {"opponent_penalty": 0.5}, "opponent_penalty must be a number >= 1, got 0.5"),
    ("bilaf", {"remove_fraction": 1.0}, r"remove_fraction must be a number in \[0, 1\), got 1.0"),
    ("activeft", {"lr": 0}, "lr must be a positive number, got 0"),
    ("activeft", {"temperature": -1.0}, "temperature must be a positive number, got -1.0"),
    ("kmeans", {"max_iter": 0}, "max_iter must be a positive integer, got 0"),
    ("typiclust", {"algorithm": "twolevel"}, "algorithm must be one of 'auto', 'lloyd', 'full', 'minibatch', 'faiss'"),
    ("probcover", {"alpha": 0}, r"alpha must be a number in \(0, 1\], got 0"),
    ("kcenter", {"normalize": "maybe"}, "normalize must be true or false, got 'maybe'"),
])
def test_bad_value_one_format_before_any_work(method, kw, msg):
    with pytest.raises(ValueError, match=msg):
        bilaf.select(X, 3, method=method, **kw)
    with pytest.raises(ValueError, match=msg):  # bench specs are checked by the same table, before any run
        parse_methods(f"{method}:" + ",".join(f"{k}={v}" for k, v in kw.items()))


def test_bad_type_is_a_type_error_too():
    with pytest.raises(TypeError, match="density_k must be a positive integer, got 'ten'"):
        bilaf.select(X, 3, method="bilaf", density_k="ten")


def test_text_is_read_by_the_table():
    """One rule for the command line and bench specs: 'none' is None only where None is valid and not a choice."""
    bil = param_table(bilaf.BiLAF)
    assert parse_option("denoise", "none", bil["denoise"]) == "none"
    assert parse_option("n_cores", "none", bil["n_cores"]) is None
    assert parse_option("n_cores", "auto", bil["n_cores"]) == "auto"
    assert parse_option("n_cores", "0.5%", bil["n_cores"]) == pytest.approx(0.005)
    assert parse_option("n_cores", "40", bil["n_cores"]) == 40 and type(parse_option("n_cores", "40", bil["n_cores"])) is int
    with pytest.raises(ValidationError, match="n_cores must be 'auto', none, a positive int or a fraction"):
        parse_option("n_cores", "1.5", bil["n_cores"])
    spec = parse_methods("bilaf:denoise=none,n_cores=none,opponent_penalty=2,normalize=true")[0]
    assert spec.params == {"denoise": "none", "n_cores": None, "opponent_penalty": 2.0, "normalize": True}


# -- budgets: one rule ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.from_regex(r"[0-9.e%+\- ]{0,7}", fullmatch=True), st.sampled_from(
    ["1", "1.0", "1e2", "0.5", "50%", "100%", "0%", "250", "0.25", ".5", "2.", "1%"])))
def test_command_line_and_bench_read_budgets_alike(text):
    try:
        want = parse_budget(text)
    except ValidationError:
        with pytest.raises(ValueError, match="bad budget"):
            parse_budgets([text])
        return
    assert parse_budgets([text])[0].value == want


@pytest.mark.parametrize("text", ["1.0", "1e2", "2.5", "3.0"])
def test_ambiguous_budgets_refused(text):
    """Regression (issue 20): -b 1.0 meant one sample and -b 1e2 a hundred."""
    with pytest.raises(ValidationError, match="bad budget"):
        parse_budget(text)


# -- the command line -------------------------------------------------------------------------------------

def _help(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    return capsys.readouterr().out


def test_select_help_speaks_the_users_language(capsys):
    text = " ".join(_help("select", capsys).split())
    for python in ("None: chosen from the data", "raises ValueError", "TrackedArgmax", "bilaf.kernels", ":class:",
                   "``"):
        assert python not in text, python


def test_every_flag_has_a_metavar_or_choices():
    """Regression: evaluate and bench showed argparse's raw metavars (SEED, KNN_K)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for verb, p in sub.choices.items():
        for a in p._actions:
            if a.option_strings and a.nargs != 0:
                assert a.metavar is not None or a.choices is not None, (verb, a.option_strings)


def test_flags_come_from_the_tables(capsys):
    """Every table entry with a flag is a flag of `bilaf select`, with the table's help."""
    text = " ".join(_help("select", capsys).split())
    seen = set()
    for cls in CLASSES:
        for name, spec in param_table(cls).items():
            if spec.flag is None:
                continue
            flag = spec.flag if isinstance(spec.flag, str) else spec.flag[0]
            flag = flag or "--" + name.replace("_", "-")
            assert re.search(rf"{re.escape(flag)}\b", text), (cls.__name__, name)
            if name not in seen:  # an option several methods take shows the first one's help
                assert " ".join(spec.help.split())[:40] in text, (cls.__name__, name)
            seen.add(name)


@pytest.mark.parametrize("args,want", [
    (["--opponent-penalty", "0.5"], "error: --opponent-penalty must be a number >= 1, got 0.5"),
    (["--density-k", "ten"], "error: --density-k must be a positive integer, got 'ten'"),
    (["-m", "activeft", "--lr", "-1"], "error: --lr must be a positive number, got -1.0"),
    (["--core-param", "n_init=0", "--core-selector", "kmeans"], "--core-param n_init=0: n_init must be a positive"),
    (["-m", "kmeans", "--param", "n_init=0"], "error: --n-init must be a positive integer, got 0"),
    (["-m", "kmeans", "--algorithm", "faiss"], None),
])
def test_cli_errors_name_flags(tmp_path, capsys, args, want):
    np.save(tmp_path / "x.npy", X)
    rc = main(["select", str(tmp_path / "x.npy"), "-b", "5", "-q", "-o", str(tmp_path / "s.json"), *args])
    err = capsys.readouterr().err
    if want is None:  # faiss installed or not: either it runs or the line names the flag
        assert rc == 0 or "--algorithm faiss needs faiss" in err, err
        return
    assert rc == 2 and want in err and err.count("\n") == 1, err
    assert "_" not in err.split("error:", 1)[1].split(" must")[0].replace("n_init=0: n_init", ""), err


def test_on_error_message_names_the_flag():
    exc = ValidationError("cannot read a.jpg: broken; use {setting} to skip bad files", setting=("on_error", "skip"))
    assert str(exc) == "cannot read a.jpg: broken; use on_error='skip' to skip bad files"
    from bilaf.cli.options import flag_of

    assert exc.render(flag_of) == "cannot read a.jpg: broken; use --on-error skip to skip bad files"
    import pickle

    assert pickle.loads(pickle.dumps(exc)).render(flag_of) == exc.render(flag_of)


def test_only_bad_input_becomes_one_line(tmp_path, capsys, monkeypatch):
    """Regression: the CLI turned any internal TypeError/ValueError into exit 2, hiding bugs."""
    np.save(tmp_path / "x.npy", X)
    cls = get_selector_class("kcenter")

    def broken(self, *a, **k):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")  # a bug, not bad input

    monkeypatch.setattr(cls, "_select", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["select", str(tmp_path / "x.npy"), "-b", "5", "-m", "kcenter", "-q", "-o", str(tmp_path / "s.json")])
    assert main(["select", str(tmp_path / "x.npy"), "-b", "0", "-m", "kcenter", "-q",
                 "-o", str(tmp_path / "s.json")]) == 2
    assert "bad budget '0'" in capsys.readouterr().err


def test_evaluate_errors_name_its_flags(tmp_path, capsys):
    """A library check of an evaluation option reads as the verb's flag (--k, --C), not the Python argument."""
    import json

    from bilaf.features import FeatureSet

    y = np.arange(60) % 3
    FeatureSet(features=X, ids=[str(i) for i in range(60)], labels=y).save(tmp_path / "pool.npz")
    FeatureSet(features=X[:20], ids=[str(i) for i in range(20)], labels=y[:20]).save(tmp_path / "test.npz")
    (tmp_path / "sel.json").write_text(json.dumps(list(range(0, 60, 5))))
    base = ["evaluate", str(tmp_path / "pool.npz"), str(tmp_path / "sel.json"), "--test", str(tmp_path / "test.npz"),
            "-q"]
    assert main(base + ["--protocol", "knn", "--k", "0"]) == 2
    assert "error: --k must be a positive integer, got 0" in capsys.readouterr().err
    assert main(base + ["--protocol", "linear", "--C", "-1"]) == 2
    assert "error: --C must be a positive number, got -1.0" in capsys.readouterr().err


def test_param_values_as_json(tmp_path, capsys):
    """--param takes JSON for dict and index options, as before the tables."""
    bil = param_table(bilaf.BiLAF)
    assert parse_option("core_params", '{"max_iter": 3}', bil["core_params"]) == {"max_iter": 3}
    assert parse_option("init", "[1, 2]", param_table(bilaf.ActiveFT)["init"]) == [1, 2]
    np.save(tmp_path / "x.npy", X)
    assert main(["select", str(tmp_path / "x.npy"), "-b", "5", "-q", "--param", 'core_params={"max_iter": 3}',
                 "-o", str(tmp_path / "s.json")]) == 0, capsys.readouterr().err
    assert parse_methods("activeft:n_iter=5")[0].params == {"n_iter": 5}


def test_bench_spec_errors_keep_the_specs_names(tmp_path, capsys):
    """A bench method spec is written key=value with Python names; its error names them the same way."""
    from bilaf.features import FeatureSet

    y = np.arange(60) % 3
    FeatureSet(features=X, ids=[str(i) for i in range(60)], labels=y).save(tmp_path / "pool.npz")
    FeatureSet(features=X[:20], ids=[str(i) for i in range(20)], labels=y[:20]).save(tmp_path / "test.npz")
    base = ["bench", str(tmp_path / "pool.npz"), "--test", str(tmp_path / "test.npz"), "-o", str(tmp_path / "b"),
            "--budgets", "5", "--seeds", "1", "-q"]
    assert main(base + ["--methods", "bilaf:opponent_penalty=0.5"]) == 2
    assert ("error: method spec 'bilaf:opponent_penalty=0.5': opponent_penalty must be a number >= 1, got 0.5"
            in capsys.readouterr().err)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
