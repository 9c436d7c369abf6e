"""Faults, round 2, of get_cmu_model.sh and train_pose.py: a Hub that accepts connections and
never answers (silent for 397 s, then 'no connection'), and TensorFlow's start-up lines printed
before the real message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from weight_files import contiguous, write_pth

from rtpose.convert import cmu_source
from rtpose.errors import FetchError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def silent_server():
    """A server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_server_that_never_answers_is_said_so_with_each_retry(silent_server):
    hub, accepted = silent_server
    said = []
    start = time.perf_counter()
    with pytest.raises(FetchError) as error:
        cmu_source.check_answers(cmu_source.file_url(hub), timeout_s=0.3, tries=3, say=said.append)
    assert time.perf_counter() - start < 10
    where = hub.removeprefix("http://")
    reason = f"{where} accepted the connection but sent no answer within 0.3 s"
    assert str(error.value) == f"{reason} (3 tries of 0.3 s)"
    assert said == [f"warning: {reason}; trying again (2 of 3)",
                    f"warning: {reason}; trying again (3 of 3)"]
    assert len(accepted) == 3

    said.clear()  # nobody listening: refused, not 'no answer'
    port = free_port()
    with pytest.raises(FetchError, match=f"^127.0.0.1:{port} refused the connection"):
        cmu_source.check_answers(f"http://127.0.0.1:{port}/x", 0.3, 2, said.append)
    assert said == [f"warning: 127.0.0.1:{port} refused the connection; trying again (2 of 2)"]


def test_get_cmu_model_against_a_silent_hub_tells_the_truth(silent_server, tmp_path):
    hub, _ = silent_server
    done = subprocess.run(
        ["bash", "model/get_cmu_model.sh", "--timeout", "0.3", "--root", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "PYTHON": sys.executable, "HF_ENDPOINT": hub,
             "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert [line.split(";")[-1] for line in lines[:2]] == [" trying again (2 of 3)",
                                                           " trying again (3 of 3)"]
    assert len(lines) == 3 and lines[2].startswith("error: cannot download body_pose_model.pth")
    assert "accepted the connection but sent no answer within 0.3 s (3 tries" in lines[2]
    assert "no connection" not in done.stderr


def test_get_cmu_model_says_only_its_own_line_after_starting_tensorflow(tmp_path):
    """get_cmu_model.sh printed about 7 TensorFlow start-up lines (E0000 ... cuInit) before a
    conversion's error."""
    state = {"conv1_1.weight": np.zeros((64, 3, 3, 3), "float32"),
             "conv1_1.bias": np.zeros(64, "float32")}
    pth = write_pth(tmp_path / "small.pth", *contiguous(state))
    done = subprocess.run(["bash", "model/get_cmu_model.sh", "--pth", str(pth), "--no-verify",
                           "--root", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"error: {pth}: wrong architecture, not the layers of cmu_pose"), done.stderr


@pytest.mark.slow
def test_train_pose_says_only_its_own_line_after_starting_tensorflow(tmp_path):
    """train_pose.py too (here: no dataset server answers within --timeout)."""
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "rtpose.tools.train_pose", "--arch", "mobilenet_thin",
         "--from-scratch", "--weights-dir", str(tmp_path / "w"), "--logs-dir",
         str(tmp_path / "l"), "--timeout", "1", "--train-servers", f"127.0.0.1:{port}",
         "--val-servers", f"127.0.0.1:{port}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"error: no sample from tcp://127.0.0.1:{port} within 1 s"), done.stderr
