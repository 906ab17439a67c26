"""The line searches shared by the second-order solvers: optax's own Armijo backtracking
(``scale_by_backtracking_linesearch``) and strong-Wolfe zoom search (``scale_by_zoom_linesearch``),
built per step so that the sufficient-decrease tolerance can follow the rounding level of ``f``."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gradkit.optim._common import PyTree
from gradkit.optim._second_order import ValueFn, check_count

LineSearch = Literal["armijo", "wolfe"] | None


class LineSearchMaker(NamedTuple):
    """An optax line search built per step, so that its tolerance can follow the rounding
    level of the current value (``make(atol)``); ``init`` does not depend on it."""

    make: Callable[[Any], optax.GradientTransformationExtraArgs]

    def init(self, params: PyTree) -> Any:
        """optax's line-search state for ``params``."""
        return self.make(0.0).init(params)


def make_line_search(name: str, kind: LineSearch, max_steps: int, armijo_c: float = 1e-4,
                     decrease: float = 0.5) -> LineSearchMaker | None:
    """optax's Armijo backtracking (from step 1 every time: ``f(x + αp) <= f(x) + c α gᵀp``,
    ``α = 1, decrease, decrease², ...``) or strong-Wolfe zoom search; ``None`` for no search.

    The gradient at the accepted point is not stored by the Armijo search (optax's
    ``store_grad`` transposes with a Python-float cotangent, which fails for float32
    params under ``jax_enable_x64``)."""
    if kind is None:
        return None
    if kind not in ("armijo", "wolfe"):
        raise ValueError(f"{name}: line_search must be 'armijo', 'wolfe' or None, got {kind!r}")
    check_count(name, "max_line_search_steps", max_steps, 1)
    if kind == "armijo":
        return LineSearchMaker(lambda atol: optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=max_steps, slope_rtol=armijo_c, decrease_factor=decrease,
            increase_factor=1.0, max_learning_rate=1.0, atol=atol, store_grad=False))
    return LineSearchMaker(lambda atol: optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_steps, initial_guess_strategy="one", tol=atol))


def init_line_search(line_search: LineSearchMaker | None, params: PyTree) -> Any:
    """The line search's state, or ``optax.EmptyState()`` without one."""
    return line_search.init(params) if line_search is not None else optax.EmptyState()


def search(line_search: LineSearchMaker | None, ls_state: Any, direction: PyTree,
           params: PyTree, value: jax.Array, grads: PyTree, value_fn: ValueFn) -> tuple[PyTree, Any]:
    """Scale the descent ``direction`` by the line search (step 1 first); identity when None.

    The sufficient-decrease test is relaxed by the rounding level of ``f`` (``8 ε |f(x)|``):
    near a minimizer the Newton step changes ``f`` by less than one ulp, and an exact test
    would reject it and backtrack to nothing."""
    if line_search is None:
        return direction, ls_state
    if hasattr(ls_state, "learning_rate"):
        ls_state = ls_state._replace(learning_rate=jnp.ones_like(ls_state.learning_rate))
    rounding = 8 * jnp.finfo(jnp.result_type(value)).eps * jnp.abs(value)
    return line_search.make(rounding).update(direction, ls_state, params, value=value, grad=grads,
                                             value_fn=value_fn)
