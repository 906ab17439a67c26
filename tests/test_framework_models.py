"""Flax NNX and Equinox models through gradkit (examples/framework_models.py): the HVP on the
model's own parameter pytree equals the dense ``jax.hessian`` of the flattened parameters, Lanczos
finds its top eigenvalues (vs ``eigvalsh``), and Newton-CG minimizes on the framework pytree."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit.linalg import lanczos_eigenvalues
from gradkit.optim import minimize, newton_cg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import framework_models as fm

BUILDERS = {"flax": fm.nnx_problem, "equinox": fm.equinox_problem}


def _dense(loss, params):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat), dtype=np.float64)


@pytest.mark.parametrize("framework", ["flax", "equinox"])
def test_hvp_and_lanczos_match_dense_hessian(framework):
    pytest.importorskip(framework)
    loss, params = BUILDERS[framework](width=5, batch=24)
    dense = _dense(loss, params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v = unravel(jnp.cos(jnp.arange(flat.size, dtype=flat.dtype)))

    @jax.jit
    def curvature(p, v):
        top = lanczos_eigenvalues(gk.hvp_operator(loss, p), p, jax.random.PRNGKey(0), k=2, num_steps=flat.size)
        return gk.hvp(loss, p, v), top.eigenvalues

    hv, top = curvature(params, v)
    assert jax.tree.structure(hv) == jax.tree.structure(params)
    got = np.asarray(jax.flatten_util.ravel_pytree(hv)[0], dtype=np.float64)
    expected = dense @ np.cos(np.arange(flat.size))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(np.asarray(top), np.linalg.eigvalsh(dense)[::-1][:2], rtol=1e-4)


def test_newton_cg_on_an_nnx_state():
    pytest.importorskip("flax")
    loss, params = fm.nnx_problem(width=4, batch=24)
    res = jax.jit(lambda p: minimize(loss, p, newton_cg(), gtol=1e-5, maxiter=60))(params)
    assert type(res.params) is type(params)
    assert bool(res.converged) and float(res.grad_norm) <= 1e-5
    assert float(res.value) < 0.5 * float(loss(params))
    # a true local minimum: the Hessian there is positive definite
    assert np.linalg.eigvalsh(_dense(loss, res.params)).min() > 0
