"""How many threads a bilaf call uses: the cores that are actually free, for the duration of the call.

Why: torch's CPU kernels run on an OpenMP team of ``torch.get_num_threads()``
threads (by default one per core) and end every parallel region at a barrier.
When another process keeps one of the cores busy, one thread of the team
waits for the scheduler at every barrier while the others spin, and a run of
many small operations (bilaf's per-pseudo-class steps) becomes several times
slower than the same run on one thread. The same holds for the BLAS that
numpy uses.

:func:`limit_threads` measures the load on the CPUs this process may run on
(``os.sched_getaffinity``; ``/proc/stat`` over a short window, other
processes only), sets torch's intra-op threads and the BLAS/OpenMP pools of
numpy (through ``threadpoolctl``) to the number of free cores, never more
than the caller's own setting, and restores everything on exit. Nested calls
(a selector that runs another selector) measure once. The measurement is
reused for a few seconds, so many short calls cost one measurement.

:func:`set_thread_policy` changes the rule for the whole process: ``"auto"``
(the default), or a fixed thread count. The environment variable
``BILAF_THREADS`` sets the initial rule the same way (``auto`` or a count).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator, List, Optional, Tuple, Union

import torch

from .errors import ValidationError

__all__ = ["set_thread_policy", "get_thread_policy", "free_cores", "choose_threads", "limit_threads", "thread_limited",
           "auto_threads", "single_threaded"]

#: How long (seconds) the load is sampled, and how long a measurement is reused.
SAMPLE_SECONDS = 0.05
REUSE_SECONDS = 5.0
#: A core counts as free when at least this share of it is idle.
FREE_SHARE = 0.75

_state = threading.local()
_lock = threading.Lock()
_cache: Tuple[float, Optional[float]] = (-1e9, None)


def _parse_policy(value: Union[str, int, None]) -> Union[str, int]:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"threads must be 'auto' or a positive integer, got {value!r}") from None
    if isinstance(value, bool) or n < 1 or (isinstance(value, float) and n != value):
        raise ValidationError(f"threads must be 'auto' or a positive integer, got {value!r}")
    return n


def _policy_from_env() -> Union[str, int]:
    try:
        return _parse_policy(os.environ.get("BILAF_THREADS"))
    except ValueError:
        return "auto"  # a bad value must not break import; set_thread_policy reports it


_policy: Union[str, int] = _policy_from_env()


def set_thread_policy(threads: Union[str, int] = "auto") -> None:
    """Set how many threads bilaf calls use: ``"auto"`` (the free cores) or a fixed count."""
    global _policy
    _policy = _parse_policy(threads)


def get_thread_policy() -> Union[str, int]:
    """The current rule: ``"auto"`` or a fixed thread count."""
    return _policy


def _allowed_cpus() -> List[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_jiffies(cpus: List[int]) -> Optional[Tuple[int, int]]:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat, or None where it cannot be read."""
    want = {f"cpu{c}" for c in cpus}
    busy = total = 0
    seen = 0
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                parts = line.split()
                if not parts or parts[0] not in want:
                    continue
                vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
                total += sum(vals)
                busy += sum(vals) - vals[3] - vals[4]
                seen += 1
    except (OSError, ValueError):
        return None
    return (busy, total) if seen else None


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _busy_elsewhere(cpus: List[int]) -> Optional[float]:
    """Cores' worth of work on ``cpus`` by other processes over a short window; None if unknown."""
    first = _cpu_jiffies(cpus)
    if first is None:
        return None
    own0 = _own_cpu_seconds()
    time.sleep(SAMPLE_SECONDS)
    second = _cpu_jiffies(cpus)
    own1 = _own_cpu_seconds()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])  # busy share of the allowed CPUs
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    window = (second[1] - first[1]) / hz / len(cpus)
    own = (own1 - own0) / window if window > 0 else 0.0
    return max(0.0, share * len(cpus) - own)


def free_cores(*, refresh: bool = False) -> float:
    """Cores this process may run on that other processes leave idle (a measurement, reused a few seconds).

    Where ``/proc/stat`` cannot be read, the 1-minute load average stands in for
    the other processes' work.
    """
    global _cache
    cpus = _allowed_cpus()
    with _lock:
        stamp, busy = _cache
        if refresh or busy is None or time.monotonic() - stamp > REUSE_SECONDS:
            busy = _busy_elsewhere(cpus)
            if busy is None:
                try:
                    busy = float(os.getloadavg()[0])
                except (AttributeError, OSError):  # pragma: no cover
                    busy = 0.0
            _cache = (time.monotonic(), busy)
    return max(0.0, len(cpus) - busy)


def choose_threads(cap: int, free: float) -> int:
    """The thread count for ``free`` idle cores, at most ``cap`` and at least 1.

    A core counts when at least :data:`FREE_SHARE` of it is idle: a thread
    on a core shared with another busy process holds up every barrier.
    """
    return max(1, min(int(cap), int(free + (1.0 - FREE_SHARE))))


@contextlib.contextmanager
def limit_threads(threads: Union[str, int, None] = None) -> Iterator[int]:
    """Run the body with torch's intra-op threads and numpy's BLAS threads set for the current load.

    Parameters
    ----------
    threads : "auto", int or None
        None follows :func:`set_thread_policy`. ``"auto"``: the free cores
        (:func:`free_cores`), at most ``torch.get_num_threads()`` on entry
        (so an explicit ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` is a
        ceiling). An int: exactly that many.

    Yields
    ------
    int
        The thread count in force. Inside a call that already set it (nested
        bilaf calls), nothing changes.
    """
    if getattr(_state, "depth", 0) > 0:
        _state.depth += 1
        try:
            yield torch.get_num_threads()
        finally:
            _state.depth -= 1
        return
    rule = _policy if threads is None else _parse_policy(threads)
    before = torch.get_num_threads()
    n = rule if isinstance(rule, int) else choose_threads(before, free_cores())
    _state.depth = 1
    try:
        with _threads_set(n):
            yield n
    finally:
        _state.depth = 0


@contextlib.contextmanager
def _threads_set(n: int) -> Iterator[None]:
    """torch's intra-op threads and numpy's BLAS pools at ``n`` for the body, the caller's restored after."""
    before = torch.get_num_threads()
    limiter = None
    try:
        if n != before:
            torch.set_num_threads(n)
        try:
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(limits=n, user_api="blas")
        except Exception:  # pragma: no cover - threadpoolctl missing or a pool it cannot drive
            limiter = None
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the body with one torch thread and one BLAS thread, then restore both.

    For runs of small operations (BiLAF's per-pseudo-class steps on classes of
    a few hundred rows, small linear probes): there a team of threads costs
    more than it shares (measured: ``benchmarks/results/threads.md``).
    """
    with _threads_set(1):
        yield


def thread_limited(fn):
    """Decorator: run ``fn`` inside :func:`limit_threads` (for public entry points)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with limit_threads():
            return fn(*args, **kwargs)

    return wrapper


def auto_threads() -> int:
    """The thread count :func:`limit_threads` would choose now, with every allowed CPU as the ceiling
    (for thread pools other than torch's, e.g. an ONNX Runtime session)."""
    if isinstance(_policy, int):
        return _policy
    if getattr(_state, "depth", 0) > 0:
        return torch.get_num_threads()
    return choose_threads(len(_allowed_cpus()), free_cores())
