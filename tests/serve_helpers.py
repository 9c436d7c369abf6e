"""Test and benchmark helpers of the web server: a free loopback port, the app served by uvicorn
in a thread, and the settings of a one-model server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(weights: Path, **options: Any):
    """``ServeSettings`` of one model, ``mobilenet_thin``, API only unless ``page=True``."""
    from rtpose.serve.app import ServeSettings

    return ServeSettings(models={"mobilenet_thin": Path(weights)},
                         default_model="mobilenet_thin", **{"page": False, **options})


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """``app`` served on a free loopback port in a thread; yields its base URL, then stops it
    (uvicorn's graceful shutdown)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)


_WEIGHTS: dict[Path, Path] = {}


def served_weights(weights: Path, tmp_path_factory: Any) -> Path:
    """A copy of ``weights`` in a folder of its own with its OpenVINO IR cached beside it, made
    once per test session and shared by the server tests (a server loads the cached IR in
    well under a second)."""
    if weights not in _WEIGHTS:
        import shutil

        from rtpose.serve.models import load_network

        copy = Path(shutil.copy(weights, tmp_path_factory.mktemp("serve") / weights.name))
        load_network(copy, "openvino", "fp32", "latency")
        _WEIGHTS[weights] = copy
    return _WEIGHTS[weights]
