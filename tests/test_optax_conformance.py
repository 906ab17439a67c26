"""optax's own tests, run with optax's optimizers swapped for gradkit's.

The test files ship in the installed optax wheel; they are copied into ``tmp_path`` at run time
(never committed) and run by pytest in a subprocess with ``tests/optax_conformance/
gradkit_swap_plugin.py``, which replaces ``optax.{sgd, adagrad, rmsprop, adam, adamax, nadam,
adabelief, amsgrad, lion, adamw}`` and ``optax.contrib.sam`` by gradkit's, and records, per
test, which gradkit optimizers' ``init``/``update`` it actually ran.

Files: ``alias_test``, ``transform_test``, ``contrib/_sam_test``,
``tree_utils/_state_utils_test`` (state layout, ``inject_hyperparams(sgd)`` at a learning rate of 0),
``transforms/_masking_test`` (``inner_state[0].trace``),
``transforms/_conditionality_test``, ``contrib/_schedule_free_test`` (learning rate 0),
``float64_test`` and ``sharding_test`` (in its own process under 8 forced host devices; optax
0.2.8 compares version strings, ``jax.__version__ < '0.7.2'``, which is true for jax 0.10 and
would skip every sharding-in-types test, so the copy compares the numbers instead).

Excluded, and only these: tests parameterized by an optimizer gradkit does not have in
``alias_test`` (adadelta, adafactor, adamaxw, adan, fromage, lamb, lars, nadamw, noisy_sgd,
novograd, optimistic_*, polyak_sgd, radam, rprop, sign_sgd, signum, sm3, yogi), optax's L-BFGS
tests (gradkit has no ``lbfgs`` alias; optax's own lbfgs also fails two sharding-in-types tests
under jax 0.10).  Tests of optimizers gradkit lacks in the other files run optax's code and are
not counted.  ``update_test`` and ``schedules/_inject_test`` (in an earlier version of this job)
call none of the swapped aliases, so they prove nothing about gradkit and are not in the set; the
job fails if a file in the set runs no gradkit optimizer.  The long runs of optax's
``test_optimization`` are trimmed by no option.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import subprocess
import sys

import optax

from gradkit.runs.launch import with_device_count

OPTAX_DIR = pathlib.Path(optax.__file__).parent
PLUGIN_DIR = pathlib.Path(__file__).parent / "optax_conformance"
SRC_DIR = pathlib.Path(__file__).parents[1] / "src"
FILES = {
    "optax_alias_test.py": "_src/alias_test.py",
    "optax_transform_test.py": "_src/transform_test.py",
    "optax_sam_test.py": "contrib/_sam_test.py",
    "optax_state_utils_test.py": "tree_utils/_state_utils_test.py",
    "optax_masking_test.py": "transforms/_masking_test.py",
    "optax_conditionality_test.py": "transforms/_conditionality_test.py",
    "optax_schedule_free_test.py": "contrib/_schedule_free_test.py",
    "optax_float64_test.py": "_src/float64_test.py",
}
SHARDING = {"optax_sharding_test.py": "_src/sharding_test.py"}
NOT_IN_GRADKIT = {"adadelta", "adafactor", "adamaxw", "adan", "fromage", "lamb", "lars", "nadamw",
                  "noisy_sgd", "novograd", "optimistic_adam", "optimistic_adam_v2", "optimistic_gradient_descent",
                  "polyak_sgd", "radam", "rprop", "sign_sgd", "signum", "sm3", "yogi"}
SWAPPED = ("sgd", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adabelief", "amsgrad", "lion", "adamw", "sam")
OPT_NAME = re.compile(r"\b(?:opt_name|base_opt_name|adv_opt_name)='(\w+)'")


def run_optax_tests(tmp_path: pathlib.Path, files: dict[str, str], extra: list[str] = (), env_extra: dict = None
                    ) -> tuple[subprocess.CompletedProcess, dict]:
    for name, source in files.items():
        text = (OPTAX_DIR / source).read_text()
        text = text.replace("jax.__version__ < '0.7.2'", "tuple(map(int, jax.__version__.split('.')[:3])) < (0, 7, 2)")
        (tmp_path / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\npython_files = *_test.py\n")
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(SRC_DIR), str(tmp_path)]),
           "GRADKIT_CONFORMANCE_REPORT": str(report), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = " ".join(flag for flag in os.environ.get("XLA_FLAGS", "").split()  # the test flags, one device
                                if not flag.startswith("--xla_force_host_platform_device_count"))
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gradkit_swap_plugin",
           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *extra, *files]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    return proc, json.loads(report.read_text())


def coverage(report: dict) -> tuple[dict[str, int], dict[str, int]]:
    """Per gradkit optimizer, and per test file, the number of passed tests that ran it."""
    per_optimizer, per_file = collections.Counter(), collections.Counter()
    for nodeid, names in report["calls"].items():
        if report["outcomes"].get(nodeid) != "passed":
            continue
        per_optimizer.update(names)
        per_file[nodeid.split("::")[0]] += 1
    return dict(per_optimizer), dict(per_file)


def test_optax_test_files_pass_with_gradkit_optimizers(tmp_path):
    proc, report = run_optax_tests(tmp_path, FILES)
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
    # every file in the set ran gradkit's optimizers; every swapped optimizer ran in some test
    per_optimizer, per_file = coverage(report)
    print("optax tests that ran gradkit's optimizer:", json.dumps(per_optimizer, sort_keys=True))
    print("per file:", json.dumps(per_file, sort_keys=True))
    assert set(per_file) == set(FILES), sorted(set(FILES) - set(per_file))
    assert set(per_optimizer) == set(SWAPPED), sorted(set(SWAPPED) - set(per_optimizer))


def test_optax_sharding_tests_pass_with_gradkit_optimizers_on_8_devices(tmp_path):
    proc, report = run_optax_tests(tmp_path, SHARDING, env_extra={
        "XLA_FLAGS": with_device_count(os.environ.get("XLA_FLAGS", ""), 8)})
    failed = sorted(k for k, v in report["outcomes"].items() if v == "failed")
    assert not failed and proc.returncode == 0, f"{failed}\n{proc.stdout[-6000:]}"
    for nodeid, reason in report["deselected"].items():
        assert nodeid.endswith("_lbfgs"), (nodeid, reason)
    per_optimizer, per_file = coverage(report)
    print("optax sharding tests that ran gradkit's optimizer:", json.dumps(per_optimizer, sort_keys=True))
    # each swapped alias in optax's OPTIMIZERS table is run by its three tests, none skipped
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adabelief", "amsgrad", "lion", "adamw"):
        assert per_optimizer.get(name, 0) >= 3, (name, per_optimizer)
        ran = [k for k in report["outcomes"] if k.endswith(f"_{name}") and "sharding_type" in k]
        assert ran and all(report["outcomes"][k] == "passed" for k in ran), (name, ran)


def test_a_broken_gradkit_optimizer_fails_the_job(tmp_path):
    """Proof that the swap is real: adam with its update sign flipped must fail optax's test."""
    proc, report = run_optax_tests(
        tmp_path, {"optax_alias_test.py": FILES["optax_alias_test.py"]}, ["-k", "test_optimization and AliasTest"],
        {"GRADKIT_CONFORMANCE_BREAK": "adam"})
    adam_tests = [k for k, p in report["params"].items() if "opt_name='adam'" in p]
    assert adam_tests and all(report["outcomes"][k] == "failed" for k in adam_tests)
    assert proc.returncode != 0
