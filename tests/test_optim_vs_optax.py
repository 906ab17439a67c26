"""Step-equality with optax: >= 50 steps on random nested pytrees, float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import optim

STEPS = 60


def random_tree(key, dtype):
    k = jax.random.split(key, 4)
    return {
        "dense": {"w": jax.random.normal(k[0], (4, 3), dtype), "b": jax.random.normal(k[1], (3,), dtype)},
        "extra": (jax.random.normal(k[2], (2, 2, 2), dtype), jax.random.normal(k[3], (), dtype)),
    }


def objective(params):
    """A smooth non-quadratic objective whose gradient drives both optimizers."""
    leaves = jax.tree.leaves(params)
    return sum(jnp.sum(0.5 * (1 + jnp.arange(x.size).reshape(x.shape) % 3) * x**2 + 0.3 * jnp.sin(3 * x))
               for x in leaves)


def trajectory(opt, params):
    @jax.jit
    def run(params):
        def step(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(objective)(p), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(step, (params, opt.init(params)), length=STEPS)[1]

    return run(params)


PAIRS = {
    "sgd": (lambda: optim.sgd(0.05), lambda: optax.sgd(0.05)),
    "sgd_schedule": (lambda: optim.sgd(optax.exponential_decay(0.1, 10, 0.5)),
                     lambda: optax.sgd(optax.exponential_decay(0.1, 10, 0.5))),
    "heavy_ball": (lambda: optim.momentum(0.02, 0.8), lambda: optax.sgd(0.02, momentum=0.8)),
    "heavy_ball_nesterov": (lambda: optim.nesterov(0.02, 0.7), lambda: optax.sgd(0.02, momentum=0.7, nesterov=True)),
    "adagrad": (lambda: optim.adagrad(0.3), lambda: optax.adagrad(0.3)),
    "adagrad_custom": (lambda: optim.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-5),
                       lambda: optax.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-5)),
    "rmsprop": (lambda: optim.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    "rmsprop_eps_outside_centered": (lambda: optim.rmsprop(0.01, decay=0.8, eps=1e-4, eps_in_sqrt=False, centered=True),
                                     lambda: optax.rmsprop(0.01, decay=0.8, eps=1e-4, eps_in_sqrt=False,
                                                           centered=True)),
    "rmsprop_momentum_nesterov": (lambda: optim.rmsprop(0.005, momentum=0.9, nesterov=True, initial_scale=0.1),
                                  lambda: optax.rmsprop(0.005, momentum=0.9, nesterov=True, initial_scale=0.1)),
    "adam": (lambda: optim.adam(0.05), lambda: optax.adam(0.05)),
    "adam_custom": (lambda: optim.adam(0.03, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-6),
                    lambda: optax.adam(0.03, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-6)),
    "adam_eps_in_sqrt": (lambda: optim.adam(0.05, eps=1e-6, eps_in_sqrt=True),
                         lambda: optax.adam(0.05, eps=0.0, eps_root=1e-6)),
    "adam_schedule": (lambda: optim.adam(optax.cosine_decay_schedule(0.1, 40)),
                      lambda: optax.adam(optax.cosine_decay_schedule(0.1, 40))),
    "nadam": (lambda: optim.nadam(0.05, b1=0.8), lambda: optax.nadam(0.05, b1=0.8)),
    "adamax": (lambda: optim.adamax(0.05), lambda: optax.adamax(0.05)),
    "adamax_custom": (lambda: optim.adamax(0.02, b1=0.7, b2=0.95, eps=1e-4),
                      lambda: optax.adamax(0.02, b1=0.7, b2=0.95, eps=1e-4)),
    "adabelief": (lambda: optim.adabelief(0.05), lambda: optax.adabelief(0.05)),
    "adabelief_custom": (lambda: optim.adabelief(0.02, b1=0.8, b2=0.99, eps=1e-8, eps_root=0.0, nesterov=True),
                         lambda: optax.adabelief(0.02, b1=0.8, b2=0.99, eps=1e-8, eps_root=0.0, nesterov=True)),
    "amsgrad": (lambda: optim.amsgrad(0.05), lambda: optax.amsgrad(0.05)),
    "amsgrad_custom": (lambda: optim.amsgrad(0.02, b1=0.6, b2=0.9, eps=1e-5, eps_root=1e-8),
                       lambda: optax.amsgrad(0.02, b1=0.6, b2=0.9, eps=1e-5, eps_root=1e-8)),
    "lion": (lambda: optim.lion(0.003), lambda: optax.lion(0.003)),
    "sgd_momentum_nesterov": (lambda: optim.sgd(0.02, 0.7, True), lambda: optax.sgd(0.02, 0.7, True)),
    "rmsprop_positional_bias_correction": (lambda: optim.rmsprop(0.01, 0.8, 1e-6, 0.1, False, True, 0.5, False, True),
                                           lambda: optax.rmsprop(0.01, 0.8, 1e-6, 0.1, False, True, 0.5, False, True)),
    "amsgrad_no_bias_correction": (lambda: optim.amsgrad(0.02, 0.6, 0.9, 1e-5, 0.0, None, False, False),
                                   lambda: optax.amsgrad(0.02, 0.6, 0.9, 1e-5, 0.0, None, False, False)),
    "lion_positional_mask": (lambda: optim.lion(0.01, 0.8, 0.95, None, 0.1, {"dense": True, "extra": False}),
                             lambda: optax.lion(0.01, 0.8, 0.95, None, 0.1, {"dense": True, "extra": False})),
    "lion_custom": (lambda: optim.lion(0.01, b1=0.8, b2=0.95, weight_decay=0.1),
                    lambda: optax.lion(0.01, b1=0.8, b2=0.95, weight_decay=0.1)),
}


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-6), (jnp.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_trajectory_matches_optax(name, dtype, tol):
    ours, theirs = PAIRS[name]
    params = random_tree(jax.random.PRNGKey(42), dtype)
    got, ref = trajectory(ours(), params), trajectory(theirs(), params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # the trajectory really moved
    moved = max(float(jnp.max(jnp.abs(a[-1] - p))) for a, p in zip(jax.tree.leaves(got), jax.tree.leaves(params)))
    assert moved > 1e-2
