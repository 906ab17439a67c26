"""Test configuration: float64 on, so comparisons to 1e-10 and below are meaningful.

float32 behaviour is tested with explicitly float32 inputs.  XLA compiles with fast-compile flags
(tests/_xla_env.py) set before jax starts its backend.
"""

import _xla_env

_xla_env.apply()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def no_compute(monkeypatch):
    """Any sweep, run or seed exercise started by the command fails the test: errors come before compute."""
    import gradkit.exercise
    from gradkit import runs

    def forbidden(*args, **kwargs):
        raise AssertionError("computation started before the bad input was reported")

    monkeypatch.setattr(runs, "sweep", forbidden)
    monkeypatch.setattr(runs, "run_batch", forbidden)
    monkeypatch.setattr(gradkit.exercise, "run_seed_exercise", forbidden)


@pytest.fixture
def one_line_error(capsys):
    """Read a CLI error: ``one_line_error("race")`` asserts stderr is one line ``gradkit race: ...
    (expected ...)`` with no traceback anywhere, and returns it."""

    def read(command: str) -> str:
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert "Traceback" not in captured.out + captured.err
        assert err and err.count("\n") == 0, err
        assert err.startswith(f"gradkit {command}: ") and "(expected" in err and err.endswith(")"), err
        return err

    return read
