"""Throughput of gradkit.runs.run vs a hand-fused ``jit(vmap(lax.scan))`` optax loop and vs a
seed-style NumPy Python loop: Adam (lr 1e-2) on Rosenbrock, N runs x 1000 steps, final state;
and the cost units of ``gradkit.runs.COST_UNITS`` measured on the MLP of ``benchmarks/hvp.py``.

Same process, same work, run-steps per second (medians of alternating calls after a
warm-up compile).  gradkit's run is timed both ways users call it: with the optimizer built once,
and with ``optim.adam(LR)`` built inside every call (cached by what it computes, so no
recompile).  Three hand-fused references: with ``optax.adam`` (what one writes by hand),
with ``gradkit.optim.adam`` (the optimizer gradkit's run uses, so the ratio is the cost of
the runner's bookkeeping alone), and with ``optax.adam`` plus the least per-step bookkeeping
(the first step with ``|f| <= 1e-6``: it has to evaluate ``f`` at every step).  gradkit's run
does all its bookkeeping: divergence, the first step with ``|f - f*| <= 1e-6``, the settled
step (time-to-eps) and the cost in gradient-equivalents; the first two loops do none of it.  The 10^6-run case runs in a
subprocess that reports its peak resident memory.

    python benchmarks/runs.py            # 10^3, 10^4, 10^5 runs + the 10^6 case
    python benchmarks/runs.py --quick
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

from gradkit import landscapes, optim, runs

LR, STEPS = 1e-2, 1000
ROSEN = landscapes.get("rosenbrock")


def starts_for(n: int) -> jax.Array:
    return jax.random.uniform(jax.random.PRNGKey(0), (n, 2), minval=-2.0, maxval=2.0)


def hand_fused(steps: int, opt: optax.GradientTransformation, check: bool = False):
    """The reference: what one writes by hand with optax, no bookkeeping; with ``check``, the
    least per-step bookkeeping there is (the first step with ``|f| <= 1e-6``, from
    ``value_and_grad``), to show what evaluating ``f`` at every step costs."""

    def bare(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(ROSEN)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        return jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)[0][0]

    def checked(x0):
        def step(carry, _):
            x, s, hit, t = carry
            value, grad = jax.value_and_grad(ROSEN)(x)
            hit = jnp.where((hit < 0) & (jnp.abs(value) <= 1e-6), t, hit)
            u, s = opt.update(grad, s, x)
            return (optax.apply_updates(x, u), s, hit, t + 1), None

        x, _, hit, _ = jax.lax.scan(step, (x0, opt.init(x0), jnp.int32(-1), jnp.int32(0)), None, length=steps)[0]
        return x, hit

    return jax.jit(jax.vmap(checked if check else bare))


def numpy_seed_style(x0: np.ndarray, steps: int) -> np.ndarray:
    """The seed's way: a Python loop per run and per step, NumPy arithmetic, Adam by hand."""
    x, m, v = x0.astype(np.float64).copy(), np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        g = np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2)])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - LR * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return x


def throughput_rows(sizes: list[int], steps: int, repeats: int) -> list[dict]:
    rows = []
    adam = optim.adam(LR)
    ref, ref_same = hand_fused(steps, optax.adam(LR)), hand_fused(steps, adam)
    ref_check = hand_fused(steps, optax.adam(LR), check=True)
    numpy_runs = 5
    t0 = time.perf_counter()
    for x0 in np.asarray(starts_for(numpy_runs)):
        numpy_seed_style(x0, steps)
    numpy_rate = numpy_runs * steps / (time.perf_counter() - t0)
    for n in sizes:
        starts = starts_for(n)
        t_ours, t_fresh, t_ref, t_same, t_check = _timing.interleaved_medians(
            [lambda: runs.run(ROSEN, adam, starts, steps, tol=1e-6, f_star=0.0).final,
             lambda: runs.run(ROSEN, optim.adam(LR), starts, steps, tol=1e-6, f_star=0.0).final,
             lambda: ref(starts), lambda: ref_same(starts), lambda: ref_check(starts)], repeats)
        ours_rate, ref_rate, same_rate = n * steps / t_ours, n * steps / t_ref, n * steps / t_same
        rows.append({"runs": n, "steps": steps, "gradkit run-steps/s": ours_rate, "hand-fused run-steps/s": ref_rate,
                     "vs hand-fused": ours_rate / ref_rate, "fresh optimizer per call run-steps/s": n * steps / t_fresh,
                     "fresh per call vs hand-fused": t_ref / t_fresh,
                     "hand-fused gradkit-adam run-steps/s": same_rate,
                     "vs hand-fused gradkit-adam": ours_rate / same_rate,
                     "vs hand-fused + per-step check": t_check / t_ours, "numpy loop run-steps/s": numpy_rate,
                     "vs numpy loop": ours_rate / numpy_rate})
    return rows


def cost_unit_rows(quick: bool, repeats: int) -> list[dict]:
    """Wall time of one value, value-and-gradient, HVP and JVP (one Gaussian tangent) on the MLP of
    ``benchmarks/hvp.py``, relative to one gradient: the measurement behind ``runs.COST_UNITS``."""
    from hvp import make_problem

    widths, batch = ([64, 32, 10], 32) if quick else ([784, 512, 512, 10], 256)
    loss, params = make_problem(widths, batch, jax.random.PRNGKey(0))
    tangent = jax.tree.map(lambda a: jax.random.normal(jax.random.PRNGKey(1), a.shape, a.dtype), params)
    fns = {"value": jax.jit(loss), "grad": jax.jit(jax.grad(loss)), "value_and_grad": jax.jit(jax.value_and_grad(loss)),
           "hvp": jax.jit(lambda p, t: jax.jvp(jax.grad(loss), (p,), (t,))[1]),
           "jvp": jax.jit(lambda p, t: jax.jvp(loss, (p,), (t,)))}
    calls = [(lambda f=f: f(params)) if name in ("value", "grad", "value_and_grad") else (lambda f=f: f(params, tangent))
             for name, f in fns.items()]
    times = dict(zip(fns, _timing.interleaved_medians(calls, repeats)))
    return [{"evaluation": name, "median ms": t * 1e3, "vs grad": t / times["grad"],
             "COST_UNITS": runs.COST_UNITS.get("grad" if name == "value_and_grad" else name)} for name, t in times.items()]


def million_case(n: int, steps: int) -> dict:
    """Run in a fresh process so its peak RSS is this case's alone."""
    code = f"""
import json, resource, time, jax
from gradkit import landscapes, optim, runs
f = landscapes.get('rosenbrock')
starts = jax.random.uniform(jax.random.PRNGKey(0), ({n}, 2), minval=-2.0, maxval=2.0)
t = time.perf_counter()
res = runs.run(f, optim.adam({LR}), starts, {steps}, tol=1e-6, f_star=0.0, chunk_size=262144)
dt = time.perf_counter() - t
print(json.dumps({{"runs": {n}, "steps": {steps}, "seconds (incl. compile)": dt,
                  "run-steps/s": {n} * {steps} / dt, "converged": float(res.converged.mean()),
                  "peak RSS GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    sizes, steps, repeats = ([100, 1000], 100, 3) if quick else ([1000, 10_000, 100_000], STEPS, 15)
    rows = throughput_rows(sizes, steps, repeats)
    print(f"machine: {_timing.machine()}")
    _timing.print_table(rows, ["runs", "steps", "gradkit run-steps/s", "hand-fused run-steps/s", "vs hand-fused",
                               "fresh optimizer per call run-steps/s", "fresh per call vs hand-fused",
                               "hand-fused gradkit-adam run-steps/s", "vs hand-fused gradkit-adam",
                               "vs hand-fused + per-step check", "numpy loop run-steps/s", "vs numpy loop"])
    big = million_case(10_000 if quick else 1_000_000, steps)
    print()
    _timing.print_table([big], list(big))
    units = cost_unit_rows(quick, 5 if quick else 30)
    print()
    _timing.print_table(units, ["evaluation", "median ms", "vs grad", "COST_UNITS"])
    if not quick:
        print("wrote", _timing.write_json("runs", rows + [big] + units))


if __name__ == "__main__":
    main()
