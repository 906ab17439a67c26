"""Many quasi-Newton runs at once: gradkit's BFGS / L-BFGS (line search folded into the steps)
and Newton-CG vs gradkit's ``minimize`` with ``optax.lbfgs`` (zoom line search) vs optimistix's
BFGS, L-BFGS and Newton and jaxopt's LBFGS, 1000 vmapped starts (uniform in [-4, 4]^d, float64)
in one jitted call, same process, medians of repeated calls after a warm-up, the solvers of a
problem timed in alternation (each timed call right after an untimed one of the same solver).  Every solver's
final accuracy is reported (the largest gradient norm over the runs), since the libraries stop by
different rules: optimistix at ``rtol = atol = 1e-10`` on the steps (its Cauchy test), which left
gradients up to 6.5e-10 -- 8.9e-10 where it solved the problem; gradkit and jaxopt at a gradient
norm ``<= 5e-10``, so gradkit's runs end at least as accurate as optimistix's.  Each row is
compared with optimistix's solver of the same method (BFGS, L-BFGS, Newton) and with its BFGS,
the fastest peer here.  Then one large problem: Rosenbrock n = 1000 from (-1.2, 1, ...), to
``||g|| <= 1e-6``.

    pip install optimistix jaxopt      # references (not gradkit dependencies)
    python benchmarks/quasi_newton.py  # writes benchmarks/results/quasi_newton.json
    python benchmarks/quasi_newton.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import gradkit as gk

try:
    import jaxopt
    import optimistix as optx
except ImportError:  # the references are optional
    jaxopt = optx = None

jax.config.update("jax_enable_x64", True)


MULTISTART_GTOL = 5e-10  # below every final gradient optimistix's Cauchy test left where it solved

SAME_METHOD = {"gradkit bfgs": "optimistix BFGS", "gradkit lbfgs": "optimistix LBFGS",
               "gradkit minimize + optax.lbfgs": "optimistix LBFGS", "gradkit newton_cg": "optimistix Newton",
               "jaxopt LBFGS": "optimistix LBFGS"}


def solvers(f, gtol: float, maxiter: int, newton: bool = False) -> dict:
    """name -> (jitted fn of the start(s), how to read (params, iterations) from its output)."""
    grad_norm = lambda x: jnp.linalg.norm(jax.grad(f)(x))
    out = {}
    ours = [("gradkit bfgs", gk.optim.bfgs()), ("gradkit lbfgs", gk.optim.lbfgs()),
            ("gradkit minimize + optax.lbfgs", optax.lbfgs())]
    if newton:
        ours.append(("gradkit newton_cg", gk.optim.newton_cg()))
    for label, opt in ours:
        out[label] = (lambda x, opt=opt: gk.optim.minimize(f, x, opt, gtol=gtol, maxiter=maxiter),
                      lambda r: (r.params, r.iterations))
    if optx is not None:
        peers = [("optimistix BFGS", optx.BFGS), ("optimistix LBFGS", optx.LBFGS)]
        if newton:
            peers.append(("optimistix Newton", optx.Newton))
        for label, make in peers:
            solver = make(rtol=1e-10, atol=1e-10)
            # (value, steps) only: a vmapped output cannot hold L-BFGS's state (it holds a jaxpr)
            out[label] = (lambda x, solver=solver: (lambda r: (r.value, r.stats["num_steps"]))(
                optx.minimise(lambda y, _: f(y), solver, x, max_steps=maxiter, throw=False)), lambda r: r)
        lb = jaxopt.LBFGS(fun=f, tol=gtol, maxiter=maxiter)
        out["jaxopt LBFGS"] = (lambda x: lb.run(x), lambda r: (r.params, r.state.iter_num))
    return {k: (fn, read, grad_norm) for k, (fn, read) in out.items()}


def multistart_rows(quick: bool) -> list[dict]:
    n_runs, repeats = (100, 3) if quick else (1000, 9)
    rows = []
    for name, dim in [("himmelblau", 2), ("rosenbrock", 2), ("rosenbrock", 10)]:
        f = gk.landscapes.get(name, dim=dim)
        starts = jax.random.uniform(jax.random.PRNGKey(0), (n_runs, dim), minval=-4, maxval=4, dtype=jnp.float64)
        table = {label: entry for label, entry in solvers(f, MULTISTART_GTOL, 1000, newton=True).items()
                 if not (label == "jaxopt LBFGS" and quick)}
        batched = {label: jax.jit(jax.vmap(fn)) for label, (fn, _, _) in table.items()}
        # timed in alternation, so that drift of the machine falls on every solver alike
        times = _timing.interleaved_medians([lambda b=b: b(starts) for b in batched.values()], repeats, warmup=1,
                                            rewarm=True)
        for (label, (_, read, grad_norm)), t in zip(table.items(), times):
            params, its = read(batched[label](starts))
            rows.append({"problem": f"{name} {dim}-D", "runs": n_runs, "solver": label, "ms": t * 1e3,
                         "median iterations": float(jnp.median(its)), "max iterations": int(jnp.max(its)),
                         "max final |g|": float(jnp.max(jax.vmap(grad_norm)(params)))})
    ms = {(r["problem"], r["solver"]): r["ms"] for r in rows}
    ratio = lambda r, peer: r["ms"] / ms[(r["problem"], peer)] if (r["problem"], peer) in ms else float("nan")
    for r in rows:
        r["vs optimistix, same method"] = ratio(r, SAME_METHOD.get(r["solver"], r["solver"]))
        r["vs optimistix BFGS"] = ratio(r, "optimistix BFGS")
    return rows


def large_rows(quick: bool) -> list[dict]:
    n = 100 if quick else 1000
    f = gk.landscapes.get("rosenbrock", dim=n)
    x0 = jnp.tile(jnp.array([-1.2, 1.0]), n // 2)
    rows = []
    table = solvers(f, 1e-6, 20000)
    table.pop("optimistix BFGS", None)  # dense n x n BFGS: not the tool for n = 1000
    table.pop("optimistix LBFGS", None)  # stopped by its Cauchy test, not at ||g|| <= 1e-6: not comparable
    table["gradkit newton_cg"] = (lambda x: gk.optim.minimize(f, x, gk.optim.newton_cg(), gtol=1e-6, maxiter=20000),
                                  lambda r: (r.params, r.iterations), table["gradkit bfgs"][2])
    table.pop("gradkit bfgs")
    jitted = {label: jax.jit(fn) for label, (fn, _, _) in table.items()}
    times = _timing.interleaved_medians([lambda j=j: j(x0) for j in jitted.values()], 3 if quick else 9, warmup=1)
    for (label, (_, read, grad_norm)), t in zip(table.items(), times):
        params, its = read(jitted[label](x0))
        rows.append({"problem": f"rosenbrock {n}-D", "runs": 1, "solver": label, "ms": t * 1e3,
                     "median iterations": float(its), "max iterations": int(its),
                     "max final |g|": float(grad_norm(params))})
    ref = {r["solver"]: r["ms"] for r in rows}.get("jaxopt LBFGS")
    for r in rows:
        r["vs optimistix BFGS"] = r["vs optimistix, same method"] = float("nan")
        r["vs jaxopt LBFGS"] = r["ms"] / ref if ref else float("nan")
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    if optx is None:
        print("optimistix / jaxopt not installed: gradkit's solvers only (pip install optimistix jaxopt)")
    rows = multistart_rows(quick)
    big = large_rows(quick)
    _timing.report("quasi_newton", rows + big, ["problem", "runs", "solver", "ms", "vs optimistix, same method", "vs optimistix BFGS",
                                                "median iterations", "max iterations", "max final |g|"], quick)
    print()
    _timing.print_table(big, ["problem", "solver", "ms", "vs jaxopt LBFGS", "max iterations", "max final |g|"])


if __name__ == "__main__":
    main()
