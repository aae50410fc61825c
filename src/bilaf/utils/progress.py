"""A progress bar that costs nothing when it is off."""

from __future__ import annotations

from typing import Optional

__all__ = ["progress"]


def progress(iterable=None, *, total: Optional[int] = None, desc: str = "", enabled: bool = False, unit: str = "it"):
    """A tqdm progress bar when ``enabled`` (and tqdm is installed), else a no-op wrapper."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        except ImportError:  # pragma: no cover
            pass
    return _NullBar(iterable)


class _NullBar:
    def __init__(self, iterable=None):
        self._it = iterable

    def __iter__(self):
        return iter(self._it)

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
