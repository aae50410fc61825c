"""The one copy of each small utility: devices, tensors to numpy, file permissions."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bilaf.errors import ValidationError
from bilaf.kernels.tensors import resolve_device, to_numpy
from bilaf.utils.files import default_mode, process_umask


def test_resolve_device_names_and_passes_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    want = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == want and resolve_device(None) == want


@pytest.mark.parametrize("device, message", [("tpu", "unknown device='tpu'"), ("meta", "unsupported device='meta'"),
                                             (3.5, "device must be auto, cpu, cuda or cuda:N, got 3.5")])
def test_resolve_device_refuses_what_is_not_a_device_here(device, message):
    with pytest.raises(ValidationError, match=message):
        resolve_device(device)


def test_resolve_device_speaks_the_command_lines_words():
    with pytest.raises(ValidationError) as err:
        resolve_device("meta")
    assert err.value.render(lambda name: "--" + name.replace("_", "-")) == (
        "unsupported --device meta; use auto, cpu, cuda or cuda:N")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_resolve_device_without_a_gpu():
    for name in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ValidationError, match="CUDA is not available here: torch sees no CUDA GPU"):
            resolve_device(name)


@settings(max_examples=50, deadline=None)
@given(A=arrays(st.sampled_from([np.float32, np.float64, np.int64]), st.tuples(st.integers(0, 5), st.integers(0, 4)),
                elements=st.integers(-1000, 1000)),
       dtype=st.sampled_from([None, np.float32, np.float64]))
def test_to_numpy_equals_numpys_conversion_for_arrays_and_tensors(A, dtype):
    want = np.asarray(A, dtype=dtype)
    for got in (to_numpy(A, dtype), to_numpy(torch.from_numpy(A), dtype),
                to_numpy(torch.from_numpy(A).requires_grad_(A.dtype != np.int64), dtype)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_default_mode_is_what_open_and_mkdir_give(tmp_path):
    plain = tmp_path / "plain.txt"
    with open(plain, "w"):
        pass
    folder = tmp_path / "folder"
    os.mkdir(folder)
    assert default_mode() == plain.stat().st_mode & 0o777
    assert default_mode(directory=True) == folder.stat().st_mode & 0o777
    before = os.umask(0o027)
    try:
        assert process_umask() == 0o027 and default_mode() == 0o640 and default_mode(directory=True) == 0o750
        assert process_umask() == 0o027  # reading it leaves it as it was
    finally:
        os.umask(before)


def test_one_git_state_behind_both_version_stamps():
    """The bench's code stamp and the manifest's source commit come from one reader of the checkout."""
    import re

    from bilaf import __version__
    from bilaf.bench import code_version
    from bilaf.provenance import _source_commit, git_state

    full, short = git_state(), git_state(short=True)
    stamp, commit = code_version(), _source_commit()
    if full is None:  # not a git checkout (an installed wheel)
        assert stamp == f"bilaf {__version__}" and commit is None
        return
    assert re.fullmatch(r"[0-9a-f]{40}", full[0]) and full[0].startswith(short[0])
    assert stamp == f"bilaf {__version__} {short[0]}" + ("+changes" if short[1] else "")
    assert commit is not None and commit.split("+")[0] == full[0]
