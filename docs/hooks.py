"""mkdocs hooks: the tutorials are the notebooks in ``notebooks/``, executed.

Before each build, every ``notebooks/*.ipynb`` is copied, with its outputs, to
``docs/tutorials/`` (gitignored), where mkdocs-jupyter renders it.  The executed copy comes from
``build/executed-notebooks/`` when one there matches the notebook and gradkit's sources (the
test ``tests/test_examples_notebooks.py::test_notebook_executes`` stores one after executing
it, so CI executes each notebook once); otherwise the notebook is executed here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _helper():
    spec = importlib.util.spec_from_file_location("gradkit_docs_notebooks", ROOT / "docs" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def on_pre_build(config, **kwargs) -> None:
    _helper().render_tutorials(ROOT / "docs" / "tutorials")
