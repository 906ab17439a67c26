"""Lion (Chen et al. 2023): the sign of an interpolated momentum.

State: optax's, ``(ScaleByLionState(count, mu), EmptyState() | MaskedState(EmptyState()) |
WeightDecaySchedule(count), EmptyState() | ScaleByScheduleState(count))``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from gradkit.optim._chain import GradientTransformationExtraArgs, transform, with_learning_rate
from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    cast_tree,
    check_betas,
    check_dtype,
    check_learning_rate,
    check_nonnegative,
    ema,
    increment,
    zero_count,
)


def scale_by_lion(b1: Any = 0.9, b2: Any = 0.99, mu_dtype: Any = None, *, name: str = "scale_by_lion"
                  ) -> GradientTransformationExtraArgs:
    """Lion's direction, state ``optax.ScaleByLionState(count, mu)``:
    ``d = sign((1 - β1) g + β1 m)``;  ``m ← β2 m + (1 - β2) g`` (stored in ``mu_dtype``)."""
    check_betas(name, b1, b2)
    mu_dtype = check_dtype(name, "mu_dtype", mu_dtype)

    def init(params: PyTree) -> optax.ScaleByLionState:
        return optax.ScaleByLionState(zero_count(), optax.tree.zeros_like(params, dtype=mu_dtype))

    def update(updates: PyTree, state: optax.ScaleByLionState, params: PyTree
               ) -> tuple[PyTree, optax.ScaleByLionState]:
        direction = jax.tree.map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        mu = cast_tree(ema(updates, state.mu, b2, 1), mu_dtype)
        return direction, optax.ScaleByLionState(increment(state.count), mu)

    return transform(name, init, update, lambda state: state.mu)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformationExtraArgs:
    """Lion, optax's signature, defaults and state:

    ``u = -η_t (sign((1 - β1) g + β1 m) + λ_t w)``;  ``m ← β2 m + (1 - β2) g``.

    ``λ_t`` is a constant or a schedule; ``mask`` (a prefix tree of booleans, or a callable of
    params returning one) limits the decay to the leaves marked True (optax's
    ``add_decayed_weights``, which needs ``params`` in ``update``).
    """
    check_learning_rate("lion", learning_rate)
    if not callable(weight_decay):
        check_nonnegative("lion", "weight_decay", weight_decay)
    return with_learning_rate(scale_by_lion(b1, b2, mu_dtype, name="lion"), learning_rate,
                              decay=optax.add_decayed_weights(weight_decay, mask))
