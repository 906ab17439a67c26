"""The seed 002 exercise: four optimizers on ``f(w1, w2) = 0.1 w1² + 2 w2²`` from (-5, -2).

The numbers come from gradkit's own optimizers driven by :func:`optimize_trace`, a
generic ``lax.scan`` loop that records, at every step, the gradient, the optimizer
state after the update and the new point.

Settings (seed 002): GD lr 0.4; momentum (EMA form) lr 0.6, β 0.5; RMSProp lr 0.3,
γ 0.9, ε 1e-6 inside the root; Adam lr 0.2, β1 0.9, β2 0.999, ε 1e-6.  The seed's
Adam formula (4.5) writes ``sqrt(Ŝ + ε)`` while its worked solution computes
``sqrt(Ŝ) + ε`` — optax's form, used here; ``adam(eps_in_sqrt=True)`` gives the
other (they differ in the 7th digit: -4.6002548 vs -4.6002546 after epoch 2).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit import landscapes, optim

START = (-5.0, -2.0)
EPOCHS = 30

SEED_SETTINGS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "GD (lr 0.4)": lambda: optim.sgd(0.4),
    "Momentum EMA (lr 0.6, beta 0.5)": lambda: optim.momentum(0.6, 0.5, form="ema"),
    "RMSProp (lr 0.3, gamma 0.9, eps 1e-6 in sqrt)": lambda: optim.rmsprop(0.3, decay=0.9, eps=1e-6),
    "Adam (lr 0.2, 0.9, 0.999, eps 1e-6)": lambda: optim.adam(0.2, b1=0.9, b2=0.999, eps=1e-6),
}


class Trace(NamedTuple):
    """Per-step record of a run: ``grads[k]`` at ``points[k]``, then ``states[k]`` and
    ``points[k + 1]`` after update ``k`` (``points[0]`` is the start)."""

    points: jax.Array
    values: jax.Array
    grads: jax.Array
    states: Any


def optimize_trace(
    objective: Callable[[jax.Array], jax.Array],
    optimizer: optax.GradientTransformation,
    start: Any,
    steps: int,
) -> Trace:
    """Run ``steps`` updates ``w ← w + optimizer.update(∇f(w))`` in one ``lax.scan`` and keep
    every gradient, state and point."""
    w0 = jnp.asarray(start)

    def step(carry: tuple[jax.Array, Any], _: Any) -> tuple[tuple[jax.Array, Any], tuple[Any, ...]]:
        w, state = carry
        value, grad = jax.value_and_grad(objective)(w)
        update, state = optimizer.update(grad, state, w)
        w_next = optax.apply_updates(w, update)
        return (w_next, state), (w_next, value, grad, state)

    _, (points, values, grads, states) = jax.lax.scan(step, (w0, optimizer.init(w0)), length=steps)
    points = jnp.concatenate([w0[None], points])
    values = jnp.concatenate([values, objective(points[-1])[None]])
    return Trace(points, values, grads, states)


@dataclasses.dataclass(frozen=True)
class ExerciseResult:
    name: str
    trace: Trace


def run_seed_exercise(epochs: int = EPOCHS, dtype: Any = jnp.float64) -> list[ExerciseResult]:
    """The four seed settings for ``epochs`` steps each (float64 by default when x64 is on)."""
    f = landscapes.get("seed_quadratic")
    start = jnp.asarray(START, dtype=dtype)
    return [ExerciseResult(name, optimize_trace(f, make(), start, epochs)) for name, make in SEED_SETTINGS.items()]


SEED_NAMES = {"trace": "velocity", "mu": "m", "nu": "v"}
"""The seed's words for optax's state fields (the momentum trace is the seed's velocity)."""


def _state_fields(state: Any, k: int) -> list[tuple[str, np.ndarray]]:
    """Named array fields (not step counts) of a stacked optimizer state at step ``k``, from
    every state node (an optax chain's state is a tuple of them), named as the seed names them."""
    fields = []
    nodes = jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "_fields"))
    for node in nodes:
        for field in getattr(node, "_fields", ()):
            stacked = np.asarray(getattr(node, field))
            if field != "count" and stacked.ndim == 2 and np.any(stacked):  # skip unused buffers
                fields.append((SEED_NAMES.get(field, field), stacked[k]))
    return fields


def format_table(results: list[ExerciseResult], detailed_epochs: int = 2) -> str:
    """The seed's worked-solution table (gradient, state, w for the first epochs) and the
    final point after all epochs, for each setting."""
    fmt = lambda a: "(" + ", ".join(f"{x:+.7f}" for x in a) + ")"
    lines = []
    for res in results:
        tr = res.trace
        lines.append(f"== {res.name}")
        for k in range(detailed_epochs):
            parts = [f"epoch {k + 1}:", f"dW = {fmt(tr.grads[k])}"]
            parts += [f"{name} = {fmt(val)}" for name, val in _state_fields(tr.states, k)]
            parts.append(f"W = {fmt(tr.points[k + 1])}")
            lines.append("  " + "  ".join(parts))
        epochs = tr.grads.shape[0]
        lines.append(f"  after {epochs} epochs: W = {fmt(tr.points[-1])}, f(W) = {float(tr.values[-1]):.3e}")
    return "\n".join(lines)


def exercise_title(results: list[ExerciseResult]) -> str:
    """The picture's title, from the run itself: the epochs are ``len(grads)`` of the traces
    (every setting runs the same number), the start is ``points[0]``."""
    epochs = {int(r.trace.grads.shape[0]) for r in results}
    if len(epochs) != 1:
        raise ValueError(f"the settings ran different numbers of epochs {sorted(epochs)} (expected one number)")
    start = ", ".join(f"{float(c):g}" for c in np.asarray(results[0].trace.points[0]))
    return f"seed 002 exercise: 0.1 w1² + 2 w2², {epochs.pop()} epochs from ({start})"


def draw_exercise(results: list[ExerciseResult]) -> Any:
    """Contours of the seed quadratic with the four trajectories (``epochs + 1`` points each),
    titled by :func:`exercise_title`; returns the axes."""
    from gradkit import plot

    land = landscapes.get("seed_quadratic")
    return plot.plot_landscape(land, {r.name: np.asarray(r.trace.points) for r in results},
                               title=exercise_title(results))


def plot_exercise(results: list[ExerciseResult], path: str) -> str:
    """:func:`draw_exercise` written to ``path``."""
    from gradkit import plot

    return str(plot.save(draw_exercise(results), path))
