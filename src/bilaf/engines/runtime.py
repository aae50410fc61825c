"""Connecting to Ray: the one place both Ray engines (selection and embedding) get the ``ray`` module from."""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["import_ray", "init_ray"]


def import_ray():
    """``import ray``, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray engine needs Ray: pip install 'bilaf[ray]' (or pip install 'ray[data]')") from None
    return ray


def init_ray(address: Optional[str] = None, **init_kwargs: Any):
    """Connect to Ray once per process and return the ``ray`` module.

    Parameters
    ----------
    address : str or None
        ``None``: reuse the connection this process already has, else Ray's own
        default (the ``RAY_ADDRESS`` environment variable, a cluster started on
        this machine with ``ray start --head``, or a new local one).
        ``"auto"``: the cluster started on this machine. ``"ray://host:10001"``:
        a remote cluster through Ray Client. ``"local"``: always a new local one.
    **init_kwargs
        Passed to :func:`ray.init` when a connection is made (e.g. ``num_cpus``).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": True, "ignore_reinit_error": True}
    kwargs.update(init_kwargs)
    if address is not None:
        kwargs["address"] = address
    ray.init(**kwargs)
    return ray
