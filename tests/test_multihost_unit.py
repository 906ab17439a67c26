"""The multi-process pieces that one process can check: argument errors, the local launcher's
failure and timeout handling, the batch-as-argument HVP operator (against ``jax.hessian``, compiled
once for every batch), and the per-argument digests the processes compare.  The 2 x 2 job itself
is ``tests/test_runs_invariance.py``."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from _jax_counters import compiles
from gradkit.runs import launch, multihost


def quadratic_loss(w, batch):
    x, y = batch
    return jnp.mean((jnp.tanh(x @ w) - y) ** 2)


@pytest.mark.parametrize("bad", [-1, 1, 1.0, True, "0"])
def test_gather_to_must_name_a_process(bad):
    f = gk.landscapes.get("himmelblau")
    with pytest.raises(ValueError, match=r"gather_to must be None \(every process\) or a process index in \[0, 1\)"):
        gk.runs.run(f, gk.optim.sgd(1e-3), jnp.zeros((2, 2)), 3, gather_to=bad)


def test_gather_to_the_only_process_returns_the_result():
    f = gk.landscapes.get("himmelblau")
    starts = jnp.asarray([[1.0, 1.0], [-2.0, 3.0]])
    a = gk.runs.run(f, gk.optim.sgd(1e-3), starts, 5, gather_to=0)
    b = gk.runs.run(f, gk.optim.sgd(1e-3), starts, 5)
    assert np.array_equal(a.final, b.final) and not np.array_equal(a.final, np.asarray(starts))


def test_one_process_checks_nothing_and_holds_no_global_array():
    multihost.check_same_on_every_process({"starts": np.arange(3)}, "run_batch")  # no collective, no error
    x = jnp.ones(3)
    assert multihost.global_arrays_in_closure(lambda w: w @ x) == []
    assert not multihost.is_multiprocess() and multihost.is_main_process()


def test_digests_tell_values_dtypes_and_weak_types_apart():
    d = multihost._digest
    base = d((np.arange(4.0), 0.1))
    assert np.array_equal(base, d((np.arange(4.0), 0.1)))
    assert not np.array_equal(base, d((np.arange(4.0) + 1e-12, 0.1)))
    assert not np.array_equal(base, d((np.arange(4.0).astype(np.float32), 0.1)))
    assert not np.array_equal(base, d((np.arange(4.0), 0.2)))
    weak, strong = jnp.asarray(1.0), jnp.array(1.0, dtype=jnp.result_type(float))
    assert weak.weak_type and not strong.weak_type
    assert not np.array_equal(d(weak), d(strong))


def test_hvp_operator_takes_the_batch_as_an_argument_and_compiles_once():
    """``hvp_operator(f, w, batch)`` = ``jax.hessian`` of ``f(., batch)`` times ``v``; a new batch of the
    same shapes reuses the compiled product (the batch is a leaf of the operator)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    w, v = jax.random.normal(keys[0], (3,)), jax.random.normal(keys[1], (3,))
    product = jax.jit(lambda op, v: op(v))
    for k in range(3):
        batch = (jax.random.normal(jax.random.fold_in(keys[2], k), (8, 3)), jax.random.normal(keys[3], (8,)))
        got = product(gk.hvp_operator(quadratic_loss, w, batch), v)
        np.testing.assert_allclose(got, jax.hessian(quadratic_loss)(w, batch) @ v, rtol=1e-10)
        if k == 0:
            after_first = compiles()
    assert compiles() == after_first
    closure = gk.hvp_operator(lambda u: quadratic_loss(u, batch), w)
    np.testing.assert_allclose(closure(v), got, rtol=1e-12)


def test_launch_local_refuses_bad_sizes():
    with pytest.raises(ValueError, match="processes must be a positive int"):
        launch.launch_local(["x.py"], processes=0)
    with pytest.raises(ValueError, match="local_devices must be a positive int"):
        launch.launch_local(["x.py"], local_devices=True)


def test_launch_local_keeps_the_users_xla_flags_and_sets_the_device_count(tmp_path):
    assert launch.with_device_count("--a=1 --xla_force_host_platform_device_count=8 --b", 2) == \
        "--a=1 --b --xla_force_host_platform_device_count=2"
    script = tmp_path / "flags.py"
    script.write_text("import os\nprint(os.environ['XLA_FLAGS'])\n")
    done = launch.launch_local([str(script)], processes=1, local_devices=3, timeout=60,
                               env={"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
    assert done[0].stdout.split() == ["--xla_cpu_enable_fast_math=false", "--xla_force_host_platform_device_count=3"]


def test_launch_local_reports_a_failing_process(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import os, sys\nif os.environ['GRADKIT_PROCESS_ID'] == '1':\n    sys.exit('process one fails')\n"
                      "import time\ntime.sleep(60)\n")
    with pytest.raises(RuntimeError, match=r"(?s)2-process job failed.*process 1 \(exit 1\):\nprocess one fails"):
        launch.launch_local([str(script)], processes=2, timeout=30)


def test_launch_local_kills_a_hanging_job(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(RuntimeError, match="2-process job timed out"):
        launch.launch_local([str(script)], processes=2, timeout=1.0)


def test_launch_cli_errors_are_one_line(capsys, tmp_path):
    assert launch.main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert launch.main(["-n", "0", "x.py"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "processes must be a positive int" in err
    script = tmp_path / "hello.py"
    script.write_text("import os\nprint('hello from', os.environ['GRADKIT_PROCESS_ID'])\n")
    assert launch.main(["-n", "2", "-d", "1", str(script)]) == 0
    assert capsys.readouterr().out == "hello from 0\n"
    assert sys.executable
