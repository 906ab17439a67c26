"""Gradient descent and momentum (seed 002): ``sgd``, ``momentum``, ``nesterov``.

State: optax's.  ``sgd(lr)`` is ``(EmptyState(), EmptyState())``; with momentum (any form)
``(TraceState(trace), EmptyState())``; a schedule puts ``ScaleByScheduleState(count)`` in the
second slot, exactly as ``optax.sgd``.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import optax

from gradkit.optim._chain import GradientTransformationExtraArgs, checked_identity, transform, with_learning_rate
from gradkit.optim._common import PyTree, ScalarOrSchedule, cast_tree, check_decay, check_dtype, check_learning_rate

Form = Literal["heavy_ball", "ema"]


def scale_by_trace(beta: Any = 0.9, form: Form = "heavy_ball", nesterov: bool = False,
                   accumulator_dtype: Any = None, *, name: str = "scale_by_trace") -> GradientTransformationExtraArgs:
    """The momentum direction, state ``optax.TraceState(trace=v)``:

    * ``form="heavy_ball"`` (optax's ``trace``): ``v ← β v + g``; ``d = v``, Nesterov ``d = g + β v``;
    * ``form="ema"`` (seed 002): ``v ← β v + (1 - β) g``; ``d = v``, Nesterov ``d = β v + (1 - β) g``.

    ``v`` is stored in ``accumulator_dtype`` (default: the params')."""
    check_decay(name, "beta" if name == "momentum" else "momentum", beta)
    if form not in ("heavy_ball", "ema"):
        raise ValueError(f"{name}: form must be 'heavy_ball' or 'ema', got {form!r}")
    accumulator_dtype = check_dtype(name, "accumulator_dtype", accumulator_dtype)
    ema_form = form == "ema"

    def accumulate(g: jax.Array, v: jax.Array) -> jax.Array:
        return (1 - beta) * g + beta * v if ema_form else g + beta * v

    def init(params: PyTree) -> optax.TraceState:
        return optax.TraceState(trace=optax.tree.zeros_like(params, dtype=accumulator_dtype))

    def update(updates: PyTree, state: optax.TraceState, params: PyTree) -> tuple[PyTree, optax.TraceState]:
        velocity = jax.tree.map(accumulate, updates, state.trace)
        direction = jax.tree.map(accumulate, updates, velocity) if nesterov else velocity
        return direction, optax.TraceState(trace=cast_tree(velocity, accumulator_dtype))

    return transform(name, init, update, lambda state: state.trace)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Gradient descent, optax's ``sgd`` exactly (same positional order, names, defaults and state).

    ``u = -η_t g``; with ``momentum=β`` (heavy ball, see :func:`momentum`): ``v ← β v + g``,
    ``u = -η_t v``, or with ``nesterov=True`` ``u = -η_t (g + β v)``.  ``accumulator_dtype``:
    dtype of ``v`` (default: the params').
    """
    check_learning_rate("sgd", learning_rate)
    check_dtype("sgd", "accumulator_dtype", accumulator_dtype)
    if momentum is None:
        return with_learning_rate(checked_identity("sgd"), learning_rate)
    return with_learning_rate(scale_by_trace(momentum, "heavy_ball", nesterov, accumulator_dtype, name="sgd"),
                              learning_rate)


def momentum(
    learning_rate: ScalarOrSchedule,
    beta: Any = 0.9,
    form: Form = "heavy_ball",
    nesterov: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Momentum in two forms (gradkit's entry point; ``sgd(lr, momentum=β)`` is optax's).

    * ``form="heavy_ball"`` (optax ``sgd(momentum=β)``, exactly): ``v ← β v + g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (g + β v)``.
    * ``form="ema"`` (seed 002, deliberately not optax's): ``v ← β v + (1 - β) g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (β v + (1 - β) g)``.

    The forms coincide up to rescaling ``η`` by ``1/(1 - β)`` at steady state but
    differ in the transient (the EMA starts at ``(1 - β) g``).  ``accumulator_dtype``:
    dtype of ``v`` (default: the params').  State: ``optax.sgd(lr, momentum=β)``'s.
    """
    check_learning_rate("momentum", learning_rate)
    return with_learning_rate(scale_by_trace(beta, form, nesterov, accumulator_dtype, name="momentum"), learning_rate)


def nesterov(learning_rate: ScalarOrSchedule, beta: Any = 0.9, form: Form = "heavy_ball", *,
             accumulator_dtype: Any = None) -> GradientTransformationExtraArgs:
    """Nesterov momentum: ``v ← β v + g``, ``u = -η_t (g + β v)`` (see :func:`momentum`)."""
    return momentum(learning_rate, beta, form=form, nesterov=True, accumulator_dtype=accumulator_dtype)
