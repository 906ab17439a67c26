"""XLA settings for small programs whose compile time outweighs their run time."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import jax

FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0}
"""XLA's legacy CPU elemental emitters and no LLVM optimisation passes: about half the compile
time, kernels up to 5x slower (10⁵ Adam runs x 1000 steps on Rosenbrock: 0.35 s -> 1.86 s), so
:func:`gradkit.runs.run_batch` uses them only when asked (``fast_compile=True``) and the landscape
race by default: its runs are small and compiling is most of its work (with its programs shared
across landscapes, the default race took 20 s the first time against 28 s with XLA's defaults,
``benchmarks/race.py``, 2 cores).  Only applied on CPU."""


def cpu_options(fast: bool = True) -> dict[str, Any] | None:
    """:data:`FAST_COMPILE_OPTIONS` when ``fast`` and the default device is a CPU, else ``None``."""
    return dict(FAST_COMPILE_OPTIONS) if fast and jax.devices()[0].platform == "cpu" else None


def quick_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit(fn)`` compiled with :data:`FAST_COMPILE_OPTIONS` on CPU: for a function evaluated
    once or twice (a landscape's scale, :attr:`gradkit.landscapes.Landscape.f_scale`), where
    op-by-op dispatch costs ~0.2 s per landscape and a default compile ~0.1 s."""
    return jax.jit(fn, compiler_options=cpu_options())
