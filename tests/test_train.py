"""gradkit.train.fit: equals a hand-written optax loop, drives SAM / Newton-CG / forward
gradients / Hessian-free, records per-layer gradient norms, stops on NaN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import data, losses, models, optim, train


@pytest.fixture(scope="session")
def blobs():
    ds = data.make_classification(jax.random.PRNGKey(0), 256, 4, 3)
    return jnp.asarray(ds.features), jnp.asarray(ds.targets)


def classifier(hidden=(8,)):
    model = models.mlp([4, *hidden, 3], activation="tanh", dtype=jnp.float64)

    def loss_fn(params, batch):
        x, y = batch
        return jnp.mean(losses.softmax_cross_entropy(model.apply(params, x), y))

    return model, loss_fn


def test_fit_equals_a_hand_written_optax_loop(blobs):
    model, loss_fn = classifier()
    params0 = model.init(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    params, history = train.fit(loss_fn, params0, optim.adam(1e-2), blobs, epochs=3, batch_size=32, key=key,
                                progress=False)
    opt = optax.adam(1e-2)

    @jax.jit
    def step(p, state, batch):  # the textbook optax step, compiled once
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        u, state = opt.update(g, state, p)
        return optax.apply_updates(p, u), state, loss

    p, state, hand_losses = params0, opt.init(params0), []
    for epoch in range(3):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), 256))
        for start in range(0, 256, 32):
            batch = jax.tree.map(lambda a: a[order[start:start + 32]], blobs)
            p, state, loss = step(p, state, batch)
            hand_losses.append(float(loss))
    np.testing.assert_allclose(history.step_loss, hand_losses, rtol=1e-10)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(history.epoch_loss, np.asarray(hand_losses).reshape(3, 8).mean(axis=1))
    assert history.stopped is None


def test_per_layer_gradient_norms_and_metrics(blobs):
    model, loss_fn = classifier(hidden=(8, 8))
    params0 = model.init(jax.random.PRNGKey(1))
    x, y = blobs
    eval_fn = lambda p: {"accuracy": losses.accuracy(model.apply(p, x), y)}
    params, history = train.fit(loss_fn, params0, optim.sgd(0.1), blobs, epochs=2, batch_size=64,
                                key=jax.random.PRNGKey(0), eval_fn=eval_fn, progress=False)
    assert history.grad_norms.shape == (8, 3) and history.layer_names == ("layer 0", "layer 1", "layer 2")
    first = jax.tree.map(lambda a: a[np.asarray(jax.random.permutation(jax.random.fold_in(
        jax.random.PRNGKey(0), 0), 256))[:64]], blobs)
    grads = jax.grad(loss_fn)(params0, first)
    expected = [float(optax.tree.norm(layer)) for layer in grads]
    np.testing.assert_allclose(history.grad_norms[0], expected, rtol=1e-10)
    assert history.metrics["accuracy"].shape == (2,)
    np.testing.assert_allclose(history.metrics["accuracy"][-1], losses.accuracy(model.apply(params, x), y))


@pytest.mark.parametrize("name", ["sam", "newton_cg", "forward_gradient", "hessian_free"])
def test_fit_drives_optimizers_that_need_the_objective(blobs, name):
    model, loss_fn = classifier()
    params0 = model.init(jax.random.PRNGKey(1))
    extra = None
    if name == "sam":
        opt = optim.sam(optim.sgd(0.2), rho=0.05)
    elif name == "newton_cg":
        opt = optim.newton_cg(cg_maxiter=20)
    elif name == "forward_gradient":
        opt = optim.forward_gradient_descent(optim.sgd(0.05), jax.random.PRNGKey(3))
    else:
        opt = optim.hessian_free(1.0, cg_maxiter=20)

        def extra(batch):
            x, y = batch
            return {"model_fn": lambda p: model.apply(p, x),
                    "loss_fn": lambda z: jnp.mean(losses.softmax_cross_entropy(z, y))}

    full = lambda p: loss_fn(p, blobs)
    params, history = train.fit(loss_fn, params0, opt, blobs, epochs=4, batch_size=64, key=jax.random.PRNGKey(0),
                                extra_args=extra, progress=False)
    assert float(full(params)) < 0.7 * float(full(params0))
    assert np.all(np.isfinite(history.step_loss))


def test_fit_stops_on_nan_with_a_message(blobs):
    model = models.linear_regression(4, dtype=jnp.float64)
    params0 = model.init(jax.random.PRNGKey(1))
    loss_fn = lambda p, b: losses.mse(model.apply(p, b[0])[:, 0], b[1].astype(jnp.float64))
    with pytest.warns(RuntimeWarning, match="non-finite loss"):  # lr 1e100: inf after two steps, then NaN
        params, history = train.fit(loss_fn, params0, optim.sgd(1e100), blobs, epochs=5, batch_size=64,
                                    key=jax.random.PRNGKey(0), progress=False)
    assert history.stopped is not None and "non-finite" in history.stopped
    assert len(history.step_loss) < 20
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params))
    assert np.isfinite(float(loss_fn(params, blobs)))


def test_fit_bad_input(blobs):
    model, loss_fn = classifier()
    params0 = model.init(jax.random.PRNGKey(1))
    with pytest.raises(TypeError, match="scalar"):
        train.fit(lambda p, b: model.apply(p, b[0]), params0, optim.sgd(0.1), blobs, 1, 32, jax.random.PRNGKey(0),
                  progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(loss_fn, params0, optim.sgd(0.1), blobs, 0, 32, jax.random.PRNGKey(0), progress=False)
