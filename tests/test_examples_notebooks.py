"""Every example and notebook runs end to end; benchmarks get one tiny smoke case.

Examples whose notebook twin executes the same code (second_order.py / notebook 04,
edge_of_stability.py / notebook 06, forward_gradient.py / notebook 03) and framework_models.py
(tests/test_framework_models.py runs its Flax and Equinox models) are checked here for their
``--quick`` flag only, to keep the suite inside its time budget."""

import os
import subprocess
import sys
from pathlib import Path

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
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_readme_python_blocks_run(tmp_path):
    """The README's Python blocks, in order, run as one script as written (float32, a fresh
    interpreter): a later block may use what an earlier one defined, as a reader would.  A block
    fenced ``py`` is a fragment of a notebook (it says which) and is run there."""
    blocks = [part.split("```", 1)[0] for part in (ROOT / "README.md").read_text().split("```python\n")[1:]]
    assert len(blocks) >= 2
    script = tmp_path / "readme_sample.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
