"""Forms optax lacks, checked against plain NumPy written from the papers; the optax
protocol (chain, inject_hyperparams, schedules, vmap over hyperparameters); bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import optim

STEPS = 60
A = np.array([0.3, 1.0, 2.5, 0.7, 1.9])


def grad_np(w):
    """Gradient of Σ a_i w_i² / 2 + 0.3 sin(3 w_i)."""
    return A * w + 0.9 * np.cos(3 * w)


def grad_jax(w):
    return jnp.asarray(A) * w + 0.9 * jnp.cos(3 * w)


W0 = np.array([1.5, -2.0, 0.7, 3.0, -0.4])


def run_ours(opt, w0=W0, steps=STEPS):
    w = jnp.asarray(w0)
    state = opt.init(w)
    path = []
    for _ in range(steps):
        u, state = opt.update(grad_jax(w), state, w)
        w = optax.apply_updates(w, u)
        path.append(np.asarray(w))
    return np.array(path)


def numpy_momentum_ema(lr, beta, nesterov, steps=STEPS):
    w, v, path = W0.copy(), np.zeros_like(W0), []
    for _ in range(steps):
        g = grad_np(w)
        v = beta * v + (1 - beta) * g
        w = w - lr * ((beta * v + (1 - beta) * g) if nesterov else v)
        path.append(w.copy())
    return np.array(path)


def numpy_adam_eps_in_sqrt(lr, b1, b2, eps, steps=STEPS):
    w, m, s, path = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for t in range(1, steps + 1):
        g = grad_np(w)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / np.sqrt(s / (1 - b2**t) + eps)
        path.append(w.copy())
    return np.array(path)


def numpy_adasmooth(lr, rho1, rho2, eps, window, steps=STEPS):
    """Lu (2022), Algorithm 1, with the window of the last M updates."""
    w, avg, deltas, path = W0.copy(), np.zeros_like(W0), [], []
    for _ in range(steps):
        g = grad_np(w)
        recent = deltas[-window:]
        if recent:
            net = np.abs(np.sum(recent, axis=0))
            total = np.sum(np.abs(recent), axis=0)
            er = np.divide(net, total, out=np.zeros_like(net), where=total > 0)
        else:
            er = np.zeros_like(w)
        c = (rho2 - rho1) * er + (1 - rho2)
        avg = c**2 * g**2 + (1 - c**2) * avg
        delta = -lr * g / np.sqrt(avg + eps)
        deltas.append(delta)
        w = w + delta
        path.append(w.copy())
    return np.array(path)


@pytest.mark.parametrize("lr,beta,nesterov", [(0.1, 0.9, False), (0.05, 0.5, True), (0.2, 0.3, False)])
def test_momentum_ema_form_matches_numpy(lr, beta, nesterov):
    got = run_ours(optim.momentum(lr, beta, form="ema", nesterov=nesterov))
    np.testing.assert_allclose(got, numpy_momentum_ema(lr, beta, nesterov), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lr,b1,b2,eps", [(0.05, 0.9, 0.999, 1e-6), (0.1, 0.5, 0.9, 1e-3)])
def test_adam_eps_inside_sqrt_matches_numpy(lr, b1, b2, eps):
    got = run_ours(optim.adam(lr, b1=b1, b2=b2, eps=eps, eps_in_sqrt=True))
    np.testing.assert_allclose(got, numpy_adam_eps_in_sqrt(lr, b1, b2, eps), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lr,rho1,rho2,window", [(0.05, 0.5, 0.99, 10), (0.1, 0.3, 0.9, 3), (0.02, 0.5, 0.99, 1)])
def test_adasmooth_matches_numpy_algorithm(lr, rho1, rho2, window):
    got = run_ours(optim.adasmooth(lr, rho1=rho1, rho2=rho2, eps=1e-6, window=window))
    np.testing.assert_allclose(got, numpy_adasmooth(lr, rho1, rho2, 1e-6, window), rtol=1e-12, atol=1e-12)


def test_adasmooth_on_a_pytree_and_effective_ratio_extremes():
    opt = optim.adasmooth(0.1, window=4)
    params = {"a": jnp.ones((2, 3)), "b": (jnp.zeros(4),)}
    state = opt.init(params)
    assert state.history["a"].shape == (4, 2, 3)
    for _ in range(12):  # a constant gradient: every update has the same sign -> ratio 1
        u, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
    # step 1: nothing moved yet, e = 0, c = 1 - rho2 = 0.01: E[g²] = 1e-4;
    # then e = 1, c = rho2 - rho1 + 1 - rho2 = 1 - rho1 = 0.5: E[g²] ← 0.25 + 0.75 E[g²]
    avg = 1e-4
    for _ in range(11):
        avg = 0.25 + 0.75 * avg
    np.testing.assert_allclose(u["a"], -0.1 / np.sqrt(avg + 1e-6) * np.ones((2, 3)), rtol=1e-12)
    np.testing.assert_allclose(u["b"][0], -0.1 / np.sqrt(avg + 1e-6) * np.ones(4), rtol=1e-12)


# --- the optax protocol ------------------------------------------------------------------


def test_chain_with_optax_transforms_matches_optax_chain():
    ours = optax.chain(optax.clip_by_global_norm(1.0), optim.adam(0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    np.testing.assert_allclose(run_ours(ours), run_ours(theirs), rtol=1e-10, atol=1e-12)


def test_inject_hyperparams_works_and_takes_effect():
    opt = optax.inject_hyperparams(optim.adam)(learning_rate=0.1, b1=0.8)
    ref = optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=0.8)
    np.testing.assert_allclose(run_ours(opt, steps=20), run_ours(ref, steps=20), rtol=1e-12)
    w = jnp.asarray(W0)
    state = opt.init(w)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0)
    # traced (under jit) a zero learning rate freezes the run; a concrete one is rejected eagerly
    u, _ = jax.jit(opt.update)(grad_jax(w), state, w)
    assert float(jnp.max(jnp.abs(u))) == 0.0


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_vmap_over_learning_rates_and_jit(name):
    make = optim.FIRST_ORDER[name]

    def final_point(lr):
        opt = make(lr)
        w = jnp.asarray(W0)

        def step(carry, _):
            w, s = carry
            u, s = opt.update(grad_jax(w), s, w)
            return (optax.apply_updates(w, u), s), None

        return jax.lax.scan(step, (w, opt.init(w)), length=10)[0][0]

    lrs = jnp.array([0.01, 0.02, 0.05])
    batched = jax.jit(jax.vmap(final_point))(lrs)
    for i, lr in enumerate([0.01, 0.02, 0.05]):
        np.testing.assert_allclose(batched[i], final_point(lr), rtol=1e-10, atol=1e-12)
    assert not np.allclose(batched[0], batched[2])


def test_vmap_over_betas():
    def final(b1):
        return jnp.asarray(run_ours_jit(optim.adam(0.05, b1=b1)))

    def run_ours_jit(opt):
        w = jnp.asarray(W0)
        s = opt.init(w)
        for _ in range(5):
            u, s = opt.update(grad_jax(w), s, w)
            w = w + u
        return w

    b1s = jnp.array([0.0, 0.5, 0.9])
    out = jax.vmap(final)(b1s)
    np.testing.assert_allclose(out[2], run_ours_jit(optax.adam(0.05, b1=0.9)), rtol=1e-12)


def test_states_are_pytrees_of_arrays():
    for name, make in optim.FIRST_ORDER.items():
        state = make(0.1).init({"w": jnp.ones(3)})
        assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state)), name
    # adasmooth has no optax counterpart: its own NamedTuple, count first
    assert optim.adasmooth(0.1).init({"w": jnp.ones(3)})._fields[0] == "count"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf")])
def test_negative_or_nonfinite_learning_rate_is_rejected(name, lr):
    with pytest.raises(ValueError, match="learning_rate"):
        optim.FIRST_ORDER[name](lr)


@pytest.mark.parametrize("make,arg", [
    (lambda v: optim.adam(0.1, b1=v), "b1"), (lambda v: optim.adam(0.1, b2=v), "b2"),
    (lambda v: optim.nadam(0.1, b1=v), "b1"), (lambda v: optim.adamax(0.1, b2=v), "b2"),
    (lambda v: optim.adabelief(0.1, b1=v), "b1"), (lambda v: optim.amsgrad(0.1, b2=v), "b2"),
    (lambda v: optim.lion(0.1, b1=v), "b1"), (lambda v: optim.momentum(0.1, v), "beta"),
    (lambda v: optim.rmsprop(0.1, decay=v), "decay"), (lambda v: optim.adasmooth(0.1, rho1=v), "rho1"),
])
@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_decay_outside_unit_interval_is_rejected(make, arg, value):
    with pytest.raises(ValueError, match=arg):
        make(value)


@pytest.mark.parametrize("make", [lambda: optim.adam(0.1, eps=-1e-8), lambda: optim.rmsprop(0.1, eps=-1.0),
                                  lambda: optim.adagrad(0.1, eps=-1.0), lambda: optim.adabelief(0.1, eps=-1e-9)])
def test_negative_eps_is_rejected(make):
    with pytest.raises(ValueError, match="eps"):
        make()


def test_pytree_mismatch_is_a_clear_error():
    opt = optim.adam(0.1)
    state = opt.init({"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="does not match"):
        opt.update({"a": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match="shape"):
        opt.update({"a": jnp.ones(2), "b": jnp.ones(4)}, state)


def test_adasmooth_needs_rho2_above_rho1():
    with pytest.raises(ValueError, match="rho2 > rho1"):
        optim.adasmooth(0.1, rho1=0.9, rho2=0.5)
