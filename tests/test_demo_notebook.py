"""The tutorial notebook demo.ipynb runs headless with the real MobileNet-thin weights."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient


@pytest.mark.slow
def test_demo_notebook_executes(repo_root, mobilenet_weights, monkeypatch):
    monkeypatch.setenv("RTPOSE_WEIGHTS", str(mobilenet_weights))
    notebook = nbformat.read(repo_root / "demo.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(repo_root)}},
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "mobilenet_thin:" in text
    assert "heatmaps (674, 712, 19) PAFs (674, 712, 38)" in text
    assert "5 people;" in text and "same people;" in text  # the original finds 5 at 1 scale
    assert "right_wrist" in text.split("person 0")[1]  # the keypoint table
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 4


def test_committed_notebook_is_small_and_shows_its_pictures(repo_root):
    notebook = nbformat.read(repo_root / "demo.ipynb", as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
    assert not any(o.get("name") == "stderr" for o in outputs)  # no log noise on GitHub
    assert (repo_root / "demo.ipynb").stat().st_size < 1_000_000
