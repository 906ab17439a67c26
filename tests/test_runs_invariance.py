"""Every optimizer of gradkit.optim that runs inside ``gradkit.runs`` gives bit-identical results
whatever the chunk size (7, all 70 runs at once) and the device count (1 vs 8 forced host
devices).  A per-device batch of one run, or one that leaves a scalar remainder loop, compiles to
different code (XLA CPU drops the unit axis; FMA contraction and loop shapes change) and differs
in the last bit even for plain sgd, so the runner pads every device's block to a multiple of 16
runs and runs it under ``shard_map``; chunk 7 on 8 devices checks that.  One subprocess per device
count computes every optimizer's final points for every
chunk size; the test compares them all, bit for bit, with the 1-device all-at-once result."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from gradkit import runs, optim, landscapes

    f = landscapes.get("himmelblau")  # polynomial: no transcendental function of the objective in play
    starts = runs.start_grid(f.domain, 9)[:70]  # 70 runs: chunk 64 -> two chunks of 35
    key = jax.random.PRNGKey(3)
    OPTIMIZERS = {name: make(1e-3) for name, make in optim.FIRST_ORDER.items()}
    OPTIMIZERS.update({
        "sgd_momentum": optim.sgd(1e-3, momentum=0.9),
        "sgd_nesterov": optim.sgd(1e-3, momentum=0.9, nesterov=True),
        "momentum_ema": optim.momentum(1e-3, 0.9, form="ema"),
        "rmsprop_centered_momentum": optim.rmsprop(1e-3, centered=True, momentum=0.9, bias_correction=True),
        "adasmooth_window3": optim.adasmooth(1e-2, window=3),
        "sam": optim.sam(optim.adam(1e-3), rho=0.05),
        "asam": optim.asam(optim.sgd(1e-3), rho=0.5),
        "sam_optax_convention": optim.sam(optim.sgd(1e-3), optax.chain(optax.contrib.normalize(), optim.sgd(0.05))),
        "forward_gradient_descent": optim.forward_gradient_descent(optim.sgd(1e-3), key),
    })
    OPTIMIZERS.update({name: make(1e-3) for name, make in optim.HESSIAN_AWARE.items()})
    OPTIMIZERS.update({name: make() for name, make in optim.SECOND_ORDER.items() if name != "hessian_free"})
    OPTIMIZERS["hessian_free"] = optim.hessian_free(curvature="hessian")
    out = {}
    for name, opt in OPTIMIZERS.items():
        for chunk in CHUNKS:
            res = runs.run(f, opt, starts, 12, chunk_size=chunk)
            out[f"{name}|{chunk}"] = np.asarray(res.final)
    np.savez(OUT, n=jax.device_count(), starts=np.asarray(starts), **out)
""")


def run_script(tmp_path, devices: int, chunks: tuple[int, ...]) -> dict:
    out = tmp_path / f"d{devices}.npz"
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    script = SCRIPT.replace("OUT", repr(str(out))).replace("CHUNKS", repr(chunks))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)
    data = np.load(out)
    assert int(data["n"]) == devices
    return {k: data[k] for k in data.files if k not in ("n", "starts")}, data["starts"]


@pytest.fixture(scope="session")
def finals(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("invariance")
    (one, starts), (eight, _) = run_script(tmp, 1, (7, 70)), run_script(tmp, 8, (7, 70))
    return one, eight, starts


def differing_variants(finals, names):
    one, eight, _ = finals
    differing = []
    for name in names:
        reference = one[f"{name}|70"]
        assert np.all(np.isfinite(reference)), name
        variants = {f"1 device, chunk {c}": one[f"{name}|{c}"] for c in (7,)}
        variants.update({f"8 devices, chunk {c}": eight[f"{name}|{c}"] for c in (7, 70)})
        differing += [f"{name}: {label}" for label, got in variants.items() if not np.array_equal(got, reference)]
    return differing


def test_every_optimizer_is_bit_identical_across_chunk_sizes_and_devices(finals):
    """Bit for bit against the 1-device all-at-once result; and not vacuously: every optimizer
    moved its runs away from the starts.  One test, so the (~40 s) fixture is built once."""
    one, _, starts = finals
    names = sorted({k.split("|")[0] for k in one})
    assert len(names) >= 27
    assert not differing_variants(finals, names)
    still = [k for k, v in one.items() if k.endswith("|70") and not np.max(np.abs(v - starts)) > 1e-6]
    assert not still, still
