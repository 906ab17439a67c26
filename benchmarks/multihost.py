"""gradkit.runs across processes: run-steps/s for 1 process and for 2 processes (``jax.distributed``,
rehearsed on this machine by ``gradkit.runs.launch``), the bytes the gather moves, and the memory
per process for 10^7 runs.

Adam (lr 1e-2) on Rosenbrock, final state.  Each layout runs the same program: the run axis
sharded over every device of every process, results all-gathered to every process.  Timed the
way users call ``gk.runs.run`` (the optimizer built inside every call), medians of 5 calls after
a warm-up compile, ``jax.block_until_ready`` implied (the result is NumPy).  Layouts: 1 process x
1 device, 1 process x 2 devices, 2 processes x 1 device (the same two devices, now across a
process boundary: the ratio to the 1 x 2 layout is the cost of the gloo all-gather and the
per-call checks).  Then 10^7 runs in one call, per process: peak resident memory, bytes of
``RunResult`` per run, bytes received by the gather.

    python benchmarks/multihost.py          # writes benchmarks/results/multihost.json
    python benchmarks/multihost.py --quick
"""

from __future__ import annotations

import dataclasses
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(out: str, runs_timed: int, steps: int, big_runs: int, big_steps: int) -> None:
    """One process of a layout: times the runner and measures the 10^7-run call."""
    from gradkit.runs import multihost

    multihost.initialize()
    import jax
    import numpy as np

    from gradkit import landscapes, optim, runs

    rosen = landscapes.get("rosenbrock")

    def starts(n: int) -> np.ndarray:
        return np.random.default_rng(0).uniform(-2.0, 2.0, (n, 2)).astype(np.float32)

    x0 = starts(runs_timed)
    runs.run(rosen, optim.adam(1e-2), x0, steps)  # compile
    multihost.gathered_bytes(reset=True)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        runs.run(rosen, optim.adam(1e-2), x0, steps)
        times.append(time.perf_counter() - t)
    gathered_per_call = multihost.gathered_bytes(reset=True) / 5
    big = starts(big_runs)
    t = time.perf_counter()
    res = runs.run(rosen, optim.adam(1e-2), big, big_steps)
    big_seconds = time.perf_counter() - t
    fields = [getattr(res, f.name) for f in dataclasses.fields(res)]
    result_bytes = sum(np.asarray(a).nbytes for a in jax.tree.leaves(fields))
    row = {"processes": jax.process_count(), "devices": jax.device_count(), "process": jax.process_index(),
           "runs": runs_timed, "steps": steps, "median s": statistics.median(times),
           "run-steps/s": runs_timed * steps / statistics.median(times),
           "gathered MB per call": gathered_per_call / 1e6,
           "big runs": big_runs, "big steps": big_steps, "big seconds (incl. compile)": big_seconds,
           "big gathered MB": multihost.gathered_bytes() / 1e6, "RunResult bytes per run": result_bytes / big_runs,
           "peak RSS GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
           "converged": float(res.converged.mean())}
    Path(out).with_name(f"{Path(out).stem}_p{jax.process_index()}.json").write_text(json.dumps(row))


def main() -> None:
    from gradkit.runs.launch import launch_local

    quick = "--quick" in sys.argv
    runs_timed, steps = (2**16, 100) if quick else (2**20, 200)
    big_runs, big_steps = (10**6, 20) if quick else (10**7, 50)
    tmp = Path("/tmp/gradkit-multihost-bench")
    tmp.mkdir(exist_ok=True)
    rows = []
    for processes, devices in ((1, 1), (1, 2), (2, 1)):
        out = tmp / f"n{processes}d{devices}.json"
        launch_local([__file__, "--worker", str(out), str(runs_timed), str(steps), str(big_runs), str(big_steps)],
                     processes=processes, local_devices=devices, timeout=1200)
        for k in range(processes):
            rows.append(json.loads(out.with_name(f"{out.stem}_p{k}.json").read_text()))
            print(rows[-1], flush=True)
    base = next(r["run-steps/s"] for r in rows if r["processes"] == 1 and r["devices"] == 2)
    for r in rows:
        r["vs 1 process x 2 devices"] = r["run-steps/s"] / base
    machine = {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count()}
    (HERE / "results" / "multihost.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(sys.argv[i + 1], *map(int, sys.argv[i + 2: i + 6]))
    else:
        main()
