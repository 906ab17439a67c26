"""Compare derivative routes: autodiff (jax), finite differences, dual numbers.

``check(f, x)`` computes the derivative of ``f`` at ``x`` by every requested route
and compares each with the first (the reference), leaf by leaf of ``x``:

    abs_err = max |D_route - D_ref|,   rel_err = abs_err / max(max |D_ref|, tiny)

For a scalar ``f`` the derivative is the gradient (same pytree as ``x``); for a
vector ``f`` it is the Jacobian, whose columns are split by leaf of ``x``.

Routes: ``"jax"`` (``jax.jacrev``), ``"jax_fwd"`` (``jax.jacfwd``), ``"central"``
and ``"forward"`` (finite differences, :mod:`gradkit.diff.numeric`), ``"dual"``
(:mod:`gradkit.diff.dual`; ``f`` must use operators and ``gradkit.diff.dual``'s
math functions, which fall back to ``jax.numpy`` on ordinary arrays).

By default (``routes=None``) the routes are ``("jax", "central", "dual")``, with ``"dual"``
left out — and the reason recorded in ``CheckReport.skipped`` and printed — when ``f`` calls
``jax.numpy`` functions that cannot take dual numbers (``jnp.sin``, ``jnp.sum``, ...).  A route
asked for explicitly that cannot run raises a ``ValueError`` saying why.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gradkit.diff import dual, numeric

ROUTES = ("jax", "jax_fwd", "central", "forward", "dual")


@dataclasses.dataclass(frozen=True)
class RouteError:
    """Error of one route against the reference, for one leaf of ``x``."""

    route: str
    leaf: str
    abs_err: float
    rel_err: float


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check`: the derivative per route and the error table."""

    reference: str
    derivatives: dict[str, np.ndarray]
    errors: tuple[RouteError, ...]
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def max_abs(self, route: str | None = None) -> float:
        """Largest absolute error (of ``route``, or of every route)."""
        return max((e.abs_err for e in self.errors if route in (None, e.route)), default=0.0)

    def max_rel(self, route: str | None = None) -> float:
        """Largest relative error (of ``route``, or of every route)."""
        return max((e.rel_err for e in self.errors if route in (None, e.route)), default=0.0)

    def ok(self, rtol: float = 1e-6, atol: float = 0.0) -> bool:
        """True when every leaf of every route has ``abs_err <= atol`` or ``rel_err <= rtol``."""
        return all(e.abs_err <= atol or e.rel_err <= rtol for e in self.errors)

    def __str__(self) -> str:
        lines = [f"reference route: {self.reference}", f"{'route':<10}{'leaf':<24}{'abs err':>12}{'rel err':>12}"]
        lines += [f"{e.route:<10}{e.leaf:<24}{e.abs_err:>12.3e}{e.rel_err:>12.3e}" for e in self.errors]
        lines += [f"skipped {route}: {why}" for route, why in self.skipped.items()]
        return "\n".join(lines)


def _flat_derivative(route: str, f_flat: Callable[[Any], Any], flat: np.ndarray, scalar: bool) -> np.ndarray:
    """The derivative as an ``m x n`` matrix over the flattened input."""
    if route in ("jax", "jax_fwd"):
        jac_fn = jax.jacrev if route == "jax" else jax.jacfwd
        jac = np.asarray(jac_fn(lambda z: jnp.reshape(f_flat(z), (-1,)))(jnp.asarray(flat)))
    elif route in ("central", "forward"):
        jac = numeric.jacobian(f_flat, flat, scheme=route)
    elif route == "dual":
        jac = dual.jacobian(f_flat, flat)
    else:
        raise ValueError(f"unknown route {route!r}; valid routes: {', '.join(ROUTES)}")
    return jac.reshape(1, -1) if scalar else jac


DEFAULT_ROUTES = ("jax", "central", "dual")


def _dual_unsupported(f_flat: Callable[[Any], Any], flat: np.ndarray) -> str | None:
    """Why ``f`` cannot run on dual numbers (it calls ``jax.numpy`` on them), or None."""
    try:
        f_flat(dual.Dual(flat, np.zeros_like(flat)))
    except TypeError as err:
        first = str(err).splitlines()[0]
        return ("f calls jax.numpy functions that do not take dual numbers; write it with operators "
                f"and gradkit.diff.dual's math functions ({first})")
    return None


def check(
    f: Callable[[Any], Any],
    x: Any,
    routes: Sequence[str] | None = None,
) -> CheckReport:
    """Differentiate ``f`` at ``x`` by each route and compare every route with ``routes[0]``::

        abs_err = max |D_route - D_ref|,   rel_err = abs_err / max |D_ref|   (per leaf of x)

    ``x`` may be any pytree of floating arrays; it is raveled (``ravel_pytree``) for the
    finite-difference and dual routes and the errors are reported per leaf.  ``routes=None``:
    ``("jax", "central", "dual")``, the dual route skipped (and said so in the report's
    ``skipped``) when ``f`` uses ``jax.numpy`` functions that cannot take dual numbers.
    """
    explicit = routes is not None
    routes = tuple(DEFAULT_ROUTES if routes is None else routes)
    if not routes:
        raise ValueError("check: routes must name at least one route")
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise ValueError(f"check: unknown route(s) {unknown}; valid routes: {', '.join(ROUTES)}")
    leaves = jax.tree.leaves(x)
    if not leaves:
        raise ValueError("check: x is an empty pytree")
    bad = [jnp.result_type(leaf) for leaf in leaves if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    if bad:
        raise TypeError(f"check: x must hold floating-point arrays (derivatives of integer inputs are "
                        f"not defined), got dtype {bad[0]}")
    flat, unravel = ravel_pytree(x)
    flat_np = np.asarray(flat)
    scalar = np.size(f(x)) == 1

    def f_flat(z: Any) -> Any:
        if isinstance(z, dual.Dual):
            return f(_unravel_dual(z, x))
        return f(unravel(z))

    skipped: dict[str, str] = {}
    if "dual" in routes:
        why = _dual_unsupported(f_flat, flat_np)
        if why is not None:
            if explicit:
                raise ValueError(f"check: the 'dual' route cannot run: {why}")
            skipped["dual"] = why
            routes = tuple(r for r in routes if r != "dual")

    derivs = {r: _flat_derivative(r, f_flat, flat_np, scalar) for r in routes}
    leaves, _ = jax.tree_util.tree_flatten_with_path(x)
    names = [jax.tree_util.keystr(path) or "x" for path, _ in leaves]
    sizes = [int(np.size(leaf)) for _, leaf in leaves]
    bounds = np.cumsum([0] + sizes)
    ref = derivs[routes[0]]
    errors = []
    for route in routes[1:]:
        diff = np.abs(derivs[route] - ref)
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:]):
            abs_err = float(diff[:, lo:hi].max(initial=0.0))
            scale = float(np.abs(ref[:, lo:hi]).max(initial=0.0))
            rel_err = abs_err / max(scale, np.finfo(np.float64).tiny)
            errors.append(RouteError(route, name, abs_err, rel_err))
    return CheckReport(routes[0], derivs, tuple(errors), skipped)


def _unravel_dual(z: dual.Dual, like: Any) -> Any:
    """Split a flat dual vector back into the pytree structure of ``like``."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out, start = [], 0
    for leaf in leaves:
        size = int(np.size(leaf))
        out.append(z[start : start + size].reshape(np.shape(leaf)))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)
