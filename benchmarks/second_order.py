"""Second order at scale: HVP cost and memory, Newton-CG vs scipy, sharpness of a trained MLP.

Same process for every comparison, medians after warm-up.

1. HVP cost: gradkit ``hvp`` (three modes) vs raw ``jax.jvp(jax.grad(f))`` and vs ``grad``
   on a ~0.7M- and a ~10M-parameter MLP; XLA's peak temporary memory of each compiled call.
2. Newton-CG: ``scipy.optimize.minimize(method="Newton-CG", hessp=...)`` (callbacks jitted
   JAX) vs gradkit ``minimize(newton_cg(forcing_norm=1))`` in one compiled while_loop, both
   stopped at ``||∇f|| <= 1e-6`` (scipy by a callback; at most 10⁴ iterations for scipy):
   iterations, HVPs, wall time.
   Chained Rosenbrock n = 100, 1000, 10⁴ from (-1.2, 1, ...); L2 logistic regression 20000 x 500.
3. Sharpness of a small MLP trained with Adam: top Hessian eigenvalue (Lanczos, power
   iteration) and trace (Hutchinson, Hutch++), with time.

    python benchmarks/second_order.py
    python benchmarks/second_order.py --quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import gradkit as gk
from gradkit.linalg import hutch_plus_plus, hutchinson_trace, lanczos_eigenvalues, power_iteration
from gradkit.optim import minimize, newton_cg


def mlp_loss(widths: list[int], batch: int, key: jax.Array):
    keys = jax.random.split(key, len(widths) + 1)
    params = [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
              for k, m, n in zip(keys[:-1], widths[:-1], widths[1:])]
    x = jax.random.normal(keys[-1], (batch, widths[0]))
    y = jnp.arange(batch) % widths[-1]

    def loss(p, x=x, y=y):
        h = x
        for layer in p[:-1]:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

    return loss, params


def peak_temp_mb(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return float(getattr(analysis, "temp_size_in_bytes", float("nan"))) / 2**20


def hvp_rows(quick: bool) -> list[dict]:
    sizes = {"~0.7M": ([784, 512, 512, 10], 256), "~10M": ([1024, 2048, 2048, 2048, 10], 256)}
    if quick:
        sizes = {"tiny": ([32, 16, 10], 16)}
    rows = []
    for label, (widths, batch) in sizes.items():
        loss, params = mlp_loss(widths, batch, jax.random.PRNGKey(0))
        v = jax.tree.map(jnp.ones_like, params)
        n = sum(x.size for x in jax.tree.leaves(params))
        fns = {
            "raw jax.jvp(jax.grad(f))": (lambda p, t: jax.jvp(jax.grad(loss), (p,), (t,))[1], (params, v)),
            "gradkit.hvp fwd_rev": (lambda p, t: gk.hvp(loss, p, t, mode="fwd_rev"), (params, v)),
            "gradkit.hvp rev_rev": (lambda p, t: gk.hvp(loss, p, t, mode="rev_rev"), (params, v)),
            "gradkit.hvp rev_fwd": (lambda p, t: gk.hvp(loss, p, t, mode="rev_fwd"), (params, v)),
            "jax.grad (one gradient)": (jax.grad(loss), (params,)),
        }
        jitted = {name: jax.jit(fn) for name, (fn, _) in fns.items()}
        times = _timing.interleaved_medians([lambda f=jitted[k], a=fns[k][1]: f(*a) for k in fns],
                                            repeats=3 if quick else 31)
        t_raw = times[0]
        for (name, (fn, args)), t in zip(fns.items(), times):
            rows.append({"model": f"MLP {label} ({n:,} params)", "what": name, "median ms": t * 1e3,
                         "vs raw jvp(grad)": t / t_raw, "peak temp MB": peak_temp_mb(fn, *args)})
    return rows


# ----------------------------------------------------------------------------- Newton-CG vs scipy


def rosenbrock(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def logistic_problem(m: int, d: int, l2: float = 1e-3):
    kx, kw, kn = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (m, d)) / jnp.sqrt(d)
    w_true = jax.random.normal(kw, (d,)) * 3
    y = jnp.where(x @ w_true + 0.5 * jax.random.normal(kn, (m,)) > 0, 1.0, -1.0)

    def loss(w):
        return jnp.mean(jax.nn.softplus(-y * (x @ w))) + 0.5 * l2 * jnp.sum(w**2)

    return loss, jnp.zeros(d)


def scipy_newton_cg(f, x0, gtol: float, maxiter: int):
    """scipy's Newton-CG with jitted JAX callbacks, stopped (callback ``StopIteration``) at the
    first iterate with ``||g|| <= gtol``; ``xtol`` is made tiny so that only ``gtol`` or
    ``maxiter`` stops it.  The gradient at the accepted point is read from a one-entry
    cache of ``jac`` calls (no extra gradient evaluation)."""
    fj, gj = jax.jit(f), jax.jit(jax.grad(f))
    hj = jax.jit(lambda x, p: jax.jvp(jax.grad(f), (x,), (p,))[1])
    fj(x0), gj(x0), hj(x0, x0)  # compile outside the timing
    cache = {}

    def jac(x):
        cache["x"], cache["g"] = np.copy(x), np.asarray(gj(x))
        return cache["g"]

    def stop_at_gtol(intermediate_result):
        x = intermediate_result.x
        g = cache["g"] if np.array_equal(cache.get("x"), x) else np.asarray(gj(x))
        if np.linalg.norm(g) <= gtol:
            raise StopIteration

    start = time.perf_counter()
    result = scipy.optimize.minimize(lambda x: float(fj(x)), np.asarray(x0), jac=jac,
                                     hessp=lambda x, p: np.asarray(hj(x, p)), method="Newton-CG",
                                     callback=stop_at_gtol, options={"maxiter": maxiter, "xtol": 1e-30})
    seconds = time.perf_counter() - start
    g_norm = float(np.linalg.norm(gj(result.x)))
    return result, seconds, g_norm


def newton_cg_rows(quick: bool) -> list[dict]:
    gtol = 1e-6
    problems = {
        "Rosenbrock n=100": (rosenbrock, jnp.asarray(np.tile([-1.2, 1.0], 50))),
        "Rosenbrock n=1000": (rosenbrock, jnp.asarray(np.tile([-1.2, 1.0], 500))),
        "Rosenbrock n=10^4": (rosenbrock, jnp.asarray(np.tile([-1.2, 1.0], 5000))),
        "logistic L2 20000x500": logistic_problem(20000, 500),
    }
    if quick:
        problems = {"Rosenbrock n=10": (rosenbrock, jnp.asarray(np.tile([-1.2, 1.0], 5)))}
    rows = []
    for name, (f, x0) in problems.items():
        result, t_scipy, g_scipy = scipy_newton_cg(f, x0, gtol, maxiter=10_000)
        solve = jax.jit(lambda x, f=f: minimize(f, x, newton_cg(forcing_norm=1), gtol=gtol, maxiter=100_000))
        ours = jax.block_until_ready(solve(x0))  # compile + first run
        t_ours = _timing.median_time(lambda: solve(x0), repeats=1 if quick else 3, warmup=0)
        rows.append({
            "problem": name,
            "scipy iters": int(result.nit), "scipy HVPs": int(result.nhev), "scipy grad norm": g_scipy,
            "scipy s": t_scipy,
            "gradkit iters": int(ours.iterations), "gradkit HVPs": int(ours.state.hvp_count),
            "gradkit grad norm": float(ours.grad_norm), "gradkit s": t_ours,
            "speed-up": t_scipy / t_ours,
        })
    return rows


# ----------------------------------------------------------------------------- sharpness


def sharpness_rows(quick: bool) -> list[dict]:
    widths, batch = ([16, 16, 4], 64) if quick else ([64, 128, 128, 10], 1024)
    loss, params = mlp_loss(widths, batch, jax.random.PRNGKey(1))
    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def train(params, state):
        def step(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(step, (params, state), None, length=50 if quick else 2000)[0]

    params, _ = train(params, state)
    n = sum(x.size for x in jax.tree.leaves(params))
    key = jax.random.PRNGKey(0)
    op_of = lambda p: gk.hvp_operator(loss, p)
    tasks = {
        "top eigenvalue, Lanczos (40 steps)": lambda p: lanczos_eigenvalues(op_of(p), p, key, 1, num_steps=40
                                                                           ).eigenvalues[0],
        "largest-magnitude eigenvalue, power iteration (<=200 its)": lambda p: power_iteration(op_of(p), p, key, 1,
                                                                                  num_iters=200, tol=1e-6
                                                                                  ).eigenvalues[0],
        "trace, Hutchinson (300 probes)": lambda p: hutchinson_trace(op_of(p), p, key, 300, batch_size=50).estimate,
        "trace, Hutch++ (300 products)": lambda p: hutch_plus_plus(op_of(p), p, key, 300).estimate,
    }
    rows = []
    for what, fn in tasks.items():
        jitted = jax.jit(fn)
        value = float(jitted(params))
        t = _timing.median_time(lambda: jitted(params), repeats=1 if quick else 5, warmup=0)
        rows.append({"model": f"MLP {'-'.join(map(str, widths))} ({n:,} params), Adam-trained",
                     "what": what, "value": value, "median s": t})
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    jax.config.update("jax_enable_x64", True)  # scipy works in float64: compare like with like
    newton = newton_cg_rows(quick)
    jax.config.update("jax_enable_x64", False)
    hvps = hvp_rows(quick)
    sharp = sharpness_rows(quick)
    _timing.report("second_order_hvp", hvps, ["model", "what", "median ms", "vs raw jvp(grad)", "peak temp MB"],
                   quick)
    _timing.report("second_order_newton_cg", newton,
                   ["problem", "scipy iters", "scipy HVPs", "scipy grad norm", "scipy s", "gradkit iters",
                    "gradkit HVPs", "gradkit grad norm", "gradkit s", "speed-up"], quick)
    _timing.report("second_order_sharpness", sharp, ["model", "what", "value", "median s"], quick)


if __name__ == "__main__":
    main()
