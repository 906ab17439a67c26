"""Curvature over a data-parallel mesh: HVP, Lanczos and Hutchinson of a loss that closes over a
batch sharded on 8 forced host devices (``NamedSharding``, batch axis) equal the one-device
results within float32 tolerance, and the 8-device program really reduces across devices."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import _xla_env
import numpy as np

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import gradkit as gk
    from gradkit.linalg import hutchinson_trace, lanczos_eigenvalues

    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    params = {"w1": jax.random.normal(keys[0], (6, 16)) / 2.5, "b1": 0.1 * jax.random.normal(keys[1], (16,)),
              "w2": jax.random.normal(keys[2], (16, 3)) / 4.0}
    x = jax.random.normal(keys[3], (64, 6))
    y = jnp.arange(64) % 3
    v = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype)).reshape(p.shape), params)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    x = jax.device_put(x, NamedSharding(mesh, P("data")))
    y = jax.device_put(y, NamedSharding(mesh, P("data")))

    def loss(p, x, y):
        logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

    @jax.jit
    def curvature(p, v, x, y):
        f = lambda q: loss(q, x, y)
        hv = gk.hvp(f, p, v)
        matvec = gk.hvp_operator(f, p)
        top = lanczos_eigenvalues(matvec, p, jax.random.PRNGKey(1), k=2, num_steps=30)
        trace = hutchinson_trace(matvec, p, jax.random.PRNGKey(2), num_samples=32)
        return hv, top.eigenvalues, trace.estimate

    hv, eig, tr = curvature(params, v, x, y)
    hlo = curvature.lower(params, v, x, y).compile().as_text()
    flat = jax.flatten_util.ravel_pytree(hv)[0]
    np.savez(OUT, n=jax.device_count(), hv=np.asarray(flat), eig=np.asarray(eig), trace=np.asarray(tr),
             dtype=str(flat.dtype), shards=len(x.sharding.device_set),
             all_reduce=("all-reduce" in hlo) or ("reduce-scatter" in hlo))
""")


def test_hvp_lanczos_hutchinson_on_8_devices_equal_one_device(tmp_path):
    outs = {}
    for count in (1, 8):
        env = _xla_env.with_devices(count, JAX_ENABLE_X64="0")
        out = tmp_path / f"d{count}.npz"
        script = "import jax.flatten_util\n" + SCRIPT.replace("OUT", repr(str(out)))
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
        outs[count] = np.load(out)
    one, eight = outs[1], outs[8]
    assert int(one["n"]) == 1 and int(eight["n"]) == 8 and int(eight["shards"]) == 8
    assert str(eight["dtype"]) == "float32"
    assert bool(eight["all_reduce"])  # the batch is split: per-device partial sums are reduced
    np.testing.assert_allclose(eight["hv"], one["hv"], rtol=2e-5, atol=2e-6 * np.abs(one["hv"]).max())
    np.testing.assert_allclose(eight["eig"], one["eig"], rtol=1e-4)
    np.testing.assert_allclose(eight["trace"], one["trace"], rtol=1e-4)
    assert float(one["eig"][0]) > float(one["eig"][1]) > 0
    assert np.abs(one["hv"]).max() > 1e-3
