"""Curvature at scale: HVP, Lanczos and Hutchinson on a >= 10M-parameter model, data-parallel.

The batch is placed with ``NamedSharding`` on the batch axis of a 1-D mesh over every device
(one device on a laptop: the same program), the loss closes over it, and each jitted call is
timed against one gradient of the same loss (medians of interleaved calls after warm-up, one
process).  Memory is XLA's own accounting of each compiled call (``memory_analysis()``:
``temp_size_in_bytes``, the peak of intermediate buffers; arguments not counted).

Rows: ``jax.grad``; ``gradkit.hvp`` in its three modes; ``hvp_operator`` (linearize once, then one
tangent pass per product; the row times linearize + 1 product); Lanczos (``lanczos_eigenvalues``,
``m`` steps) and Hutchinson (``hutchinson_trace``, ``s`` probes), reported per operator product.

    python benchmarks/hvp_scale.py            # 10.5M-parameter MLP, writes benchmarks/results/hvp_scale.json
    python benchmarks/hvp_scale.py --full     # also a 42M-parameter MLP, more repeats
    python benchmarks/hvp_scale.py --quick    # tiny smoke size, no JSON
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import gradkit as gk
from gradkit.linalg import hutchinson_trace, lanczos_eigenvalues


def problem(widths: list[int], batch: int):
    """A tanh MLP with softmax cross-entropy; ``(loss(p, x, y), params, x, y)`` with ``x, y``
    sharded over the batch axis of a mesh of every device."""
    keys = jax.random.split(jax.random.PRNGKey(0), len(widths) + 1)
    params = [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
              for k, m, n in zip(keys[:-1], widths[:-1], widths[1:])]
    mesh = Mesh(np.array(jax.devices()), ("data",))
    data = NamedSharding(mesh, PartitionSpec("data"))
    x = jax.device_put(jax.random.normal(keys[-1], (batch, widths[0])), data)
    y = jax.device_put(jnp.arange(batch) % widths[-1], data)

    def loss(p, x, y):
        h = x
        for layer in p[:-1]:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

    return loss, params, x, y


def calls(loss, lanczos_steps: int, probes: int) -> dict[str, tuple]:
    """name -> (function of (params, v, x, y), operator products per call)."""
    key = jax.random.PRNGKey(1)

    def grad(p, v, x, y):
        return jax.grad(loss)(p, x, y)

    def mode(m):
        return lambda p, v, x, y: gk.hvp(lambda q: loss(q, x, y), p, v, mode=m)

    def operator(p, v, x, y):
        return gk.hvp_operator(lambda q: loss(q, x, y), p)(v)

    def lanczos(p, v, x, y):
        matvec = gk.hvp_operator(lambda q: loss(q, x, y), p)
        return lanczos_eigenvalues(matvec, p, key, k=1, num_steps=lanczos_steps).eigenvalues

    def hutchinson(p, v, x, y):
        matvec = gk.hvp_operator(lambda q: loss(q, x, y), p)
        return hutchinson_trace(matvec, p, key, num_samples=probes, batch_size=1).estimate

    return {"jax.grad (one gradient)": (grad, 1), "gradkit.hvp fwd_rev": (mode("fwd_rev"), 1),
            "gradkit.hvp rev_rev": (mode("rev_rev"), 1), "gradkit.hvp rev_fwd": (mode("rev_fwd"), 1),
            "hvp_operator (linearize + 1 product)": (operator, 1),
            f"lanczos_eigenvalues, {lanczos_steps} steps": (lanczos, lanczos_steps),
            f"hutchinson_trace, {probes} probes": (hutchinson, probes)}


def run(sizes: dict[str, tuple[list[int], int]], repeats: int, lanczos_steps: int, probes: int) -> list[dict]:
    rows = []
    for label, (widths, batch) in sizes.items():
        loss, params, x, y = problem(widths, batch)
        v = jax.tree.map(lambda p: jnp.ones_like(p) / jnp.sqrt(p.size), params)
        n = sum(p.size for p in jax.tree.leaves(params))
        fns = calls(loss, lanczos_steps, probes)
        jitted = {name: jax.jit(fn) for name, (fn, _) in fns.items()}
        compiled = {name: f.lower(params, v, x, y).compile() for name, f in jitted.items()}
        times = _timing.interleaved_medians([lambda c=c: c(params, v, x, y) for c in compiled.values()],
                                            repeats=repeats, warmup=1)
        t_grad = times[0]
        for (name, (_, products)), t in zip(fns.items(), times):
            mem = compiled[name].memory_analysis()
            rows.append({"model": f"MLP {label} ({n:,} params)", "batch": batch, "devices": jax.device_count(),
                         "what": name, "median ms": t * 1e3, "ms per product": t * 1e3 / products,
                         "per product / grad": t / products / t_grad,
                         "peak temp MB": float(mem.temp_size_in_bytes) / 2**20})
    return rows


COLUMNS = ["model", "batch", "devices", "what", "median ms", "ms per product", "per product / grad", "peak temp MB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no JSON written")
    parser.add_argument("--full", action="store_true", help="also a ~42M-parameter model, more repeats")
    args = parser.parse_args()
    if args.quick:
        sizes, repeats, steps, probes = {"tiny": ([32, 16, 10], 16)}, 3, 4, 4
    else:
        sizes = {"~10.5M": ([1024, 2048, 2048, 2048, 10], 256)}
        if args.full:
            sizes["~42M"] = ([1024, 4096, 4096, 4096, 10], 256)
        repeats, steps, probes = (21, 20, 20) if args.full else (5, 8, 8)
    _timing.report("hvp_scale", run(sizes, repeats, steps, probes), COLUMNS, args.quick)


if __name__ == "__main__":
    main()
