"""The dataset tutorial notebook runs headless on the shared reference data."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient


@pytest.mark.slow
def test_inspect_dataset_notebook_executes(repo_root, shared_data, monkeypatch):
    monkeypatch.setenv("RTPOSE_DATASET", str(shared_data / "original_formats" /
                                               "train_dataset_first3.h5"))
    monkeypatch.delenv("RTPOSE_DATA_SERVER", raising=False)
    notebook = nbformat.read(repo_root / "inspect_dataset.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(repo_root)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "train_dataset_first3.h5: 3 samples" in text
    assert text.count("ok: ") == 4  # the sanity checks of four transformed samples
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 6
