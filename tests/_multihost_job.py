"""One process of the multi-process rehearsal of ``tests/test_multihost.py``.

Launched by :func:`gradkit.runs.launch.launch_local` as N processes x D CPU devices (or 1 x 1
for the reference).  Every process runs the same program; each saves what it received to
``OUT/p{process index}.npz`` so the test can compare every process with the one-process run.
``--chunks 7,70``: the chunk sizes part 1 (the 27 optimizer configurations) runs with.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradkit.runs import multihost

multihost.initialize()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import gradkit as gk  # noqa: E402
from gradkit import landscapes, optim, runs  # noqa: E402

OUT = Path(sys.argv[1])
CHUNKS = [int(c) for c in sys.argv[sys.argv.index("--chunks") + 1].split(",")] if "--chunks" in sys.argv else [70]
me, processes = jax.process_index(), jax.process_count()
saved: dict[str, np.ndarray] = {"processes": np.asarray(processes), "devices": np.asarray(jax.device_count())}
f = landscapes.get("himmelblau")  # polynomial: no transcendental function in play
starts = runs.start_grid(f.domain, 9)[:70]

# 1. every optimizer family of the invariance test (27 configurations), final points and verdicts
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
    "forward_gradient_descent": optim.forward_gradient_descent(optim.sgd(1e-3), jax.random.PRNGKey(3)),
})
OPTIMIZERS.update({name: make(1e-3) for name, make in optim.HESSIAN_AWARE.items()})
OPTIMIZERS.update({name: make() for name, make in optim.SECOND_ORDER.items() if name != "hessian_free"})
OPTIMIZERS["hessian_free"] = optim.hessian_free(curvature="hessian")
saved["configurations"] = np.asarray(len(OPTIMIZERS))
for name, opt in OPTIMIZERS.items():
    for chunk in CHUNKS:
        res = runs.run(f, opt, starts, 12, chunk_size=chunk)
        saved[f"run/{name}/{chunk}/final"] = res.final
        saved[f"run/{name}/{chunk}/cost"] = res.cost
        saved[f"run/{name}/{chunk}/converged"] = res.converged

# 2. recording, a target ladder, a pytree start, chunks: every field of RunResult
rec = runs.run(f, optim.adam(0.05), starts, 40, record=4, f_star=0.0, tol=1e-3, targets=[1.0, 1e-2, 1e-4],
               chunk_size=24)
for field in ("final", "final_value", "final_grad_norm", "diverged", "first_hit", "settled_step", "cost",
              "cost_to_settle", "trajectory", "values", "grad_norms", "target_steps", "target_costs", "counts",
              "target_counts"):
    saved[f"recorded/{field}"] = np.asarray(getattr(rec, field))
tree_starts = {"x": starts[:, :1], "y": starts[:, 1:]}
tree = runs.run(lambda p: f(jnp.concatenate([p["x"], p["y"]], -1)), optim.sgd(1e-3), tree_starts, 12)
saved["pytree/x"], saved["pytree/y"] = tree.final["x"], tree.final["y"]

# 3. a sweep (hyperparameters as traced arrays), gathered to every process, then to process 1 only
sweep = runs.sweep(f, {"adam": optim.adam, "sgd": optim.sgd}, starts[:20],
                   {"adam": {"learning_rate": [0.01, 0.1]}, "sgd": {"learning_rate": [1e-3, 1e-2]}}, 30, f_star=0.0)
for name in sweep.results:
    saved[f"sweep/{name}/settled"] = sweep.per_config(name, "settled_step")
    saved[f"sweep/{name}/final"] = sweep.results[name].final
saved["sweep/best"] = np.asarray([sweep.best_config(n) for n in sweep.results])
last = processes - 1
only = runs.sweep(f, {"adam": optim.adam}, starts[:20], {"adam": {"learning_rate": [0.01, 0.1]}}, 30, f_star=0.0,
                  gather_to=last)
saved["gather_to/received"] = np.asarray(only is not None)
if only is not None:
    saved["gather_to/equal"] = np.asarray(np.array_equal(only.results["adam"].final, sweep.results["adam"].final))

# 4. global starts (a jax.Array spanning every process) give the same runs as host starts
mesh = Mesh(np.asarray(jax.devices()), ("runs",))
host_starts = np.asarray(starts)[:64]  # divisible by every device count of the test
global_starts = jax.make_array_from_callback(host_starts.shape, NamedSharding(mesh, PartitionSpec("runs")),
                                             lambda index: host_starts[index])
saved["global_starts/final"] = runs.run(f, optim.adam(1e-3), global_starts, 12).final
saved["host_starts/final"] = runs.run(f, optim.adam(1e-3), host_starts, 12).final

# 5. the race: process 0 prints and writes, the others stay silent
out = OUT / f"race_p{me}"
race = gk.race.race(landscapes=["himmelblau"], optimizers=["adam", "sgd"], learning_rates=[0.01, 0.1], starts_per_axis=3, steps=60,
                    out=str(out), progress=False, echo=lambda line: print(line, flush=True))
saved["race/settled"] = race.races[0].sweep.per_config("adam", "settled_step")

# 6. fit on a batch sharded over the processes (each process holds its own slice of the data)
key = jax.random.PRNGKey(0)
x = jax.random.normal(key, (64, 3))
y = x @ jnp.asarray([1.0, -2.0, 0.5]) + 0.1
data_sharding = NamedSharding(mesh, PartitionSpec("runs"))
rows = np.arange(64).reshape(processes, -1)[me]  # this process's examples
local = (np.asarray(x)[rows], np.asarray(y)[rows])
data = tuple(jax.make_array_from_process_local_data(data_sharding, part, (64,) + part.shape[1:]) for part in local)


def mse(w, batch):
    xb, yb = batch
    return jnp.mean((xb @ w["w"] + w["b"] - yb) ** 2)


tracker = gk.curvature.CurvatureTracker(every=2, lanczos_steps=3, trace_matvecs=0)
params, history = gk.train.fit(mse, {"w": jnp.zeros(3), "b": jnp.zeros(())}, optim.adam(0.05), data, 3, 16, key,
                               progress=False, tracker=tracker)
saved["fit/w"], saved["fit/b"] = multihost_utils.process_allgather(params["w"], tiled=True), np.asarray(
    multihost_utils.process_allgather(params["b"], tiled=True))
saved["fit/step_loss"] = history.step_loss
saved["fit/top_eigenvalue"] = np.asarray(history.curvature.eigenvalues)

# 7. the curvature operator with the batch as an argument; a closure over the global batch is refused
w = {"w": jnp.ones(3), "b": jnp.zeros(())}
op = gk.hvp_operator(mse, w, data)
saved["hvp"] = np.concatenate([np.ravel(multihost_utils.process_allgather(a, tiled=True))
                               for a in jax.tree.leaves(jax.jit(lambda o, v: o(v))(op, w))])
try:
    gk.hvp_operator(lambda p: mse(p, data), w)
    saved["closure_error"] = np.asarray("")
except ValueError as err:
    saved["closure_error"] = np.asarray(str(err))

# 8. starts that differ between processes: a clear error on every process, not a hang
try:
    runs.run(f, optim.adam(1e-3), starts + me, 12)
    saved["mismatch_error"] = np.asarray("")
except ValueError as err:
    saved["mismatch_error"] = np.asarray(str(err))

# 9. the suites (float64, as their targets need): BBOB with per-run instance data, CUTEst
jax.config.update("jax_enable_x64", True)
from gradkit.race.bbob_race import bbob_race  # noqa: E402
from gradkit.race.campaign import CampaignConfig  # noqa: E402
from gradkit.race.cutest_race import CutestConfig, cutest_race  # noqa: E402

bbob = bbob_race(CampaignConfig(functions=(1, 8), dimensions=(2,), instances=(1, 2), optimizers=("adam",),
                                learning_rates=(0.1,), budget=30), out=str(OUT / f"bbob_p{me}"),
                 echo=lambda line: print(line, flush=True))
for (name, lr), r in bbob.runs.items():
    saved[f"bbob/{name}/{lr}/target_costs"], saved[f"bbob/{name}/{lr}/total_cost"] = r.target_costs, r.total_cost
cutest = cutest_race(CutestConfig(problems=("ROSENBR",), optimizers=("adam",), learning_rates=(0.01,), budget=30),
                     echo=lambda line: print(line, flush=True))
for (name, lr), c in cutest.costs.items():
    saved[f"cutest/{name}/{lr}"] = c

np.savez(OUT / f"p{me}.npz", **{k: np.asarray(v) for k, v in saved.items()})
print(f"process {me} done", flush=True)
