"""A small, explicit training loop: ``fit(loss_fn, params, optimizer, data, epochs, batch_size, key)``.

One jitted step per minibatch::

    (loss, aux), g = value_and_grad(loss_fn, has_aux)(params, batch)
    u, s = optimizer.update(g, s, params, value_fn=lambda p: loss_fn(p, batch), value=loss, **extra(batch))
    params ← params + u

so optimizers that need the objective (SAM, Newton-CG, Hessian-free, forward gradients) get
it for the current batch; the others ignore the keywords.  The history keeps the loss of every
step, the per-layer gradient norms (one per top-level entry of the params: a list of layers
gives one norm per layer), epoch means and optional evaluation metrics.  A non-finite loss
stops training with a message that says where.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.data import minibatches, num_examples
from gradkit.lifting import TRACER_ERRORS, Spec, lift, lift_optimizer, mark_static_only, note_compile

PyTree = Any


@dataclasses.dataclass
class History:
    """What :func:`fit` saw.  ``step_loss (steps,)``; ``grad_norms (steps, layers)`` with
    ``layer_names``; ``epoch_loss (epochs,)``; ``metrics``: name -> per-epoch values from
    ``eval_fn``; ``stopped``: why training stopped early (``None`` if it did not); ``curvature``:
    the :class:`gradkit.curvature.CurvatureRecords` of ``fit(..., tracker=...)`` (else ``None``)."""

    step_loss: np.ndarray
    grad_norms: np.ndarray
    layer_names: tuple[str, ...]
    epoch_loss: np.ndarray
    metrics: dict[str, np.ndarray]
    stopped: str | None = None
    curvature: Any = None


def layer_groups(params: PyTree) -> tuple[str, ...]:
    """Names of the top-level entries of ``params`` (list index, dict key or tuple field):
    the "layers" whose gradient norms :func:`fit` records."""
    if isinstance(params, (list, tuple)) and not hasattr(params, "_fields"):
        return tuple(f"layer {i}" for i in range(len(params)))
    if isinstance(params, Mapping):
        return tuple(str(k) for k in params)
    if hasattr(params, "_fields"):
        return tuple(params._fields)
    return ("params",)


def layer_grad_norms(grads: PyTree) -> jax.Array:
    """``||∇_layer L||₂`` for every top-level entry of the gradient pytree (see :func:`layer_groups`)."""
    if isinstance(grads, (list, tuple)):
        parts = list(grads)
    elif isinstance(grads, Mapping):
        parts = list(grads.values())
    else:
        parts = [grads]
    return jnp.stack([optax.tree.norm(part) for part in parts])


def make_step(loss_fn: Callable[..., Any], optimizer: optax.GradientTransformation, has_aux: bool = False,
              extra_args: Callable[[PyTree], Mapping[str, Any]] | None = None) -> Callable:
    """The jitted ``step(params, state, batch) -> (params, state, loss, layer_grad_norms)``.

    Compiled once per what ``loss_fn``, ``optimizer`` and ``extra_args`` compute
    (:mod:`gradkit.lifting`): a new ``fit`` with a freshly built optimizer that differs only in
    numeric hyperparameters (``optax.adam(lr)`` for another ``lr``) reuses the program."""
    loss_spec, loss_leaves = lift(loss_fn, floats=False)
    extra_spec, extra_leaves = lift(extra_args, floats=False)
    lifted = [lift_optimizer(optimizer)]  # (spec, leaves); floats keyed by value after a fallback

    def step(params: PyTree, state: Any, batch: PyTree) -> tuple:
        call = lambda spec, leaves: _step(loss_spec, spec, bool(has_aux), extra_spec, loss_leaves, leaves,
                                          extra_leaves, params, state, batch)
        try:
            return call(*lifted[0])
        except TRACER_ERRORS:  # the optimizer branches on a hyperparameter in Python
            fallback = mark_static_only(lifted[0][0], optimizer)  # None once floats are static already
            if fallback is None:
                raise
            lifted[0] = fallback
            return call(*fallback)

    return step


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _step(loss_spec: Spec, optimizer_spec: Spec, has_aux: bool, extra_spec: Spec, loss_leaves: tuple,
          optimizer_leaves: tuple, extra_leaves: tuple, params: PyTree, state: Any, batch: PyTree) -> tuple:
    """One training step (see the module doc) with the loss, optimizer and ``extra_args`` rebuilt
    from their specs and traced leaves."""
    note_compile("gradkit.train.fit", loss_spec, optimizer_spec, extra_spec)
    loss_fn = loss_spec.rebuild(loss_leaves)
    opt = optax.with_extra_args_support(optimizer_spec.rebuild(optimizer_leaves))
    extra_args = extra_spec.rebuild(extra_leaves)

    def value_only(p: PyTree) -> jax.Array:
        out = loss_fn(p, batch)
        return out[0] if has_aux else out

    out, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, batch)
    loss = out[0] if has_aux else out
    if jnp.ndim(loss) != 0:
        raise TypeError(f"fit: loss_fn must return a scalar, got shape {jnp.shape(loss)}")
    kwargs = dict(extra_args(batch)) if extra_args is not None else {}
    updates, state = opt.update(grads, state, params, value_fn=value_only, value=loss, **kwargs)
    return optax.apply_updates(params, updates), state, loss, layer_grad_norms(grads)


def fit(
    loss_fn: Callable[[PyTree, PyTree], Any],
    params: PyTree,
    optimizer: optax.GradientTransformation,
    data: PyTree,
    epochs: int,
    batch_size: int,
    key: jax.Array,
    *,
    has_aux: bool = False,
    eval_fn: Callable[[PyTree], Mapping[str, Any]] | None = None,
    extra_args: Callable[[PyTree], Mapping[str, Any]] | None = None,
    progress: bool = True,
    tracker: Any = None,
) -> tuple[PyTree, History]:
    """Train ``params`` on minibatches of ``data`` (a pytree of arrays with a shared leading
    axis, e.g. ``(x, y)``) for ``epochs`` epochs, reshuffled each epoch by ``fold_in(key, epoch)``.

    ``loss_fn(params, batch)`` returns the scalar loss (or ``(loss, aux)`` with ``has_aux``);
    ``eval_fn(params)`` returns metrics recorded after each epoch; ``extra_args(batch)`` adds
    ``update`` keywords (e.g. ``model_fn``/``loss_fn`` for ``hessian_free(curvature="ggn")``).
    Stops early, with a warning and ``history.stopped`` set, at the first non-finite loss;
    ``params`` are then the last finite ones.  Every batch has ``batch_size`` examples (a short
    last batch is dropped, so the step compiles once); ``batch_size`` must lie in ``[1, n]``.
    ``tracker``: a
    :class:`gradkit.curvature.CurvatureTracker` (its ``loss_fn`` defaults to this one), called
    every ``tracker.every`` steps with the params, optimizer state and batch of the step about
    to be taken; its records land in ``history.curvature``.
    """
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive integer, got {epochs!r}")
    n = num_examples(data)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > n:
        raise ValueError(f"fit: batch_size={batch_size} exceeds the {n} examples in data (every epoch would "
                         f"have no full batch); use batch_size <= {n} (batch_size={n} is full-batch training)")
    step = make_step(loss_fn, optimizer, has_aux, extra_args)
    state = optimizer.init(params)
    steps_per_epoch = n // batch_size
    if tracker is not None:
        tracker = tracker.bind(lambda p, b: loss_fn(p, b)[0] if has_aux else loss_fn(p, b), epochs * steps_per_epoch)
        track = tracker.compiled_update()
        tstate = tracker.init(params, jax.random.fold_in(key, 0x7FFFFFFF))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc="fit", leave=False)
    losses, norms, epoch_loss, metrics = [], [], [], {}
    stopped = None
    last_finite = params  # the params whose loss was last seen finite
    for epoch in range(epochs):
        epoch_values = []
        for batch in minibatches(jax.random.fold_in(key, epoch), data, batch_size):
            if tracker is not None and len(losses) % tracker.every == 0:
                tstate = track(tstate, len(losses), params, batch, state)
            new_params, new_state, loss, layer_norms = step(params, state, batch)
            loss = float(loss)
            if not np.isfinite(loss):
                stopped = (f"non-finite loss ({loss}) at epoch {epoch}, step {len(losses)}; "
                           "parameters are those of the last finite loss — lower the learning rate?")
                params = last_finite
                break
            last_finite = params
            params, state = new_params, new_state
            losses.append(loss)
            epoch_values.append(loss)
            norms.append(np.asarray(layer_norms))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
        if epoch_values:
            epoch_loss.append(float(np.mean(epoch_values)))
        if stopped:
            warnings.warn(f"fit stopped: {stopped}", RuntimeWarning, stacklevel=2)
            break
        if eval_fn is not None:
            for name, value in eval_fn(params).items():
                metrics.setdefault(name, []).append(float(value))
    if bar is not None:
        bar.close()
    layer_count = len(layer_groups(params))
    history = History(
        step_loss=np.asarray(losses),
        grad_norms=np.asarray(norms).reshape(len(norms), layer_count),
        layer_names=layer_groups(params),
        epoch_loss=np.asarray(epoch_loss),
        metrics={k: np.asarray(v) for k, v in metrics.items()},
        stopped=stopped,
        curvature=tracker.records(tstate) if tracker is not None else None,
    )
    return params, history
