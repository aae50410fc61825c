"""Every verb's --help renders (a stray '%' in a help string crashes argparse)."""

import pytest

from bilaf.cli import VERBS, main


@pytest.mark.parametrize("verb", VERBS)
def test_help_renders(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert verb in out and "default" in out.lower()


def test_unknown_verb_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["selekt"])
    assert exc.value.code == 2
