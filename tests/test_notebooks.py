"""The tutorial notebooks run headless: demo.ipynb with the real MobileNet-thin weights,
inspect_dataset.ipynb on the shared reference data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


def execute(repo_root: Path, name: str) -> tuple[str, list[dict]]:
    """Run a notebook of the repository from its root: (stream text, outputs with a PNG)."""
    notebook = nbformat.read(repo_root / name, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(repo_root)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return text, [o for o in outputs if "image/png" in o.get("data", {})]


@pytest.mark.slow
def test_demo_notebook_executes(repo_root, mobilenet_weights, monkeypatch):
    monkeypatch.setenv("RTPOSE_WEIGHTS", str(mobilenet_weights))
    text, figures = execute(repo_root, "demo.ipynb")
    assert "mobilenet_thin:" in text
    assert "heatmaps (674, 712, 19) PAFs (674, 712, 38)" in text
    assert "5 people;" in text and "same people;" in text  # the original finds 5 at 1 scale
    assert "right_wrist" in text.split("person 0")[1]  # the keypoint table
    assert len(figures) == 4


def test_committed_notebook_is_small_and_shows_its_pictures(repo_root):
    notebook = nbformat.read(repo_root / "demo.ipynb", as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
    assert not any(o.get("name") == "stderr" for o in outputs)  # no log noise on GitHub
    assert (repo_root / "demo.ipynb").stat().st_size < 1_000_000


@pytest.mark.slow
def test_inspect_dataset_notebook_executes(repo_root, shared_data, monkeypatch):
    monkeypatch.setenv("RTPOSE_DATASET", str(shared_data / "original_formats" /
                                               "train_dataset_first3.h5"))
    monkeypatch.delenv("RTPOSE_DATA_SERVER", raising=False)
    text, figures = execute(repo_root, "inspect_dataset.ipynb")
    assert "train_dataset_first3.h5: 3 samples" in text
    assert text.count("ok: ") == 4  # the sanity checks of four transformed samples
    assert len(figures) >= 6
