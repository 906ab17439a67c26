"""The ``gradkit`` command as a careless user meets it: every mistake is one line on stderr, a
non-zero exit status and no traceback; duplicates are refused; the leaderboard shows its
medians as they are and says how ties are broken; ``--distributed`` joins the job first."""

from __future__ import annotations

import argparse
import re
from types import SimpleNamespace

import numpy as np
import pytest

from gradkit import cli, race, runs
from gradkit.cli import main
from gradkit.race import report
from gradkit.runs import multihost




UNWRITABLE = "/proc/gradkit-cannot-write-here"


@pytest.mark.parametrize("argv, command", [
    (["landscapes", "--plot", "rosenbrock", "--out", UNWRITABLE], "landscapes"),
    (["exercise", "--plot", "--out", UNWRITABLE], "exercise"),
    (["race", "--out", UNWRITABLE, "--steps", "10"], "race"),
    (["race", "--suite", "bbob", "--functions", "1", "--out", UNWRITABLE], "race"),
])
def test_unwritable_out_is_one_line_for_every_command(argv, command, capsys, no_compute, one_line_error):
    assert main(argv) == 2
    assert "--out" in one_line_error(command)


def test_out_below_a_file_is_one_line(no_compute, tmp_path, one_line_error):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for argv, command in ((["landscapes", "--plot", "himmelblau"], "landscapes"), (["exercise", "--plot"], "exercise")):
        assert main([*argv, "--out", str(blocker / "sub")]) == 2
        assert "not writable" in one_line_error(command)


@pytest.mark.parametrize("argv, command, needle", [
    (["race", "--landscapes", "himmelblau", "himmelblau"], "race", "names himmelblau twice"),
    (["race", "--landscapes", "himmelblau", "rosenbrock", "himmelblau"], "race", "names himmelblau twice"),
    (["race", "--lrs", "0.1", "0.1"], "race", "--lrs"),
    (["race", "--optimizers", "adam", "adam"], "race", "names one twice"),
    (["race", "--suite", "bbob", "--functions", "1-3,2"], "race", "--functions"),
    (["race", "--suite", "bbob", "--optimizers", "sgd", "sgd"], "race", "--optimizers"),
    (["race", "--suite", "bbob", "--functions", "x"], "race", "--functions"),
    (["race", "--suite", "bbob", "--steps", "10"], "race", "--steps"),
    (["race", "--unit", "grads"], "race", "--unit"),
    (["race", "--no-plots", "--out", "somewhere"], "race", "contradict"),
    (["race", "--suite", "bbob", "--no-plots", "--out", "somewhere"], "race", "contradict"),
    (["landscapes", "--out", "somewhere"], "landscapes", "only with --plot"),
    (["exercise", "--out", "somewhere"], "exercise", "only with --plot"),
    (["exercise", "--epochs", "1"], "exercise", "--epochs 1"),
])
def test_bad_input_is_one_line(argv, command, needle, capsys, no_compute, tmp_path, monkeypatch, one_line_error):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert needle in one_line_error(command)
    assert not (tmp_path / cli.DEFAULT_OUT).exists() or not list((tmp_path / cli.DEFAULT_OUT).iterdir())


def test_cutest_refuses_out_it_would_ignore(capsys, no_compute, tmp_path, monkeypatch, one_line_error):
    import importlib.util

    if importlib.util.find_spec("sif2jax") is None:  # not importorskip: importing all of sif2jax takes minutes
        pytest.skip("sif2jax is not installed")
    monkeypatch.chdir(tmp_path)
    assert main(["race", "--suite", "cutest", "--out", "somewhere"]) == 2
    assert "writes no files" in one_line_error("race")
    assert main(["race", "--suite", "cutest", "--problems", "NOPE", "--out", "somewhere"]) == 2
    err = capsys.readouterr().err.strip()  # the name is the first thing wrong (cutest's own message)
    assert err.startswith("gradkit race: unknown CUTEst problem 'NOPE'") and err.count("\n") == 0, err
    assert not (tmp_path / "somewhere").exists()


@pytest.mark.parametrize("argv, prog", [
    (["race", "--steps", "many"], "gradkit race"),
    (["exercise", "--epochs", "three"], "gradkit exercise"),
    (["race", "--suite", "nope"], "gradkit race"),
    (["nope"], "gradkit"),
    ([], "gradkit"),
])
def test_argparse_errors_are_one_line(argv, prog, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith(prog + ": "), err


def test_a_write_failure_after_the_checks_is_one_line(monkeypatch, tmp_path, one_line_error):
    from gradkit import plot

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "himmelblau.png"))

    monkeypatch.setattr(plot, "save", disk_full)
    assert main(["landscapes", "--plot", "himmelblau", "--out", str(tmp_path)]) == 2
    assert "No space left on device" in one_line_error("landscapes")


def test_default_out_is_gradkit_out_in_the_working_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["landscapes", "--plot", "himmelblau"]) == 0
    assert (tmp_path / "gradkit-out" / "himmelblau.png").is_file()
    parser = cli.build_parser()
    for command in ("landscapes", "exercise", "race"):
        args = parser.parse_args([command] + (["--plot"] if command == "exercise" else []))
        assert (args.out or cli.DEFAULT_OUT) == "gradkit-out"


# --- multi-process: flag parsing only (no processes are launched) ------------------------------

def test_distributed_flag_and_launcher_environment():
    parser = cli.build_parser()
    assert not cli.wants_distributed(parser.parse_args(["race"]), environ={})
    assert cli.wants_distributed(parser.parse_args(["race", "--distributed"]), environ={})
    assert cli.wants_distributed(parser.parse_args(["race"]), environ={multihost.ENV_ID: "0"})
    assert cli.wants_distributed(parser.parse_args(["landscapes"]), environ={multihost.ENV_ID: "1"})
    assert not cli.wants_distributed(argparse.Namespace(), environ={})
    assert cli.ENV_PROCESS_ID == multihost.ENV_ID
    with pytest.raises(SystemExit):  # --distributed belongs to race only
        parser.parse_args(["exercise", "--distributed"])


@pytest.fixture
def spy_initialize(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(multihost, "initialize", lambda: calls.append("initialize"))

    def validate(config):
        calls.append("validate")
        raise ValueError("--steps stop here (expected the test to stop)")

    monkeypatch.setattr(race, "validate", validate)
    return calls


def test_distributed_initializes_before_anything_else(spy_initialize, capsys, monkeypatch):
    monkeypatch.delenv(multihost.ENV_ID, raising=False)
    assert main(["race", "--distributed"]) == 2
    assert spy_initialize == ["initialize", "validate"]
    capsys.readouterr()
    spy_initialize.clear()
    assert main(["race"]) == 2
    assert spy_initialize == ["validate"]
    capsys.readouterr()
    spy_initialize.clear()
    monkeypatch.setenv(multihost.ENV_ID, "0")
    assert main(["race"]) == 2
    assert spy_initialize == ["initialize", "validate"]


def test_a_failed_join_is_one_line(monkeypatch, capsys, one_line_error):
    def no_cluster():
        raise ValueError("coordinator_address should be defined.\nmore text")

    monkeypatch.setattr(multihost, "initialize", no_cluster)
    assert main(["race", "--distributed"]) == 2
    err = one_line_error("race")
    assert "jax.distributed" in err and "coordinator_address" in err


# --- the leaderboard ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [(22.5, "22.5"), (22.0, "22"), (3.25, "3.25"), (1000.0, "1000"),
                                         (float("inf"), "inf")])
def test_format_median_keeps_the_half(value, text):
    assert report.format_median(value) == text


class _FakeSweep:
    """What format_leaderboard reads of a SweepResult."""

    def __init__(self, names):
        self.grids = {n: [{"learning_rate": 0.1}] for n in names}
        self.n_starts = 4

    def halves(self):
        return np.array([0, 1]), np.array([2, 3])

    def per_config(self, name, field):
        return np.ones((1, 4), bool)


def _leaderboard(rows):
    config = race.RaceConfig(landscapes=("himmelblau",), optimizers=tuple(r["optimizer"] for r in rows),
                             learning_rates=(0.1,))
    res = SimpleNamespace(landscape=SimpleNamespace(name="himmelblau"), sweep=_FakeSweep([r["optimizer"] for r in rows]),
                          f_star=0.0, tol=1e-4, leaderboard=rows)
    return report.format_leaderboard(res, config)


def _row(name, converged, area, settled, cost):
    return {"optimizer": name, "learning_rate": 0.1, "converged": converged, "profile_area": area,
            "median_settled": settled, "median_cost": cost, "diverged": 0.0, "at_grid_edge": False}


def test_leaderboard_shows_halves_and_the_tie_break_rule():
    text = _leaderboard([_row("sgd", 1.0, 0.9, 22.5, 23.5), _row("adam", 1.0, 0.7, 18.0, 19.0)])
    assert re.search(r"sgd .* 22\.5 +23\.5 ", text) and re.search(r"adam .* 18 +19 ", text)
    assert "profile area" in text and report.TIE_BREAK_RULE in text
    untied = _leaderboard([_row("sgd", 1.0, 0.9, 22.5, 23.5), _row("adam", 0.5, 0.7, 18.0, 19.0)])
    assert report.TIE_BREAK_RULE not in untied


def test_the_printed_rule_is_the_sort_of_sweep_result_best():
    """best()'s key is (-converged, -profile_area, median_settled, median_cost): the rule names
    exactly these, in this order."""
    import inspect

    source = inspect.getsource(runs.SweepResult.best)
    assert '-r["converged"], -r["profile_area"], r["median_settled"], r["median_cost"]' in source
    rule = report.TIE_BREAK_RULE
    positions = [rule.index(word) for word in ("most converged", "larger profile area", "median time-to-eps",
                                               "median cost")]
    assert positions == sorted(positions)


def test_tiny_race_leaderboard_end_to_end(capsys):
    assert main(["race", "--landscapes", "himmelblau", "--optimizers", "sgd", "momentum", "--lrs", "0.01", "0.1",
                 "--starts", "2", "--steps", "20", "--no-plots", "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("   sgd ") or line.startswith("   momentum ")]
    assert len(rows) == 2
    converged = [float(r[2].rstrip("%")) for r in rows]
    areas = [float(r[3]) for r in rows]
    keys = list(zip([-c for c in converged], [-a for a in areas]))
    assert keys == sorted(keys)
    assert (report.TIE_BREAK_RULE in out) == (converged[0] == converged[1])
