"""Cost models: what one optimizer step spends, as counts of values, gradients, HVPs and JVPs
(:mod:`gradkit.runs.units`), and the gradient-equivalents derived from them (see :mod:`gradkit.runs`)."""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
import optax.contrib
from jax.flatten_util import ravel_pytree

from gradkit.optim import (AdaHessianState, ForwardGradientState, HessianFreeState, HutchinsonState,
                           NewtonCGState, NewtonState, SamState, TrustRegionState)
from gradkit.runs.units import COST_UNITS, COUNT_KINDS, Counts, as_counts, count_weights, gradient_equivalents

PyTree = Any

__all__ = ["COST_MODELS", "COST_UNITS", "COUNT_KINDS", "CostModel", "Counts", "as_counts", "count_weights",
           "gradient_equivalents", "has_cost_model", "measure_step_cost", "measure_step_counts"]


class CostModel(NamedTuple):
    """What one optimizer step spends, read from one node of its state, as :class:`Counts` per kind.

    ``per_step``: counts added every step; ``counted(old, new)``: the traced counts read from the
    node before and after the step (``None``: nothing variable).  Either may also be a bare number
    of gradient-equivalents (the older form), counted as that many gradients (:func:`as_counts`).
    ``replaces_runner_evaluation``: the runner's ``value_and_grad`` at the new point (1 gradient)
    is not counted (the state already holds it, or the method never uses the gradient).
    Gradient-equivalents are derived: ``Σ_k COST_UNITS[k] · counts_k``.
    """

    per_step: Counts | float = 0.0
    counted: Callable[[Any, Any], Counts | jax.Array] | None = None
    replaces_runner_evaluation: bool = False

    @property
    def per_step_counts(self) -> Counts:
        """``per_step`` as :class:`Counts` (a bare number counted as gradients)."""
        return as_counts(self.per_step)

    @property
    def per_step_cost(self) -> float:
        """Gradient-equivalents of ``per_step``: ``Σ_k COST_UNITS[k] · per_step_k``."""
        return gradient_equivalents(self.per_step_counts)


def _hvps(old: Any, new: Any) -> Counts:
    return Counts(hvps=new.hvp_count - old.hvp_count)


def _hvps_and_values(old: Any, new: Any) -> Counts:
    return Counts(values=new.value_count - old.value_count, hvps=new.hvp_count - old.hvp_count)


def _key_moved(old: Any, new: Any) -> Counts:
    data = lambda k: jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k
    return Counts(hvps=jnp.any(data(old.key) != data(new.key)).astype(jnp.int32))


def _closure_value(fn: Callable[..., Any], name: str, default: Any) -> Any:
    """A closed-over variable of ``fn`` (e.g. ``num_tangents`` of forward gradient descent)."""
    try:
        return inspect.getclosurevars(fn).nonlocals.get(name, default)
    except (TypeError, ValueError):
        return default


def _cost_models() -> dict[type, Callable[[optax.GradientTransformation, PyTree], CostModel]]:
    """The built-in registry (see the module doc)."""
    zoom = optax.ScaleByZoomLinesearchState
    backtracking = optax.ScaleByBacktrackingLinesearchState
    return {
        SamState: lambda opt, x: CostModel(per_step=Counts(grads=1)),
        NewtonCGState: lambda opt, x: CostModel(counted=_hvps),
        HessianFreeState: lambda opt, x: CostModel(counted=_hvps_and_values),  # + walk-back, Armijo values
        TrustRegionState: lambda opt, x: CostModel(Counts(grads=1), _hvps, True),
        NewtonState: lambda opt, x: CostModel(per_step=Counts(hvps=ravel_pytree(x)[0].size)),
        zoom: lambda opt, x: CostModel(  # one value_and_grad per trial of the zoom search: a gradient
            counted=lambda o, n: Counts(grads=n.info.num_linesearch_steps), replaces_runner_evaluation=True),
        backtracking: lambda opt, x: CostModel(counted=lambda o, n: Counts(values=n.info.num_linesearch_steps)),
        optax.contrib.HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),
        HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),  # gradkit's Sophia-H
        AdaHessianState: lambda opt, x: CostModel(per_step=Counts(hvps=1)),  # one Hutchinson probe per step
        ForwardGradientState: lambda opt, x: CostModel(
            per_step=Counts(jvps=_closure_value(opt.update, "num_tangents", 1)), replaces_runner_evaluation=True),
    }


COST_MODELS: dict[type, Callable[[optax.GradientTransformation, PyTree], CostModel]] = _cost_models()
"""Optimizer-state type -> ``(optimizer, params) -> CostModel`` for gradkit's and optax's states
(see the module doc); add an entry for a new state type whose steps cost more than one gradient.
Every built-in model states its spend in :class:`Counts` per kind."""


def _state_nodes(state: Any, path: tuple = ()) -> list[tuple[tuple, type]]:
    """Paths (tuple/list indices and dict keys) of every node of a registered type in ``state``."""
    found = [(path, type(state))] if type(state) in COST_MODELS else []
    if isinstance(state, (tuple, list)):
        for i, child in enumerate(state):
            found += _state_nodes(child, path + (i,))
    elif isinstance(state, dict):
        for k in state:
            found += _state_nodes(state[k], path + (k,))
    return found


def _at(state: Any, path: tuple) -> Any:
    for p in path:
        state = state[p]
    return state


def _plus(a: Counts, b: Counts) -> Counts:
    return Counts(*(x + y for x, y in zip(a, b)))


def _vector(counts: Counts, dtype: Any) -> jax.Array:
    """``(4,)`` array of ``counts`` in :data:`COUNT_KINDS` order."""
    return jnp.stack([jnp.asarray(c).astype(dtype) for c in counts])


class _Cost(NamedTuple):
    """The cost model of one optimizer: constant counts per step plus traced counts."""

    per_step: Counts
    counted: tuple[tuple[tuple, Callable[[Any, Any], Any]], ...]

    @property
    def per_step_cost(self) -> float:
        """Gradient-equivalents of the constant part: ``Σ_k COST_UNITS[k] · per_step_k``."""
        return gradient_equivalents(self.per_step)

    def step_counts(self, old_state: Any, new_state: Any, dtype: Any) -> Counts:
        """The counts of one step (constant part plus what the state's nodes counted), scalars of ``dtype``."""
        total = Counts(*(jnp.asarray(c, dtype) for c in self.per_step))
        for p, fn in self.counted:
            more = as_counts(fn(_at(old_state, p), _at(new_state, p)))
            total = Counts(*(a + jnp.asarray(b).astype(dtype) for a, b in zip(total, more)))
        return total

    def step(self, old_state: Any, new_state: Any) -> jax.Array:
        """Gradient-equivalents of one step, derived from :meth:`step_counts`."""
        return gradient_equivalents(self.step_counts(old_state, new_state, jnp.result_type(float)))


def _cost_of(opt: optax.GradientTransformation, params: PyTree, state: Any) -> _Cost:
    """Combine the cost models of every registered node of ``state`` (plus the runner's
    ``value_and_grad``, 1 gradient, unless a model replaces it)."""
    per_step, counted, replaced = Counts(), [], False
    for path, kind in _state_nodes(state):
        model = COST_MODELS[kind](opt, params)
        per_step = _plus(per_step, model.per_step_counts)
        replaced |= model.replaces_runner_evaluation
        if model.counted is not None:
            counted.append((path, model.counted))
    runner = Counts() if replaced else Counts(grads=1)
    return _Cost(Counts(*(c if isinstance(c, jax.core.Tracer) else float(c) for c in _plus(per_step, runner))),
                 tuple(counted))


def _has_line_search(state: Any) -> bool:
    kinds = (optax.ScaleByZoomLinesearchState, optax.ScaleByBacktrackingLinesearchState)
    if isinstance(state, kinds):
        return True
    if isinstance(state, (tuple, list)):
        return any(_has_line_search(s) for s in state)
    if isinstance(state, dict):
        return any(_has_line_search(s) for s in state.values())
    return False


def has_cost_model(opt: optax.GradientTransformation, params: PyTree) -> bool:
    """Whether some node of ``opt``'s state is registered in :data:`COST_MODELS`."""
    return bool(_state_nodes(jax.eval_shape(opt.init, params)))


def _evaluation_counts(x: PyTree) -> Counts:
    """What one call of the objective at ``x`` is, read from how ``x`` is traced: a concrete point
    is a value; one level of differentiation tracers a gradient (reverse mode: ``grad``, ``vjp``)
    or, for a forward-mode ``jvp`` tracer, a JVP (one per tangent when the tangents are vmapped);
    two levels a Hessian-vector product (``2^(d-2)`` of them for ``d > 2`` levels)."""
    depth, outer = 0, None
    leaf = jax.tree.leaves(x)[0] if jax.tree.leaves(x) else None
    while isinstance(leaf, jax.core.Tracer) and hasattr(leaf, "primal"):
        outer = leaf if outer is None else outer
        depth += 1
        leaf = leaf.primal
    if depth == 0:
        return Counts(values=1)
    if depth >= 2:
        return Counts(hvps=2 ** (depth - 2))
    if type(outer).__name__ == "JVPTracer":  # forward mode (reverse mode traces with a linearize tracer)
        tangent = getattr(outer, "tangent", None)
        batch_dim = getattr(tangent, "batch_dim", None)
        width = tangent.val.shape[batch_dim] if isinstance(batch_dim, int) and hasattr(tangent, "val") else 1
        return Counts(jvps=width)
    return Counts(grads=1)


def _evaluation_cost(x: PyTree) -> float:
    """Gradient-equivalents of one call of the objective at ``x``: those of
    :func:`_evaluation_counts` (a value 1/2, a gradient or JVP 1, an HVP 2)."""
    return gradient_equivalents(_evaluation_counts(x))


def measure_step_counts(make_optimizer: Any, objective: Any, x0: PyTree, hparams: dict[str, Any] | None = None,
                        steps: int = 4) -> Counts:
    """The :class:`Counts` per kind one step of an optimizer without a registered cost model
    spends, measured: ``steps`` updates run eagerly (``jax.disable_jit``, so a ``while_loop`` line
    search runs its body in Python) from ``x0`` with a ``value_fn`` that counts every call by the
    way its point is traced (:func:`_evaluation_counts`), plus the runner's ``value_and_grad`` per
    step (1 gradient).  ``counts_k = [k = grads] + (calls of kind k) / steps``: the mean over the
    steps; an optimizer whose spend varies from step to step gets its early average."""
    spent = [Counts(0, 0, 0, 0)]

    def counted(x: PyTree) -> jax.Array:
        spent[0] = _plus(spent[0], _evaluation_counts(x))
        return objective(x)

    opt = make_optimizer if isinstance(make_optimizer, optax.GradientTransformation) else make_optimizer(**(hparams or {}))
    opt = optax.with_extra_args_support(opt)
    with jax.disable_jit():
        x, state = x0, opt.init(x0)
        for _ in range(steps):
            value, grad = jax.value_and_grad(objective)(x)
            kwargs = {"value_fn": counted, "value": value, "grad": grad}
            if not _has_line_search(state):
                kwargs["obj_fn"] = counted
            updates, state = opt.update(grad, state, x, **kwargs)
            x = optax.apply_updates(x, updates)
    mean = Counts(*(c / steps for c in spent[0]))
    return _plus(Counts(grads=1.0), mean)


def measure_step_cost(make_optimizer: Any, objective: Any, x0: PyTree, hparams: dict[str, Any] | None = None,
                      steps: int = 4) -> float:
    """The gradient-equivalents one step of an optimizer without a registered cost model spends,
    measured: ``Σ_k COST_UNITS[k] · counts_k`` of :func:`measure_step_counts` (value 1/2, gradient
    or JVP 1, HVP 2; the runner's ``value_and_grad`` per step is 1)."""
    return float(measure_step_counts(make_optimizer, objective, x0, hparams, steps).cost)
