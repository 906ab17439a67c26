"""The ``gradkit`` command: entry points, lazy imports, one-line errors before any compute."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradkit import cli, landscapes, race
from gradkit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg"}




@pytest.mark.parametrize("argv, needle", [
    (["--starts", "0"], "--starts 0"),
    (["--starts", "1"], "--starts 1"),
    (["--steps", "0"], "--steps 0"),
    (["--steps", "-3"], "--steps -3"),
    (["--lrs", "0.1", "0"], "--lrs 0"),
    (["--lrs", "-0.001"], "--lrs -0.001"),
    (["--lrs", "nan"], "--lrs nan"),
    (["--lrs", "inf"], "--lrs inf"),
    (["--tol", "-1"], "--tol -1"),
    (["--tol", "nan"], "--tol nan"),
    (["--rtol", "-1"], "--rtol -1"),
    (["--tol", "0"], "--tol 0"),
    (["--record-every", "7"], "--record-every 7"),
    (["--landscapes", "himmelblau", "nope"], "unknown landscape 'nope'"),
    (["--optimizers", "adam", "bogus"], "unknown optimizer 'bogus'"),
    (["--optimizers", "adam", "adam"], "names one twice"),
])
def test_race_bad_input_is_one_line_before_compute(argv, needle, capsys, no_compute, tmp_path, one_line_error):
    assert main(["race", "--out", str(tmp_path), *argv]) == 2
    err = one_line_error("race")
    assert needle in err


def test_unknown_names_list_the_valid_ones(capsys, no_compute, tmp_path, one_line_error):
    assert main(["race", "--landscapes", "nope", "--out", str(tmp_path)]) == 2
    err = one_line_error("race")
    assert all(name in err for name in landscapes.names())
    assert main(["race", "--optimizers", "nope", "--out", str(tmp_path)]) == 2
    err = one_line_error("race")
    assert all(name in err for name in race.CONTENDERS)


def test_unwritable_out_is_reported_before_the_sweep(capsys, no_compute, tmp_path, one_line_error):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["race", "--out", str(blocker / "sub"), "--steps", "10"]) == 2
    assert "--out" in one_line_error("race")
    assert main(["race", "--out", str(blocker), "--steps", "10"]) == 2
    assert "--out" in one_line_error("race")
    created = tmp_path / "new" / "deeper"
    race.check_writable(created)  # a missing folder is created, and left empty
    assert created.is_dir() and not list(created.iterdir())


@pytest.mark.parametrize("epochs", ["0", "-3", "1"])
def test_exercise_bad_epochs(epochs, capsys, one_line_error):
    assert main(["exercise", "--epochs", epochs]) == 2
    assert f"--epochs {epochs}" in one_line_error("exercise")


def test_landscapes_unknown_plot(capsys, tmp_path, one_line_error):
    assert main(["landscapes", "--plot", "nope", "--out", str(tmp_path)]) == 2
    err = one_line_error("landscapes")
    assert "himmelblau" in err and not list(tmp_path.iterdir())



def test_python_dash_m_gradkit_and_bad_input_in_a_fresh_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gradkit", "landscapes"], capture_output=True, text=True, env=ENV,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "himmelblau" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "gradkit", "race", "--starts", "0"], capture_output=True, text=True,
                         env=ENV, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("gradkit race: --starts 0") and bad.stderr.strip().count("\n") == 0
    assert not (tmp_path / "gradkit-out").exists() or not list((tmp_path / "gradkit-out").iterdir())


def test_lazy_modules():
    code = ("import sys, gradkit as gk\n"
            "eager = [m for m in ('gradkit.plot', 'gradkit.race', 'gradkit.exercise', 'matplotlib') if m in sys.modules]\n"
            "assert not eager, eager\n"
            "assert gk.race.race and gk.plot.plot_landscape and gk.exercise.run_seed_exercise\n"
            "assert 'gradkit.race' in sys.modules and {'plot', 'race', 'exercise'} <= set(dir(gk))\n"
            "try:\n    gk.no_such_thing\nexcept AttributeError as e:\n    print('ok', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok module 'gradkit' has no attribute 'no_such_thing'" in out.stdout


def test_parser_lists_every_contender():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["race"].format_help()
    assert all(name in help_text for name in race.CONTENDERS)
