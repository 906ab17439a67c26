"""Counters the compile-once tests share: XLA backend compiles (``jax.monitoring``) and the
process's peak resident memory."""

from __future__ import annotations

import resource

import jax

_COMPILES = {"count": 0}


def _count(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES["count"] += 1


jax.monitoring.register_event_duration_secs_listener(_count)


def compiles() -> int:
    """XLA backend compiles in this process since the first import of this module."""
    return _COMPILES["count"]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
