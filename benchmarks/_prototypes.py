"""Library changes tried in the benchmark only (``scale.py --prototype NAME``), to measure them before proposing.

* ``stage2-one-thread``: BiLAF's per-pseudo-class loops (denoising, boundary
  selection) run with one torch thread. Their tensors are small (one
  pseudo-class), so a second thread buys nothing, and when other processes
  share the cores torch's OpenMP threads wait on each other at every one of
  the tens of thousands of small operations (measured: 10x slower at N=50,000).
* ``onednn``: float32 matrix products through oneDNN instead of MKL (see
  ``_onednn.py``); ActiveFT's nearest-centroid pass and the kernels' distance
  blocks.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator, Sequence
from unittest import mock

import torch

PROTOTYPES = ("stage2-one-thread", "onednn")


@contextmanager
def stage2_one_thread() -> Iterator[None]:
    from bilaf.selectors.bilaf import BiLAF

    original = BiLAF._class_map

    def _class_map(self, fn, items, n_items, cfg, desc):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return original(self, fn, items, n_items, cfg, desc)
        finally:
            torch.set_num_threads(before)

    with mock.patch.object(BiLAF, "_class_map", _class_map):
        yield


@contextmanager
def applied(names: Sequence[str]) -> Iterator[None]:
    with ExitStack() as stack:
        for name in names:
            if name == "stage2-one-thread":
                stack.enter_context(stage2_one_thread())
            elif name == "onednn":
                from _onednn import patched

                stack.enter_context(patched())
            else:
                raise ValueError(f"unknown prototype {name!r}; choose from {', '.join(PROTOTYPES)}")
        yield
