"""The notebooks run top to bottom on a fresh install and are stored without outputs.

Each notebook is executed with nbclient in a kernel of *this* interpreter, the one the project
is installed in.  Which ``python3`` kernel spec Jupyter finds depends on the machine: one in the
user's data folder (``~/.local/share/jupyter``) wins over the virtual environment's and may start
another Python without the project.  So the test writes its own kernel spec, pointing at
``sys.executable``, into a temporary folder that ``JUPYTER_PATH`` puts first.  Plots use
matplotlib's Agg backend: no display is needed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "rc-clevertap-tests"

#: Real seconds a cell may run (the population notebook plays two stacks) and a kernel may
#: take to start on a busy machine.
CELL_TIMEOUT_S = 300
STARTUP_TIMEOUT_S = 120


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for the running interpreter, found first through ``JUPYTER_PATH``."""
    data_dir = tmp_path / "jupyter"
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rc-clevertap tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(data_dir))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # Opt in to platformdirs now; otherwise jupyter_core warns, and warnings are errors here.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL_NAME


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_documented_notebooks_exist() -> None:
    """The quickstart, the population exploration and the backfill are in notebooks/."""
    assert {"quickstart", "population", "backfill"} <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    """A stored notebook is valid and has no outputs and no execution counts."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        cell.get("id")
        for cell in _code_cells(notebook)
        if cell.outputs or cell.execution_count is not None
    ]
    assert dirty == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path: Path, kernel_name: str) -> None:
    """Every cell of the notebook executes without an error (cells check their own results)."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=STARTUP_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    # asyncio.run gives the kernel's client an event loop of its own, closed afterwards
    # (nbclient's execute() would leave one set on this thread for the tests that follow).
    asyncio.run(client.async_execute())  # raises CellExecutionError, naming the failing cell
    cells = _code_cells(notebook)
    assert [o for cell in cells for o in cell.outputs if o.output_type == "error"] == []
    assert all(cell.execution_count is not None for cell in cells)
