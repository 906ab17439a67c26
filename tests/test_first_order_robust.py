"""Tests that would have caught each defect of the first-order optimizers: complex parameters,
SAM's perturbation under overflow/underflow, validation of hyperparameters and inputs, extra
update arguments, optax's signatures, inject_hyperparams of adasmooth (property/fuzz style)."""

from __future__ import annotations

import inspect

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings

from gradkit import optim

FAST = settings(max_examples=8, deadline=None, derandomize=True)
SHARED = ["sgd", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adabelief", "amsgrad", "lion"]


# --- optax's signatures: same positional order, names and defaults where a name is shared ---------


@pytest.mark.parametrize("name", SHARED)
def test_signature_extends_optax(name):
    ours = list(inspect.signature(getattr(optim, name)).parameters.values())
    theirs = list(inspect.signature(getattr(optax, name)).parameters.values())
    for a, b in zip(ours, theirs):
        assert (a.name, a.kind, a.default) == (b.name, b.kind, b.default), (name, a, b)
    # gradkit-only options come after optax's and are keyword-only
    assert all(p.kind == p.KEYWORD_ONLY for p in ours[len(theirs):]), name


def test_sam_accepts_optax_contrib_signature():
    ours = list(inspect.signature(optim.sam).parameters)
    theirs = list(inspect.signature(optax.contrib.sam).parameters)
    assert ours[2:len(theirs)] == theirs[2:]


# --- complex parameters: |g|² = g conj(g), step-equal to optax -------------------------------------

COMPLEX = {
    "adam": (lambda: optim.adam(0.05), lambda: optax.adam(0.05)),
    "nadam": (lambda: optim.nadam(0.05), lambda: optax.nadam(0.05)),
    "adabelief": (lambda: optim.adabelief(0.05), lambda: optax.adabelief(0.05)),
    "amsgrad": (lambda: optim.amsgrad(0.05), lambda: optax.amsgrad(0.05)),
    "rmsprop": (lambda: optim.rmsprop(0.02), lambda: optax.rmsprop(0.02)),
    "rmsprop_centered": (lambda: optim.rmsprop(0.02, centered=True, bias_correction=True),
                         lambda: optax.rmsprop(0.02, centered=True, bias_correction=True)),
    "adagrad": (lambda: optim.adagrad(0.3), lambda: optax.adagrad(0.3)),
    "adamax": (lambda: optim.adamax(0.05), lambda: optax.adamax(0.05)),
    "sgd_momentum": (lambda: optim.sgd(0.02, 0.9), lambda: optax.sgd(0.02, 0.9)),
}


def complex_run(opt, dtype, steps=15):
    target = jnp.array([1 + 2j, -0.5 + 1j, 3 - 1j], dtype)
    loss = lambda w: jnp.sum(jnp.abs(w - target) ** 2 + 0.1 * jnp.abs(w) ** 4)

    @jax.jit
    def run(w):
        def step(carry, _):
            w, s = carry
            g = jax.tree.map(jnp.conj, jax.grad(loss)(w))
            u, s = opt.update(g, s, w)
            return (optax.apply_updates(w, u), s), None

        return jax.lax.scan(step, (w, opt.init(w)), length=steps)[0][0]

    return run(jnp.array([0.3 - 0.2j, 1j, -1.0], dtype))


@pytest.mark.parametrize("dtype,tol", [(jnp.complex64, 1e-5), (jnp.complex128, 1e-12)], ids=["c64", "c128"])
@pytest.mark.parametrize("name", sorted(COMPLEX))
def test_complex_params_match_optax(name, dtype, tol):
    ours, theirs = COMPLEX[name]
    got, ref = complex_run(ours(), dtype), complex_run(theirs(), dtype)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    assert float(jnp.max(jnp.abs(got - jnp.array([0.3 - 0.2j, 1j, -1.0], dtype)))) > 1e-2


# --- new optax kwargs, step-equal ------------------------------------------------------------------

KWARGS = {
    "adam_mu_bf16": (lambda: optim.adam(0.05, mu_dtype=jnp.bfloat16), lambda: optax.adam(0.05, mu_dtype=jnp.bfloat16)),
    "amsgrad_paper": (lambda: optim.amsgrad(0.05, bias_correction_mu=False, bias_correction_nu=False),
                      lambda: optax.amsgrad(0.05, bias_correction_mu=False, bias_correction_nu=False)),
    "amsgrad_nu_only": (lambda: optim.amsgrad(0.05, bias_correction_mu=False),
                        lambda: optax.amsgrad(0.05, bias_correction_mu=False)),
    "rmsprop_bias_correction": (lambda: optim.rmsprop(0.02, 0.8, 1e-6, 0.1, bias_correction=True),
                                lambda: optax.rmsprop(0.02, 0.8, 1e-6, 0.1, bias_correction=True)),
    "lion_schedule_mask": (lambda: optim.lion(0.01, weight_decay=optax.linear_schedule(0.1, 0.0, 10),
                                              mask={"a": True, "b": False}),
                           lambda: optax.lion(0.01, weight_decay=optax.linear_schedule(0.1, 0.0, 10),
                                              mask={"a": True, "b": False})),
    "lion_mu_dtype": (lambda: optim.lion(0.01, 0.8, 0.95, jnp.float16), lambda: optax.lion(0.01, 0.8, 0.95, jnp.float16)),
    "sgd_nesterov_accum": (lambda: optim.sgd(0.02, 0.8, True, jnp.float32), lambda: optax.sgd(0.02, 0.8, True, jnp.float32)),
}


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_optax_kwargs_match_optax(name):
    ours, theirs = KWARGS[name]
    params = {"a": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7]])}
    loss = lambda p: jnp.sum(p["a"] ** 2 + jnp.sin(3 * p["a"])) + jnp.sum((p["b"] - 1.0) ** 4)

    def run(opt):
        p, s = params, opt.init(params)
        for _ in range(12):
            u, s = opt.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, u)
        return p, s

    (p1, s1), (p2, s2) = run(ours()), run(theirs())
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    field = "trace" if name.startswith("sgd") else "nu" if name.startswith("rmsprop") else "mu"
    ours_dtypes = [x.dtype for x in jax.tree.leaves(optax.tree.get(s1, field))]
    assert ours_dtypes == [x.dtype for x in jax.tree.leaves(optax.tree.get(s2, field))]


# --- extra update arguments are accepted and ignored -----------------------------------------------


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_update_accepts_extra_args(name):
    opt = optim.FIRST_ORDER[name](0.1)
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    w = jnp.array([1.0, -2.0])
    u1, _ = opt.update(w, opt.init(w), w, unexpected_extra=1, value=jnp.asarray(3.0))
    u2, _ = opt.update(w, opt.init(w), w)
    np.testing.assert_array_equal(u1, u2)


# --- SAM's perturbation: norm rho, direction g/||g||, even when ||g||² over/underflows --------------


@pytest.mark.parametrize("dtype,scale", [(jnp.float16, 300.0), (jnp.float32, 1e20), (jnp.float32, 1e-25),
                                         (jnp.float64, 1e300), (jnp.float64, 1e-300)])
def test_sam_perturbation_survives_overflow_and_underflow(dtype, scale):
    g = {"a": jnp.array([3.0, -4.0], dtype) * dtype(scale) / 5, "b": jnp.array([[12.0]], dtype) * dtype(scale) / 5}
    params = jax.tree.map(jnp.zeros_like, g)
    rho = 0.05
    eps = optim.sam_perturbation(g, params, rho)
    flat = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(eps)])
    gflat = np.array([3.0, -4.0, 12.0]) / 13
    assert all(x.dtype == dtype for x in jax.tree.leaves(eps))
    rtol = 2e-3 if dtype == jnp.float16 else 1e-6
    np.testing.assert_allclose(np.linalg.norm(flat), rho, rtol=rtol)
    np.testing.assert_allclose(flat, rho * gflat, rtol=rtol)


@FAST
@given(st.floats(-30, 30), st.lists(st.floats(-1, 1), min_size=2, max_size=5))
def test_sam_perturbation_is_scale_invariant(log_scale, values):
    g = jnp.asarray(values, jnp.float32)
    if float(jnp.max(jnp.abs(g))) < 1e-3:
        return
    eps = optim.sam_perturbation(g * jnp.float32(10.0**log_scale), jnp.zeros_like(g), 0.1)
    ref = 0.1 * np.asarray(values, np.float64) / np.linalg.norm(np.asarray(values, np.float64))
    np.testing.assert_allclose(np.asarray(eps, np.float64), ref, rtol=1e-5, atol=1e-7)


def test_sam_in_optax_convention_matches_optax_contrib_sam():
    loss = lambda w: jnp.sum((w - jnp.array([1.0, -1.0, 2.0])) ** 2 * jnp.array([1.0, 3.0, 0.5]))
    w0 = jnp.array([-1.0, 4.0, 0.0])
    for opaque in (False, True):
        outs = []
        for sam, sgd, adam in ((optim.sam, optim.sgd, optim.adam), (optax.contrib.sam, optax.sgd, optax.adam)):
            opt = sam(sgd(0.05), optax.chain(optax.contrib.normalize(), adam(0.01)), sync_period=3,
                      opaque_mode=opaque)
            w, s = w0, opt.init(w0)
            kw = {"grad_fn": lambda p, _: jax.grad(loss)(p)} if opaque else {}
            for _ in range(12):
                u, s = opt.update(jax.grad(loss)(w), s, w, **kw)
                w = optax.apply_updates(w, u)
            outs.append(w)
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-14)
        assert float(jnp.max(jnp.abs(outs[0] - w0))) > 0.1


# --- validation ------------------------------------------------------------------------------------

BAD_LR = [-0.1, float("inf"), float("nan"), jnp.asarray(-0.1), jnp.asarray(float("nan")), np.float32(-1.0)]


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
@pytest.mark.parametrize("lr", BAD_LR, ids=[repr(x) for x in BAD_LR])
def test_bad_learning_rate_is_rejected(name, lr):
    with pytest.raises(ValueError, match="learning_rate"):
        optim.FIRST_ORDER[name](lr)


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
@pytest.mark.parametrize("lr", [0.0, np.float32(0.0), jnp.asarray(0.0)], ids=["float", "np.float32", "jax"])
def test_a_zero_learning_rate_is_accepted_and_freezes_the_params(name, lr):
    """As optax: a learning rate of 0 (warm-up schedules, inject_hyperparams at 0) is a frozen step."""
    opt = optim.FIRST_ORDER[name](lr)
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update({"a": jnp.array([0.5, -0.25]), "b": jnp.array(2.0)}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["a"], [1.0, -2.0])
    assert float(params["b"]) == 3.0


@pytest.mark.parametrize("make,arg", [
    (lambda v: optim.adam(0.1, b1=v), "b1"), (lambda v: optim.adam(0.1, b2=v), "b2"),
    (lambda v: optim.amsgrad(0.1, b1=v), "b1"), (lambda v: optim.lion(0.1, b2=v), "b2"),
    (lambda v: optim.sgd(0.1, momentum=v), "momentum"), (lambda v: optim.rmsprop(0.1, decay=v), "decay"),
    (lambda v: optim.rmsprop(0.1, momentum=v), "momentum"), (lambda v: optim.adasmooth(0.1, rho2=v), "rho2"),
])
@pytest.mark.parametrize("value", [float("nan"), 1.0, -1e-3, jnp.asarray(1.5)])
def test_bad_decay_is_rejected(make, arg, value):
    with pytest.raises(ValueError, match=arg):
        make(value)


@pytest.mark.parametrize("make", [lambda v: optim.adam(0.1, eps=v), lambda v: optim.rmsprop(0.1, eps=v),
                                  lambda v: optim.adagrad(0.1, eps=v), lambda v: optim.adamax(0.1, eps=v),
                                  lambda v: optim.adasmooth(0.1, eps=v), lambda v: optim.amsgrad(0.1, eps=v)])
@pytest.mark.parametrize("value", [float("nan"), -1e-8])
def test_bad_eps_is_rejected(make, value):
    with pytest.raises(ValueError, match="eps"):
        make(value)


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_mismatched_updates_are_a_clear_error(name):
    opt = optim.FIRST_ORDER[name](0.1)
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    state = opt.init(params)
    if name != "sgd":  # plain SGD is stateless (optax's EmptyState): only params can show the mismatch
        with pytest.raises(ValueError, match="shape"):
            opt.update({"a": jnp.ones(2), "b": jnp.ones(4)}, state, None if name not in ("lion", "adamw") else params)
    with pytest.raises(ValueError, match="does not match"):
        opt.update({"a": jnp.ones(2)}, state, params)


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_integer_params_are_a_type_error(name):
    with pytest.raises(TypeError, match="params"):
        optim.FIRST_ORDER[name](0.1).init({"w": jnp.arange(3)})


@FAST
@given(st.floats(1e-4, 1.0), st.floats(0.0, 0.99))
def test_traced_hyperparameters_still_work(lr, b1):
    """vmap over learning rates and betas: traced values pass validation and match the constants."""
    w = jnp.array([1.0, -2.0])
    step = lambda lr, b1: optim.adam(lr, b1=b1).update(w, optim.adam(lr, b1=b1).init(w), w)[0]
    batched = jax.vmap(step)(jnp.array([lr, lr]), jnp.array([b1, b1]))
    np.testing.assert_allclose(batched[0], optax.adam(lr, b1=b1).update(w, optax.adam(lr, b1=b1).init(w))[0],
                               rtol=1e-12)


def test_inject_hyperparams_adasmooth_needs_no_static_args():
    """The window is read off the state's shape in update, so a traced window works there; init
    must see a concrete window (eager init, as here: inject_hyperparams traces ints under jit)."""
    opt = optax.inject_hyperparams(optim.adasmooth)(learning_rate=0.05, window=3)
    plain = optim.adasmooth(0.05, window=3)
    w = jnp.array([1.5, -2.0, 0.7])
    grad = jax.grad(lambda w: jnp.sum(w**2 + jnp.sin(3 * w)))
    s1, s2, w1, w2 = opt.init(w), plain.init(w), w, w
    step1, step2 = jax.jit(opt.update), jax.jit(plain.update)
    for _ in range(8):
        u1, s1 = step1(grad(w1), s1, w1)
        u2, s2 = step2(grad(w2), s2, w2)
        w1, w2 = w1 + u1, w2 + u2
    np.testing.assert_allclose(w1, w2, rtol=1e-14)
    assert float(jnp.max(jnp.abs(w1 - w))) > 1e-2


def test_inject_hyperparams_adasmooth_init_under_jit():
    """``jax.jit(inject_hyperparams(adasmooth)(...).init)``: the default window (None -> 10) is not a
    numeric hyperparameter, so nothing shape-setting is traced; an explicit window works with
    ``static_args="window"`` and otherwise fails with an error naming the fix.  Both jitted runs
    match the plain optimizer step for step."""
    w = jnp.array([1.5, -2.0, 0.7])
    grad = jax.grad(lambda w: jnp.sum(w**2 + jnp.sin(3 * w)))
    cases = [(optax.inject_hyperparams(optim.adasmooth)(learning_rate=0.05), optim.adasmooth(0.05, window=10), 10),
             (optax.inject_hyperparams(optim.adasmooth, static_args="window")(learning_rate=0.05, window=3),
              optim.adasmooth(0.05, window=3), 3)]
    for injected, plain, window in cases:
        s1, s2, w1, w2 = jax.jit(injected.init)(w), plain.init(w), w, w
        assert s1.inner_state.history.shape == (window, 3)
        for _ in range(window + 3):  # past one ring-buffer wrap
            u1, s1 = jax.jit(injected.update)(grad(w1), s1, w1)
            u2, s2 = plain.update(grad(w2), s2, w2)
            w1, w2 = w1 + u1, w2 + u2
        np.testing.assert_allclose(w1, w2, rtol=1e-6)
        assert float(jnp.max(jnp.abs(w1 - w))) > 1e-2
    traced = optax.inject_hyperparams(optim.adasmooth)(learning_rate=0.05, window=3)
    with pytest.raises(ValueError, match="static_args='window'"):
        jax.jit(traced.init)(w)
