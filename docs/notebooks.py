"""Executed copies of the notebooks, for the docs' tutorials (used by docs/hooks.py and the tests).

    python docs/notebooks.py        # execute any notebook whose executed copy is stale

A copy is keyed by a hash of the notebook and of every file under ``src/gradkit``: it is reused
only while neither changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "executed-notebooks"
KEY = "gradkit_docs_key"


def source_key(notebook: Path) -> str:
    """Hash of the notebook and of gradkit's sources (what its outputs depend on)."""
    digest = hashlib.sha256(notebook.read_bytes())
    for path in sorted((ROOT / "src" / "gradkit").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".csv"):
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def store(notebook: Path, executed) -> Path:
    """Write ``executed`` (an nbformat notebook run from ``notebook``) as its executed copy."""
    import nbformat

    executed.metadata[KEY] = source_key(notebook)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=EXECUTED, suffix=".tmp")
    os.close(fd)
    nbformat.write(executed, tmp)
    target = EXECUTED / notebook.name
    os.replace(tmp, target)
    return target


def fresh_copy(notebook: Path) -> Path | None:
    """The executed copy of ``notebook`` if it matches the current sources, else None."""
    import nbformat

    copy = EXECUTED / notebook.name
    if not copy.exists():
        return None
    return copy if nbformat.read(copy, as_version=4).metadata.get(KEY) == source_key(notebook) else None


def execute(notebook: Path, timeout: int = 600) -> Path:
    """Execute ``notebook`` in a scratch folder and store its executed copy."""
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as scratch:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": scratch}}).execute()
    return store(notebook, nb)


def render_tutorials(target: Path) -> list[Path]:
    """Copy every notebook's executed copy (executing the stale ones) into ``target``.

    ``GRADKIT_DOCS_REUSE_NOTEBOOKS=1`` reuses an existing executed copy even when stale (for
    working on the docs' text; never in CI)."""
    target.mkdir(parents=True, exist_ok=True)
    reuse = os.environ.get("GRADKIT_DOCS_REUSE_NOTEBOOKS") == "1"
    written = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        copy = fresh_copy(notebook)
        if copy is None and reuse and (EXECUTED / notebook.name).exists():
            print(f"docs: reusing a stale executed copy of {notebook.name} (GRADKIT_DOCS_REUSE_NOTEBOOKS=1)")
            copy = EXECUTED / notebook.name
        if copy is None:
            print(f"docs: executing {notebook.name} (no fresh executed copy in {EXECUTED})", flush=True)
            copy = execute(notebook)
        dest = target / notebook.name
        if not dest.exists() or dest.read_bytes() != copy.read_bytes():
            shutil.copyfile(copy, dest)
        written.append(dest)
    return written


if __name__ == "__main__":
    for path in render_tutorials(ROOT / "docs" / "tutorials"):
        print("ready", path)
