"""The committed notebooks as JupyterLab opens them (README "Open the notebooks").

One ``parameters`` cell and no papermill-injected cell below it (that cell would silently
reset a user's edits); a parameters cell that papermill parses line by line; a kernelspec
that the venv's Jupyter resolves to the venv's own Python (the one that imports dlmpaper).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import nbformat
import pytest

from dlmpaper import paths
from dlmpaper.reproduce import INJECTED_CELL_ID, PARAMETERS_TAG, discover_notebooks

NOTEBOOKS = discover_notebooks(paths.NOTEBOOKS)


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def test_the_six_notebooks_are_found():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05"]


def test_one_parameters_cell_and_no_injected_cell(notebook):
    tagged = [c for c in notebook.cells if PARAMETERS_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    injected = [c for c in notebook.cells
                if INJECTED_CELL_ID in c.metadata.get("tags", []) or c.get("id") == INJECTED_CELL_ID
                or c.source.startswith("# Parameters")]
    assert not injected, "commit notebooks as dlmpaper.reproduce writes them (the injected cell folded in)"


def test_papermill_parses_every_parameter_line(notebook, caplog):
    from papermill.translators import PythonTranslator

    cell = next(c for c in notebook.cells if PARAMETERS_TAG in c.metadata.get("tags", []))
    with caplog.at_level(logging.WARNING, logger="papermill"):
        params = PythonTranslator.inspect(cell)
    assert not [r.getMessage() for r in caplog.records], "papermill could not parse a parameters line"
    assigned = [line.split("=", 1)[0].strip() for line in cell.source.splitlines()
                if "=" in line.split("#", 1)[0] and not line.startswith((" ", "#"))]
    assert [p.name for p in params] == assigned
    assert {"profile", "device", "seed"} <= set(assigned)


def test_committed_outputs_have_no_stderr_or_widgets(notebook):
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", cell.source[:80]
            assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), cell.source[:80]


def test_kernelspec_is_python3_and_resolves_to_this_interpreter(notebook):
    from jupyter_client.manager import KernelManager

    assert notebook.metadata.kernelspec.name == "python3"
    manager = KernelManager(kernel_name="python3")
    command = manager.format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve(), (
        f"Jupyter's python3 kernel runs {command[0]}, not {sys.executable}: start .venv/bin/jupyter lab")
