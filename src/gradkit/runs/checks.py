"""Argument checks of the runner, all made before any compute."""

from __future__ import annotations

import functools
import math
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.lifting import Spec, Uncompared
from gradkit.runs.verdicts import _Tolerance

PyTree = Any

def _check_steps(steps: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _check_nonnegative(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a non-negative number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}"
                         + (" (an infinite tolerance would call every run converged)" if math.isinf(number) else ""))


def _check_starts(starts: Any) -> int:
    """The number of runs in ``starts``: an array ``(runs, dim)`` or a pytree of arrays with a
    common leading run axis."""
    if isinstance(starts, (list, tuple)) and not hasattr(starts, "_fields"):
        raise TypeError(f"starts must be an array of shape (runs, dim) or a pytree of arrays with a leading run "
                        f"axis, got a Python {type(starts).__name__}; use jnp.asarray(starts)")
    leaves = jax.tree.leaves(starts)
    if not leaves:
        raise ValueError("starts must contain at least one array, got an empty pytree")
    if any(not hasattr(leaf, "shape") for leaf in leaves):
        raise TypeError("starts must hold arrays (with a leading run axis), got a Python scalar leaf")
    if not isinstance(starts, dict) and len(leaves) == 1 and jnp.ndim(leaves[0]) == 1:
        raise ValueError(f"starts must have shape (runs, dim), got a 1-D array of shape {jnp.shape(leaves[0])}; "
                         "for one run use starts[None], for 1-D problems starts[:, None]")
    if any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError("starts must have a leading run axis, got a 0-d array")
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"starts must be floating-point arrays (the runs move these points), got dtype {dtype}; "
                            "use jnp.asarray(starts, float)")
    n_runs = int(jnp.shape(leaves[0])[0])
    if n_runs == 0:
        raise ValueError("starts is empty (0 runs): give at least one start point")
    if any(jnp.shape(leaf)[0] != n_runs for leaf in leaves):
        raise ValueError("every leaf of starts must have the same leading (run) axis")
    return n_runs


def _check_objective(objective: Callable[..., jax.Array], objective_spec: Spec, starts: PyTree,
                     objective_data: PyTree = None) -> None:
    """``objective`` must return a scalar at one start point (``jax.eval_shape``: nothing runs;
    cached per objective spec and point structure, so a loop of calls pays it once).  With
    ``objective_data`` (one pytree per run), ``objective(x, data)`` is checked."""
    structure = lambda tree: (jax.tree.structure(tree),
                              tuple((tuple(jnp.shape(a)[1:]), jnp.result_type(a)) for a in jax.tree.leaves(tree)))
    data_spec = None if objective_data is None else structure(objective_data)
    shape = _objective_output_shape(objective_spec, structure(starts), data_spec, Uncompared(objective))
    if shape != ():
        raise ValueError(f"objective must return a scalar, got shape {shape} at one start point")


def _check_objective_data(objective_data: PyTree, n_runs: int) -> None:
    """Every leaf of ``objective_data`` is an array with the runs' leading axis."""
    leaves = jax.tree.leaves(objective_data)
    if not leaves:
        raise ValueError("objective_data must contain at least one array (one entry per run), got an empty pytree")
    for leaf in leaves:
        if not hasattr(leaf, "shape") or jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_runs:
            raise ValueError(f"objective_data must hold arrays with a leading run axis of {n_runs} (one entry per "
                             f"start), got a leaf of shape {jnp.shape(leaf)}")


@functools.lru_cache(maxsize=256)
def _objective_output_shape(objective_spec: Spec, spec: tuple, data_spec: tuple | None, objective: Uncompared
                            ) -> Any:
    point = lambda s: jax.tree.unflatten(s[0], [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in s[1]])
    args = (point(spec),) if data_spec is None else (point(spec), point(data_spec))
    out = jax.eval_shape(objective.obj, *args)
    return getattr(out, "shape", type(out).__name__)


def _tolerance(tol: Any, rtol: Any, f_star: Any, f_scale: Any, xtol: Any, minimizers: Any, point_size: int
               ) -> _Tolerance:
    _check_nonnegative("tol", tol)
    _check_nonnegative("rtol", rtol)
    _check_nonnegative("xtol", xtol, allow_none=True)
    _check_nonnegative("f_scale", f_scale)
    mins = None
    if minimizers is not None:
        arr = np.asarray(minimizers, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != point_size:
            raise ValueError(f"minimizers must be an (m, dim) array with dim = {point_size}, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("minimizers must be finite")
        mins = tuple(tuple(float(v) for v in row) for row in arr)
    if xtol is not None and mins is None:
        raise ValueError("xtol needs minimizers (an (m, dim) array of known minimizers)")
    return _Tolerance(float(tol), float(rtol), None if f_star is None else float(f_star), float(f_scale),
                      None if xtol is None else float(xtol), mins)

