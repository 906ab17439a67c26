"""One result type for every iterative solver in gradkit, with a code a program can branch on.

``gradkit.linalg.cg``, ``steihaug_cg``, ``lanczos``, ``power_iteration``, the Newton family's
inner solves and ``gradkit.optim.minimize`` all return a :class:`Result`::

    res = gk.linalg.cg(A, b)
    res.solution          # what was solved for (x, params, eigenpairs, ...)
    res.code              # int32 array: a Code (converged, max_steps, nonfinite, ...)
    res.converged         # res.code == Code.CONVERGED  (never True for a non-finite value)
    res.iterations        # iterations taken
    res.stats             # solver-specific numbers (residual_norm, matvecs, value, ...)
    res.residual_norm     # stats are readable as attributes too
    res.message           # a sentence (concrete results only)
    res.raise_for_code()  # raise SolverError unless converged

``Result`` is a ``NamedTuple`` of arrays, so it is a pytree: it crosses ``jit`` and ``vmap``
(``code`` then has the batch shape).  Every solver also takes ``throw=True``, which raises a
:class:`SolverError` when the code is not ``CONVERGED`` — at once for eager calls, and through a
host callback (surfacing as the runtime error of the compiled call) under ``jit``, as
optimistix's ``throw=`` does.

This module knows nothing of the rest of gradkit (``linalg``, ``optim`` and ``curvature`` all
build on it).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class Code(enum.IntEnum):
    """Why a solver stopped.

    ``CONVERGED``: the tolerance was met and every reported number is finite.
    ``MAX_STEPS``: the iteration budget ran out first.
    ``NONFINITE``: a NaN or inf appeared (in the input, the operator's products or the iterate);
    the solver stopped at its last finite state.
    ``NEGATIVE_CURVATURE``: a direction with ``<p, A p> <= 0`` was met where the method needs
    a positive definite operator (CG); trust-region and Newton-CG solvers handle it and say so.
    ``BREAKDOWN``: the method cannot continue (a zero starting vector, a singular system, a
    line search that found no decrease, an invariant subspace that ends a Krylov method early).
    """

    CONVERGED = 0
    MAX_STEPS = 1
    NONFINITE = 2
    NEGATIVE_CURVATURE = 3
    BREAKDOWN = 4


MESSAGES: dict[Code, str] = {
    Code.CONVERGED: "converged: the tolerance was met",
    Code.MAX_STEPS: "stopped at the iteration limit before meeting the tolerance",
    Code.NONFINITE: "a NaN or inf appeared; stopped at the last finite state",
    Code.NEGATIVE_CURVATURE: "met a direction of non-positive curvature (the operator is not positive definite)",
    Code.BREAKDOWN: "the method broke down (zero start, singular system or no decrease found)",
}


class SolverError(RuntimeError):
    """Raised by ``throw=True`` (or :meth:`Result.raise_for_code`) when a solver did not converge."""

    def __init__(self, solver: str, code: Code | int, detail: str = "") -> None:
        self.solver = solver
        self.code = Code(int(code))
        text = f"{solver}: {MESSAGES[self.code]} (code {self.code.name})"
        super().__init__(text + (f"; {detail}" if detail else ""))


_ALIASES = ("x", "params", "root", "eigenpairs")


class Result(NamedTuple):
    """What an iterative solver found and why it stopped (see the module docstring).

    ``solution``: the answer (a pytree); ``code``: an int32 :class:`Code` (an array, batched
    under ``vmap``); ``iterations``: iterations taken; ``stats``: a dict of solver-specific
    arrays or pytrees, each also readable as an attribute (``res.residual_norm``).  ``res.x``,
    ``res.params``, ``res.root`` and ``res.eigenpairs`` are aliases of ``solution``, and when the solution is
    itself a ``NamedTuple`` its fields and methods read through (``res.eigenvalues``,
    ``res.tridiagonal()``).
    """

    solution: PyTree
    code: jax.Array
    iterations: jax.Array
    stats: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        stats = tuple.__getitem__(self, 3)
        if name in stats:
            return stats[name]
        solution = tuple.__getitem__(self, 0)
        if name in _ALIASES:
            return solution
        if isinstance(solution, tuple) and hasattr(type(solution), "_fields") and not name.startswith("_"):
            return getattr(solution, name)  # res.eigenvalues, res.tridiagonal() of a NamedTuple solution
        raise AttributeError(f"Result has no field or stat {name!r}; stats: {sorted(stats)}")

    @property
    def converged(self) -> jax.Array:
        """``code == Code.CONVERGED`` (an array; never True for a non-finite result)."""
        return self.code == Code.CONVERGED

    @property
    def message(self) -> str:
        """A sentence for the code (a concrete, unbatched result only)."""
        return MESSAGES[Code(int(np.asarray(self.code)))]

    def raise_for_code(self, solver: str = "solver") -> Result:
        """Raise :class:`SolverError` unless every code is ``CONVERGED``; return ``self``."""
        codes = np.asarray(self.code).reshape(-1)
        bad = codes[codes != Code.CONVERGED]
        if bad.size:
            raise SolverError(solver, int(bad[0]), f"{bad.size} of {codes.size} results" if codes.size > 1 else "")
        return self


def make_result(solution: PyTree, code: jax.Array, iterations: jax.Array, **stats: Any) -> Result:
    """A :class:`Result` with ``code`` as int32 and ``iterations`` as an integer array."""
    return Result(solution, jnp.asarray(code, jnp.int32), jnp.asarray(iterations), dict(stats))


def select_code(*cases: tuple[jax.Array, Code], default: Code = Code.CONVERGED) -> jax.Array:
    """The first ``Code`` whose condition holds (conditions are boolean arrays), else ``default``::

        select_code((~finite, Code.NONFINITE), (k >= maxiter, Code.MAX_STEPS))
    """
    code = jnp.asarray(int(default), jnp.int32)
    for condition, case in reversed(cases):
        code = jnp.where(condition, jnp.asarray(int(case), jnp.int32), code)
    return code


def tree_all_finite(tree: PyTree) -> jax.Array:
    """True when every element of every leaf is finite (a scalar boolean array).

    Leaves of one shape are checked together, in one reduction (a kernel of its own in XLA):
    ``v * 0`` is 0 for a finite ``v`` and NaN otherwise (IEEE; XLA keeps it), so the sum of the
    group's ``v * 0`` is finite exactly when all its entries are.  A tuple of trees of one
    structure (CG's new iterates) costs one reduction per leaf position, not one per leaf."""
    groups: dict[tuple[int, ...], list[jax.Array]] = {}
    for leaf in jax.tree.leaves(tree):
        leaf = jnp.asarray(leaf)
        groups.setdefault(leaf.shape, []).append(leaf)
    if not groups:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.isfinite(jnp.sum(sum(leaf * 0 for leaf in group))) for group in groups.values()]))


def _is_traced(tree: PyTree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _raise_callback(solver: str, code: np.ndarray) -> None:
    codes = np.asarray(code).reshape(-1)
    bad = codes[codes != Code.CONVERGED]
    if bad.size:
        raise SolverError(solver, int(bad[0]))


def maybe_throw(result: Result, throw: bool, solver: str) -> Result:
    """With ``throw=True``: raise :class:`SolverError` unless converged — now when the result is
    concrete, at run time (a host callback) when traced under ``jit``.  Returns ``result``."""
    if not throw:
        return result
    if _is_traced(result.code):
        jax.debug.callback(lambda code: _raise_callback(solver, code), result.code, ordered=False)
        return result
    return result.raise_for_code(solver)
