"""The example notebooks in ``examples/`` run from top to bottom, and are committed without outputs.

Each notebook asserts its own claims (outputs against a reference, verdicts, exact arithmetic), so executing it is
the test: a failing cell fails here with the cell's traceback. They run as a user would run them: a fresh Python
kernel started in ``examples/``, one thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_example_notebooks():
    # one walking the analysis of a checkpoint, one building a construction and an LSRL program (issue 13)
    assert len(NOTEBOOKS) >= 2, f"expected at least two notebooks in {EXAMPLES}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path):
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits this environment: one thread (2-core CI), and the notebook's own (inline) matplotlib
    # backend rather than the Agg that tests/conftest.py sets for this process.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["OMP_NUM_THREADS"] = "1"
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}})
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}", pytrace=False)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), f"{path.name}: not every code cell ran"
