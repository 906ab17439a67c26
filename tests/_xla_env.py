"""The XLA flags the test processes compile with, and the environment a user's process has.

Compiling dominates the suite's time (XLA's CPU backend, thousands of small programs).  The test
processes — pytest, its workers and every subprocess they start — compile with XLA's legacy
elemental emitters and without LLVM's optimisation passes: 2-2.5x less compile time, the same
IEEE arithmetic (results may differ in the last bits, as they do between XLA versions or CPUs).
The tests check values, never speed.  ``GRADKIT_TEST_XLA_FLAGS=default pytest`` runs the suite
with XLA's default flags instead.  The README's blocks, whose printed digits are compared, run
with the user's own environment (:func:`user_env`)."""

from __future__ import annotations

import os

FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0")
_USER_FLAGS = "GRADKIT_TESTS_USER_XLA_FLAGS"  # the XLA_FLAGS the user had, kept for user_env()


def apply() -> None:
    """Add :data:`FAST_COMPILE_FLAGS` to ``XLA_FLAGS`` (once: a worker inherits its parent's);
    ``GRADKIT_TEST_XLA_FLAGS`` is ``fast`` (default) or ``default``."""
    mode = os.environ.get("GRADKIT_TEST_XLA_FLAGS", "fast")
    if mode not in ("fast", "default"):
        raise ValueError(f"GRADKIT_TEST_XLA_FLAGS must be 'fast' or 'default', got {mode!r}")
    if _USER_FLAGS in os.environ:
        return
    os.environ[_USER_FLAGS] = os.environ.get("XLA_FLAGS", "")
    if mode == "fast":
        os.environ["XLA_FLAGS"] = " ".join([os.environ[_USER_FLAGS], *FAST_COMPILE_FLAGS]).strip()


def user_xla_flags() -> str:
    """The ``XLA_FLAGS`` the user had before :func:`apply` added the test flags."""
    return os.environ.get(_USER_FLAGS, os.environ.get("XLA_FLAGS", ""))


def user_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with the user's own ``XLA_FLAGS`` (without the test flags), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != _USER_FLAGS}
    flags = user_xla_flags()
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def with_devices(count: int, **extra: str) -> dict[str, str]:
    """``os.environ`` (test flags kept) with ``count`` host CPU devices, on the CPU platform, plus ``extra``."""
    from gradkit.runs.launch import with_device_count

    return {**os.environ, "XLA_FLAGS": with_device_count(os.environ.get("XLA_FLAGS", ""), count),
            "JAX_PLATFORMS": "cpu", **extra}
