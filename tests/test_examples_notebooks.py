"""Every example and notebook runs end to end; benchmarks get one tiny smoke case.

Examples whose notebook twin executes the same code (second_order.py / notebook 04,
edge_of_stability.py / notebook 06, forward_gradient.py / notebook 03) and framework_models.py
(tests/test_framework_models.py runs its Flax and Equinox models) are checked here for their
``--quick`` flag only, to keep the suite inside its time budget."""

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import _xla_env
import pytest

ROOT = Path(__file__).resolve().parents[1]
ALL_EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
COVERED_ELSEWHERE = {"second_order.py", "edge_of_stability.py", "forward_gradient.py", "framework_models.py"}
EXAMPLES = [p for p in ALL_EXAMPLES if p.name not in COVERED_ELSEWHERE]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BENCHMARKS = [ROOT / "benchmarks" / "optimizers.py", ROOT / "benchmarks" / "runs.py"]
ENV = {**os.environ, "GRADKIT_QUICK": "1", "MPLBACKEND": "Agg"}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    result = subprocess.run([sys.executable, str(script), "--quick"] if "--quick" in script.read_text() else
                            [sys.executable, str(script)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "an example should print what it found"


def test_every_example_takes_quick():
    missing = [p.name for p in ALL_EXAMPLES if "--quick" not in p.read_text()]
    assert not missing and len(ALL_EXAMPLES) >= 7


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_smoke(script, tmp_path):
    result = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "|---" in result.stdout  # printed its table


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(notebook, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    _docs_notebooks().store(notebook, nb)  # the docs render this executed copy (docs/hooks.py)


@functools.cache
def _docs_notebooks():
    """docs/notebooks.py, which keeps executed notebooks for the docs' tutorials."""
    spec = importlib.util.spec_from_file_location("gradkit_docs_notebooks", ROOT / "docs" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def readme_blocks(text: str) -> list[tuple[str, str | None]]:
    """The README's ``python`` blocks, each with the ``text`` block that follows it (what it
    prints) or None when another ``python`` block (or the end) comes first."""
    fences = re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S)
    blocks: list[tuple[str, str | None]] = []
    for lang, body in fences:
        if lang == "python":
            blocks.append((body, None))
        elif lang == "text" and blocks and blocks[-1][1] is None:
            blocks[-1] = (blocks[-1][0], body)
    return blocks


def _last_digit(token: str) -> float:
    """One unit in the last printed digit of a number as written (``22.70`` -> 0.01, ``5.4e-03`` -> 1e-4)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def output_mismatch(expected: str, actual: str) -> str | None:
    """Why ``actual`` does not print what ``expected`` shows, or None.  Text must match (runs of
    spaces count as one), integers exactly, and a number written with a decimal point or an
    exponent to one unit in its last printed digit."""
    exp_lines, act_lines = expected.strip("\n").splitlines(), actual.strip("\n").splitlines()
    if len(exp_lines) != len(act_lines):
        return f"{len(act_lines)} lines printed, {len(exp_lines)} expected"
    for e, a in zip(exp_lines, act_lines):
        e_text, a_text = [" ".join(NUMBER.sub("#", line).split()) for line in (e, a)]
        e_nums, a_nums = NUMBER.findall(e), NUMBER.findall(a)
        if e_text != a_text or len(e_nums) != len(a_nums):
            return f"printed {a!r}, expected {e!r}"
        for en, an in zip(e_nums, a_nums):
            exact = not any(c in en.lower() for c in ".e")
            if (en != an) if exact else abs(float(an) - float(en)) > 1.0001 * _last_digit(en):
                return f"printed {an} where the README shows {en}, in {a!r}"
    return None


def test_output_mismatch_is_strict_to_the_printed_digits():
    assert output_mismatch("sharpness 1801.996 (x)", "sharpness 1801.996 (x)") is None
    assert output_mismatch("sharpness 1801.996 (x)", "sharpness 1801.997 (x)") is None  # last digit
    assert output_mismatch("sharpness 1801.996 (x)", "sharpness 1801.125 (x)")
    assert output_mismatch("2346 steps", "2347 steps")
    assert output_mismatch("loss 5.45e-03", "loss 5.47e-03")
    assert output_mismatch("a  b", "a b") is None and output_mismatch("a", "b")


README_MARK = "<<<gradkit-readme-block>>>"


def run_readme_blocks(blocks: list[str], cwd: Path) -> list[str]:
    """Run the blocks in order as one script in a fresh interpreter; return each block's stdout."""
    script = cwd / "readme_sample.py"
    script.write_text("\n".join(f"{code}\nprint({README_MARK!r}, flush=True)\n" for code in blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=cwd, env=_xla_env.user_env(MPLBACKEND="Agg"),
                            capture_output=True, text=True, timeout=600)  # the user's XLA flags: digits are compared
    assert result.returncode == 0, result.stderr[-3000:]
    return [part.lstrip("\n") for part in result.stdout.split(README_MARK + "\n")[: len(blocks)]]


def test_readme_python_blocks_run(tmp_path):
    """The README's Python blocks, in order, run as one script as written (a fresh interpreter):
    a later block may use what an earlier one defined, as a reader would.  Each block is followed
    by a ``text`` block holding what it prints, and the printed output must read the same
    (:func:`output_mismatch`)."""
    blocks = readme_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    missing = [code.splitlines()[0] for code, expected in blocks if expected is None]
    assert not missing, f"README python blocks without a text block of their output: {missing}"
    outputs = run_readme_blocks([code for code, _ in blocks], tmp_path)
    for (code, expected), actual in zip(blocks, outputs):
        problem = output_mismatch(expected, actual)
        assert problem is None, f"README block starting {code.splitlines()[0]!r}: {problem}"
    # the sharpness Lanczos finds equals the dense Hessian's top eigvalsh to every printed digit
    sharpness = [line.split()[1] for line in "".join(outputs).splitlines() if line.startswith("sharpness ")]
    assert len(sharpness) == 2 and sharpness[0] == sharpness[1], sharpness


def test_generated_docs_are_up_to_date():
    """README.md, docs/index.md, docs/benchmarks.md and docs/multihost.md are what docs/build_readme.py writes from
    their templates and benchmarks/results/*.json (edit the template, then run the script)."""
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "build_readme.py"), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
