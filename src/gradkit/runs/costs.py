"""Cost models: the gradient-equivalents one optimizer step spends (see :mod:`gradkit.runs`)."""

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

PyTree = Any

COST_UNITS: dict[str, float] = {"value": 0.5, "grad": 1.0, "hvp": 2.0, "jvp": 1.0}
"""Gradient-equivalents of one evaluation (see the module doc for the measurements)."""




class CostModel(NamedTuple):
    """Gradient-equivalents one optimizer step spends, read from one node of its state.

    ``per_step``: a constant added every step; ``counted(old, new)``: the traced amount
    read from the node before and after the step (``None``: nothing variable);
    ``replaces_runner_evaluation``: the runner's ``value_and_grad`` at the new point is not
    counted (the state already holds it, or the method never uses the gradient).
    """

    per_step: float = 0.0
    counted: Callable[[Any, Any], jax.Array] | None = None
    replaces_runner_evaluation: bool = False


def _hvps(old: Any, new: Any) -> jax.Array:
    return COST_UNITS["hvp"] * (new.hvp_count - old.hvp_count)


def _key_moved(old: Any, new: Any) -> jax.Array:
    data = lambda k: jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k
    return COST_UNITS["hvp"] * jnp.any(data(old.key) != data(new.key))


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
        SamState: lambda opt, x: CostModel(per_step=COST_UNITS["grad"]),
        NewtonCGState: lambda opt, x: CostModel(counted=_hvps),
        HessianFreeState: lambda opt, x: CostModel(counted=_hvps),
        TrustRegionState: lambda opt, x: CostModel(COST_UNITS["grad"], _hvps, True),
        NewtonState: lambda opt, x: CostModel(per_step=COST_UNITS["hvp"] * ravel_pytree(x)[0].size),
        zoom: lambda opt, x: CostModel(
            counted=lambda o, n: COST_UNITS["grad"] * n.info.num_linesearch_steps, replaces_runner_evaluation=True),
        backtracking: lambda opt, x: CostModel(counted=lambda o, n: COST_UNITS["value"] * n.info.num_linesearch_steps),
        optax.contrib.HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),
        HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),  # gradkit's Sophia-H
        AdaHessianState: lambda opt, x: CostModel(per_step=COST_UNITS["hvp"]),  # one Hutchinson probe per step
        ForwardGradientState: lambda opt, x: CostModel(
            per_step=COST_UNITS["jvp"] * _closure_value(opt.update, "num_tangents", 1),
            replaces_runner_evaluation=True),
    }


COST_MODELS: dict[type, Callable[[optax.GradientTransformation, PyTree], CostModel]] = _cost_models()
"""Optimizer-state type -> ``(optimizer, params) -> CostModel`` for gradkit's and optax's states
(see the module doc); add an entry for a new state type whose steps cost more than one gradient."""


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


class _Cost(NamedTuple):
    """The cost model of one optimizer: a constant per step plus traced counts."""

    per_step: float
    counted: tuple[tuple[tuple, Callable[[Any, Any], jax.Array]], ...]

    def step(self, old_state: Any, new_state: Any) -> jax.Array:
        extra = sum((fn(_at(old_state, p), _at(new_state, p)) for p, fn in self.counted), jnp.zeros([]))
        return self.per_step + extra


def _cost_of(opt: optax.GradientTransformation, params: PyTree, state: Any) -> _Cost:
    """Combine the cost models of every registered node of ``state``."""
    per_step, counted, replaced = 0.0, [], False
    for path, kind in _state_nodes(state):
        model = COST_MODELS[kind](opt, params)
        per_step += model.per_step
        replaced |= model.replaces_runner_evaluation
        if model.counted is not None:
            counted.append((path, model.counted))
    return _Cost(per_step + (0.0 if replaced else COST_UNITS["grad"]), tuple(counted))


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


def _evaluation_cost(x: PyTree) -> float:
    """Gradient-equivalents of one call of the objective at ``x``, read from how ``x`` is traced:
    a concrete point is a value (1/2), one level of differentiation tracers (``grad``, ``vjp``,
    ``jvp``) a gradient (1), two (a Hessian-vector product) 2."""
    depth = 0
    leaf = jax.tree.leaves(x)[0] if jax.tree.leaves(x) else None
    while isinstance(leaf, jax.core.Tracer) and hasattr(leaf, "primal"):
        depth += 1
        leaf = leaf.primal
    return COST_UNITS["value"] * 2.0**depth


def measure_step_cost(make_optimizer: Any, objective: Any, x0: PyTree, hparams: dict[str, Any] | None = None,
                      steps: int = 4) -> float:
    """The gradient-equivalents one step of an optimizer without a registered cost model spends,
    measured: ``steps`` updates run eagerly (``jax.disable_jit``, so a ``while_loop`` line search
    runs its body in Python) from ``x0`` with a ``value_fn`` that counts every call by the way its
    point is traced (:func:`_evaluation_cost`), plus the runner's ``value_and_grad`` per step (1).
    The mean over the steps; an optimizer whose cost varies from step to step gets its early
    average."""
    spent = [0.0]

    def counted(x: PyTree) -> jax.Array:
        spent[0] += _evaluation_cost(x)
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
    return COST_UNITS["grad"] + spent[0] / steps
