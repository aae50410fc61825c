"""Measuring a selection run from inside its process: stage intervals, CPU time and resident memory.

* :func:`instrument_stages` wraps ``bilaf.selectors.base.Timer.stage`` (in this
  process only) so every stage also records its start and end times and the
  CPU seconds it used; stages of a nested selector (BiLAF's core selector)
  are recorded too, with their depth.
* :class:`RssSampler` is a thread that samples the resident set size every
  few milliseconds, so each stage can be given the peak seen during it.
* :func:`peak_rss_bytes` is the kernel's own high-water mark for the process
  (``getrusage(RUSAGE_SELF).ru_maxrss``), which no spike escapes.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Tuple

__all__ = ["StageRecord", "instrument_stages", "RssSampler", "peak_rss_bytes", "current_rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size now (``/proc/self/statm``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # pragma: no cover - not Linux
        import psutil

        return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class StageRecord:
    name: str
    depth: int
    start: float
    end: float
    cpu: float


@dataclass
class _State:
    records: List[StageRecord] = field(default_factory=list)
    depth: int = 0


def instrument_stages() -> List[StageRecord]:
    """Make every ``Timer.stage`` of this process also append a :class:`StageRecord` to the returned list."""
    from bilaf.selectors import base

    state = _State()
    original = base.Timer.stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        depth = state.depth
        state.depth += 1
        try:
            with original(self, name):
                yield
        finally:
            state.depth -= 1
            state.records.append(StageRecord(name, depth, t0, time.perf_counter(), time.process_time() - c0))

    base.Timer.stage = stage
    return state.records


class RssSampler:
    """Samples the resident set size every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: List[Tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), current_rss_bytes()))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), current_rss_bytes()))

    def peak_between(self, start: float, end: float) -> int:
        """The largest sample taken in ``[start, end]`` (the nearest sample if none fell inside)."""
        inside = [r for t, r in self.samples if start <= t <= end]
        if inside:
            return max(inside)
        if not self.samples:
            return 0
        return min(self.samples, key=lambda s: abs(s[0] - start))[1]


def stage_summary(records: List[StageRecord], sampler: RssSampler) -> Dict[str, Dict[str, float]]:
    """Per top-level stage name: wall seconds, CPU seconds and peak RSS bytes (summed / maxed over repeats)."""
    out: Dict[str, Dict[str, float]] = {}
    for r in records:
        if r.depth != 0:
            continue
        s = out.setdefault(r.name, {"wall": 0.0, "cpu": 0.0, "peak_rss": 0})
        s["wall"] += r.end - r.start
        s["cpu"] += r.cpu
        s["peak_rss"] = max(s["peak_rss"], sampler.peak_between(r.start, r.end))
    return out


def write_rows_csv(path, rows: List[Dict]) -> None:
    """Write ``rows`` (dicts with the same keys) as a CSV file, atomically."""
    import csv
    import io

    from bilaf.result import atomic_write

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path, newline="") as fh:
        fh.write(buf.getvalue())
