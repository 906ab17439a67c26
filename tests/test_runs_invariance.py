"""Every optimizer of gradkit.optim that runs inside ``gradkit.runs`` gives bit-identical results
whatever the chunk size (7, all 70 runs at once), the device count and the process count.

A per-device batch of one run, or one that leaves a scalar remainder loop, compiles to different
code (XLA CPU drops the unit axis; FMA contraction and loop shapes change) and differs in the last
bit even for plain sgd, so the runner pads every device's block to a multiple of 16 runs and runs
it under ``shard_map``.  ``tests/_multihost_job.py`` runs twice: as one process with one device
(all 70 runs in one chunk: the reference), and as a ``jax.distributed`` job of 2 processes x 2 CPU devices
(loopback coordinator, gloo collectives, :func:`gradkit.runs.launch.launch_local`) with chunk 7,
so 10 chunks of 7 runs are each padded onto 4 devices of 2 processes.  Every process must get the reference bit
for bit: the 27 optimizer configurations, and the runner's other paths (recording, a target ladder,
pytree starts, sweeps, ``gather_to``, global starts, the landscape, BBOB and CUTEst races).  ``fit`` on a batch sharded over the
processes (with a ``CurvatureTracker``) and the curvature operator with the batch as an argument
agree with one process; the race prints and writes from process 0 only; starts that differ between
processes and a closure over the sharded batch get clear errors (issue 24)."""

from __future__ import annotations

import os
import re

import _xla_env
import numpy as np
import pytest

from gradkit.runs.launch import launch_local

JOB = os.path.join(os.path.dirname(__file__), "_multihost_job.py")
BIT_EXACT = ("recorded/", "pytree/", "sweep/", "race/", "host_starts/", "global_starts/", "bbob/", "cutest/")


@pytest.fixture(scope="session")
def jobs(tmp_path_factory):
    """The one-process reference and the 2 x 2 job: every process's saved results, its completed
    process (stdout) and the job's folder."""
    one, two = tmp_path_factory.mktemp("one_process"), tmp_path_factory.mktemp("two_processes")
    # the user's XLA flags, not the tests' fast-compile ones: the promise is about the code users run
    # (XLA's legacy CPU emitters vectorize a 16-run and an 80-run block differently in hessian_free's CG)
    user = {"XLA_FLAGS": _xla_env.user_xla_flags()}
    launch_local([JOB, str(one), "--chunks", "70"], processes=1, local_devices=1, timeout=400, env=user)
    done = launch_local([JOB, str(two), "--chunks", "7"], processes=2, local_devices=2, timeout=400, env=user)
    return dict(np.load(one / "p0.npz")), [dict(np.load(two / f"p{i}.npz")) for i in range(2)], done, two


def test_every_optimizer_and_path_is_bit_identical_across_chunks_devices_and_processes(jobs):
    """One test, so the (~2 min of CPU) fixture is built once on one worker."""
    reference, (p0, p1), done, two = jobs
    assert int(reference["devices"]) == 1 and int(p0["processes"]) == 2 and int(p0["devices"]) == 4
    names = sorted({k.split("/")[1] for k in reference if k.startswith("run/")})
    assert len(names) == int(reference["configurations"]) >= 27
    # not vacuous: every optimizer moved its runs away from the starts
    starts = reference["recorded/trajectory"][:, 0]
    still = [n for n in names if not np.max(np.abs(reference[f"run/{n}/70/final"] - starts)) > 1e-6]
    assert not still, still
    variants = {"2 processes x 2 devices, chunk 7 (process 0)": (p0, 7),
                "2 processes x 2 devices, chunk 7 (process 1)": (p1, 7)}
    differing = [f"{name}: {label} {field}" for name in names for label, (got, chunk) in variants.items()
                 for field in ("final", "cost", "converged")
                 if not np.array_equal(got[f"run/{name}/{chunk}/{field}"], reference[f"run/{name}/70/{field}"])]
    assert not differing, differing

    keys = [k for k in reference if k.startswith(BIT_EXACT)]
    assert len(keys) >= 20
    differing = [f"process {i}: {k}" for i, got in enumerate((p0, p1)) for k in keys
                 if not np.array_equal(got[k], reference[k], equal_nan=True)]
    assert not differing, differing
    assert np.array_equal(p0["global_starts/final"], p0["host_starts/final"])  # a global jax.Array as starts
    for key in ("fit/w", "fit/b", "fit/step_loss", "fit/top_eigenvalue", "hvp"):
        assert np.array_equal(p0[key], p1[key]), key
        np.testing.assert_allclose(p0[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(p0["fit/step_loss"]) == 3 * 4 and np.all(np.isfinite(p0["fit/top_eigenvalue"]))

    # gather_to=1: only process 1 receives the sweep, equal to the all-gathered one
    assert not bool(p0["gather_to/received"]) and bool(p1["gather_to/received"]) and bool(p1["gather_to/equal"])
    assert bool(reference["gather_to/received"])
    # the race prints its leaderboard and writes its files from process 0 only
    assert "== himmelblau" in done[0].stdout and "himmelblau" not in done[1].stdout
    assert any((two / "race_p0").iterdir()) and not (two / "race_p1").exists()
    said = [[line for line in _without_gloo_log(d.stdout).splitlines() if line.strip()] for d in done]
    assert "--suite bbob" in done[0].stdout and "--suite cutest" in done[0].stdout
    assert said[1] == ["process 1 done"]  # the BBOB and CUTEst races too: process 0 prints, process 1 says nothing
    assert (two / "bbob_p0" / "bbob_race.json").exists() and not (two / "bbob_p1").exists()
    assert any(k.startswith("bbob/") for k in keys) and any(k.startswith("cutest/") for k in keys)
    # starts that differ between processes, a closure over the sharded batch: errors naming the argument and fix
    for got in (p0, p1):
        assert "run_batch: starts differ between the 2 processes" in str(got["mismatch_error"])
        assert "hvp_operator: f closes over the global 'data'" in str(got["closure_error"])
        assert "gk.hvp_operator(lambda w, batch: loss(w, batch), w, batch)" in str(got["closure_error"])
    assert str(reference["mismatch_error"]) == "" and str(reference["closure_error"]) == ""


# gloo's C++ log, its spacing as gloo writes it (seen: "Rank 2  is", two spaces)
_GLOO_LOG = re.compile(r"\[Gloo\]\s+Rank\s+\d+\s+is\s+connected\s+to\s+\d+\s+peer\s+ranks\.|"
                       r"Expected\s+number\s+of\s+connected\s+peer\s+ranks\s+is\s*:\s*\d+")


def _without_gloo_log(stdout: str) -> str:
    """``stdout`` without gloo's C++ connection log, whose two halves may land on separate lines."""
    return _GLOO_LOG.sub("", stdout)
