"""optax's own tests, run with optax's optimizers swapped for gradkit's.

The test files ship in the installed optax wheel; they are copied into ``tmp_path`` at run time
(never committed) and run by pytest in a subprocess with ``tests/optax_conformance/
gradkit_swap_plugin.py``, which replaces ``optax.{sgd, adagrad, rmsprop, adam, adamax, nadam,
adabelief, amsgrad, lion}`` and ``optax.contrib.sam`` by gradkit's (recording each call).

Excluded, and only these: tests parameterized by an optimizer gradkit does not have (adadelta,
adafactor, adamaxw, adamw, adan, fromage, lamb, lars, nadamw, noisy_sgd, novograd,
optimistic_*, polyak_sgd, radam, rprop, sign_sgd, signum, sm3, yogi) and optax's L-BFGS tests
(gradkit has no ``lbfgs`` alias).  The long runs of optax's ``test_optimization`` are trimmed by
no option: they run as optax wrote them.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import optax

OPTAX_DIR = pathlib.Path(optax.__file__).parent
PLUGIN_DIR = pathlib.Path(__file__).parent / "optax_conformance"
SRC_DIR = pathlib.Path(__file__).parents[1] / "src"
FILES = {
    "optax_alias_test.py": "_src/alias_test.py",
    "optax_transform_test.py": "_src/transform_test.py",
    "optax_update_test.py": "_src/update_test.py",
    "optax_inject_test.py": "schedules/_inject_test.py",
    "optax_sam_test.py": "contrib/_sam_test.py",
}
NOT_IN_GRADKIT = {"adadelta", "adafactor", "adamaxw", "adamw", "adan", "fromage", "lamb", "lars", "nadamw",
                  "noisy_sgd", "novograd", "optimistic_adam", "optimistic_adam_v2", "optimistic_gradient_descent",
                  "polyak_sgd", "radam", "rprop", "sign_sgd", "signum", "sm3", "yogi"}
OPT_NAME = re.compile(r"\b(?:opt_name|base_opt_name|adv_opt_name)='(\w+)'")


def run_optax_tests(tmp_path: pathlib.Path, files: list[str], extra: list[str] = (), env_extra: dict = None
                    ) -> tuple[subprocess.CompletedProcess, dict]:
    for name in files:
        shutil.copy(OPTAX_DIR / FILES[name], tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\npython_files = *_test.py\n")
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(SRC_DIR), str(tmp_path)]),
           "GRADKIT_CONFORMANCE_REPORT": str(report), "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gradkit_swap_plugin",
           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *extra, *files]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    return proc, json.loads(report.read_text())


def test_optax_test_files_pass_with_gradkit_optimizers(tmp_path):
    proc, report = run_optax_tests(tmp_path, list(FILES))
    failed = sorted(k for k, v in report["outcomes"].items() if v == "failed")
    assert not failed, f"{failed}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stdout[-6000:]
    # exclusions: only optimizers gradkit lacks, and optax's L-BFGS tests
    for nodeid, reason in report["deselected"].items():
        assert "LBFGSTest" in nodeid or "gradkit does not have" in reason, (nodeid, reason)
    excluded_names = {n for k in report["deselected"] for n in OPT_NAME.findall(k)}
    assert excluded_names <= NOT_IN_GRADKIT
    # every collected test that names a gradkit optimizer ran, passed and really called gradkit's
    exercised = 0
    for nodeid, params in report["params"].items():
        names = set(OPT_NAME.findall(params))
        if not names:
            continue
        assert report["outcomes"].get(nodeid) in ("passed", "skipped"), nodeid
        if report["outcomes"][nodeid] == "passed":
            called = set(report["calls"].get(nodeid, []))
            expected = {"sgd" if n == "sgd_mom" else n for n in names}
            if "optax_sam_test" in nodeid:
                expected.add("sam")
            assert expected <= called, (nodeid, expected, called)
            exercised += 1
    assert exercised >= 100, exercised
    # the signatures optax's tests rely on: accumulator_dtype, mu_dtype, sgd(lr, momentum) in transform_test
    assert any("test_explicit_dtype" in k and v == "passed" for k, v in report["outcomes"].items())
    assert any("sgd" in v for k, v in report["calls"].items() if "test_apply_every" in k)


def test_a_broken_gradkit_optimizer_fails_the_job(tmp_path):
    """Proof that the swap is real: adam with its update sign flipped must fail optax's test."""
    proc, report = run_optax_tests(
        tmp_path, ["optax_alias_test.py"], ["-k", "test_optimization and AliasTest"],
        {"GRADKIT_CONFORMANCE_BREAK": "adam"})
    adam_tests = [k for k, p in report["params"].items() if "opt_name='adam'" in p]
    assert adam_tests and all(report["outcomes"][k] == "failed" for k in adam_tests)
    assert proc.returncode != 0
