"""How gradkit's first-order optimizers are assembled: a direction transform of gradkit's own
(the moment estimates the seeds teach), then optax's learning-rate scaling, so the optimizer's
state is exactly optax's for the alias of the same name (``jax.tree.structure`` equal, same
state types, field names and leaf dtypes): optax code that indexes the state
(``opt_state[0].mu``, ``optax.tree.get(state, "count")``) and optax checkpoints work unchanged.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import optax

from gradkit.optim._common import PyTree, ScalarOrSchedule, check_float_params, check_update_args

GradientTransformationExtraArgs = optax.GradientTransformationExtraArgs


def with_learning_rate(direction: optax.GradientTransformation, learning_rate: ScalarOrSchedule,
                       *after: optax.GradientTransformation, decay: optax.GradientTransformation | None = None
                       ) -> GradientTransformationExtraArgs:
    """``optax.chain(direction, [decay], scale_by_learning_rate(η), *after)``: ``u = -η_t d`` with
    ``η_t`` a constant or a schedule of its own step count (``ScaleByScheduleState``), as optax's
    aliases are built."""
    parts = [direction] + ([decay] if decay is not None else []) + [optax.scale_by_learning_rate(learning_rate)]
    return optax.chain(*parts, *after)


def checked_identity(name: str) -> GradientTransformationExtraArgs:
    """``optax.identity()`` (state ``EmptyState``) that still checks its input: float params at
    ``init``, updates shaped like the params at ``update``."""

    def init(params: PyTree) -> optax.EmptyState:
        check_float_params(name, params)
        return optax.EmptyState()

    def update(updates: PyTree, state: optax.EmptyState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, optax.EmptyState]:
        del extra_args
        if params is not None:
            check_update_args(name, updates, params, params)
        return updates, state

    return GradientTransformationExtraArgs(init, update)


def transform(name: str, init: Callable[[PyTree], Any], update: Callable[..., tuple[PyTree, Any]],
              reference: Callable[[Any], PyTree]) -> GradientTransformationExtraArgs:
    """An ``optax.GradientTransformationExtraArgs`` from ``init`` / ``update(updates, state)``
    with gradkit's checks around them: float params at ``init``; at ``update``, updates shaped
    like ``reference(state)`` (a params-shaped part of the state) and like ``params`` when given."""

    def checked_init(params: PyTree) -> Any:
        check_float_params(name, params)
        return init(params)

    def checked_update(updates: PyTree, state: Any, params: PyTree = None, **extra_args: Any) -> tuple[PyTree, Any]:
        del extra_args
        check_update_args(name, updates, reference(state), params)
        return update(updates, state, params)

    return GradientTransformationExtraArgs(checked_init, checked_update)

