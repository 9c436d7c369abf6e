"""Faults of the training data (issue 15, cases 3a, 8, 15, 17): the generators, the dataset
server and its client. Interruptions strike through a hook at the exact moment of a write, never
after a sleep."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import exit_message, free_port, one_line_error, python, temporaries

CROP = 64



@pytest.fixture(scope="module")
def tiny_split(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two coco_mini training images with people, their annotations and an images folder."""
    root = tmp_path_factory.mktemp("split")
    coco_mini = shared_data / "coco_mini"
    data = json.loads((coco_mini / "annotations" / "person_keypoints_train2017.json").read_text())
    keep = {535506, 463557}
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    (root / "images").mkdir()
    for image in data["images"]:
        shutil.copy(coco_mini / "train2017" / image["file_name"], root / "images")
    (root / "annotations.json").write_text(json.dumps(data))
    return {"annotations": root / "annotations.json", "images": root / "images"}


STOP_AT_SECOND = """
import os, signal, sys
import importlib

module, name, tool = sys.argv[1:4]
target = importlib.import_module(module)
original = getattr(target, name)
calls = []


def stop_at_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)


setattr(target, name, stop_at_second)
importlib.import_module(tool).main(sys.argv[4:])
"""


def test_generate_masks_sigterm_keeps_complete_masks_only(
    repo_root: Path, tiny_split: dict[str, Path], tmp_path: Path,
):
    """SIGTERM while the second image's masks are computed: one line, exit 130, the first
    image's two masks complete, no temporary; the rerun finishes the job."""
    from rtpose.tools.generate_masks import main as generate_masks

    masks = tmp_path / "masks"
    argv = ["--annotations", str(tiny_split["annotations"]), "--images",
            str(tiny_split["images"]), "--masks-dir", str(masks)]
    done = python(repo_root, "-c", STOP_AT_SECOND, "rtpose.coco.masks", "image_masks",
                  "rtpose.tools.generate_masks", *argv)
    assert done.returncode == 130, done.stderr[-3000:]
    one_line_error(done.stderr, "interrupted: ")
    assert sorted(p.name for p in masks.iterdir()) == [
        "mask_all_000000535506.png", "mask_miss_000000535506.png"]
    generate_masks(argv)
    assert len(list(masks.iterdir())) == 4 and temporaries(masks) == []


@pytest.fixture(scope="module")
def tiny_masks(tiny_split: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtpose.tools.generate_masks import main as generate_masks

    masks = tmp_path_factory.mktemp("masks")
    generate_masks(["--annotations", str(tiny_split["annotations"]), "--images",
                    str(tiny_split["images"]), "--masks-dir", str(masks)])
    return masks


def test_generate_hdf5_sigterm_leaves_no_partial_file(
    repo_root: Path, tiny_split: dict[str, Path], tiny_masks: Path, tmp_path: Path,
):
    """Case 3a: SIGTERM while the second sample is read: one line, exit 130, no file (neither a
    complete-looking one nor a temporary)."""
    out = tmp_path / "out"
    done = python(repo_root, "-c", STOP_AT_SECOND, "rtpose.coco.hdf5_dataset", "load_sample",
                  "rtpose.tools.generate_hdf5", "--split", str(tiny_split["annotations"]),
                  str(tiny_split["images"]), str(tiny_masks), "--val-size", "0",
                  "--output-dir", str(out))
    assert done.returncode == 130, done.stderr[-3000:]
    assert one_line_error(done.stderr, "interrupted: ") == (
        "interrupted: the file being written was discarded")
    assert [p.name for p in out.iterdir()] == ["val_dataset.h5"]  # complete, and empty


def test_generate_hdf5_error_leaves_no_partial_file(
    tiny_split: dict[str, Path], tiny_masks: Path, tmp_path: Path,
):
    """Case 3a: an image that turns out unreadable halfway: one line, no file."""
    from rtpose.tools.generate_hdf5 import main as generate_hdf5

    images = tmp_path / "images"
    shutil.copytree(tiny_split["images"], images)
    (images / "000000463557.jpg").write_bytes(b"not a JPEG")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as excinfo:
        generate_hdf5(["--split", str(tiny_split["annotations"]), str(images), str(tiny_masks),
                       "--val-size", "1", "--output-dir", str(out)])
    assert exit_message(excinfo) == (
        f"error: image {images / '000000463557.jpg'} is missing or unreadable")
    assert sorted(p.name for p in out.iterdir()) == ["val_dataset.h5"]  # the first, complete


def test_server_port_out_of_range(shared_data: Path):
    """Case 8: the port is checked, not left to ZeroMQ (which picked a random one)."""
    from rtpose.tools import dataset_server as server

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    for port in ("99999", "0"):
        with pytest.raises(SystemExit) as excinfo:
            server.main([str(dataset), port, "--quiet"])
        assert exit_message(excinfo) == f"error: port must be in 1..65535, got {port}"


def listening(port: int) -> list[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (Linux /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize(("flags", "address", "reach"), [
    ([], "127.0.0.1", "this machine only; --bind 0.0.0.0 serves others"),
    (["--bind", "0.0.0.0"], "0.0.0.0", "reachable from other machines"),
])
def test_server_binds_loopback_unless_told(repo_root: Path, shared_data: Path, flags: list[str],
                                          address: str, reach: str):
    """Case 17: loopback by default, every interface with ``--bind 0.0.0.0``; one start-up line
    says where; the client still reads samples."""
    from rtpose.data.client import DataGeneratorClient

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "training/dataset_server.py", str(dataset), str(port), "--quiet",
         "--crop-size", str(CROP), *flags],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
        stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline().strip()
        assert line == (f"serving 3 samples of {dataset} on tcp://{address}:{port} ({reach}) "
                        f"with 1 worker(s), pid {proc.pid}")
        assert listening(port) == [address]
        with DataGeneratorClient("127.0.0.1", port, timeout=60) as client:
            image, _, _ = client.receive()
        assert image.shape == (3, CROP, CROP)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_server_bad_bind_address(shared_data: Path):
    from rtpose.tools import dataset_server as server

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    port = free_port()
    with pytest.raises(SystemExit) as excinfo:
        server.main([str(dataset), str(port), "--bind", "192.0.2.1", "--quiet"])  # TEST-NET-1
    assert exit_message(excinfo).startswith(f"error: cannot listen on tcp://192.0.2.1:{port}: ")


@pytest.mark.parametrize(("flags", "message"), [
    (["--timeout=-1"], "timeout must be a positive number of seconds, got -1.0"),
    (["--timeout", "nan"], "timeout must be a positive number of seconds, got nan"),
    (["--port", "99999"], "port must be in 1..65535, got localhost:99999"),
    (["--batch-size", "0"], "batch size and stages must be at least 1, got 0 and 6"),
    (["--batches=-1"], "--batches must be at least 1, got -1"),
])
def test_client_script_bad_flags(flags: list[str], message: str):
    """Case 15."""
    from rtpose.tools import ds_generator_client as client

    with pytest.raises(SystemExit) as excinfo:
        client.main(flags)
    assert exit_message(excinfo) == f"error: {message}"
