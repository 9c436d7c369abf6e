"""``rtpose serve --engine ray``: the app on a local Ray instance, 2 replicas behind Serve's
proxy on loopback, answers as the local server does."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install -e .[web]")
pytest.importorskip("ray.serve", reason="needs Ray Serve: pip install -e .[serve]")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import free_port, served_weights, settings  # noqa: E402

from rtpose.serve import ray_serve  # noqa: E402
from rtpose.serve.app import create_app  # noqa: E402

IMAGES = ("sample_images/ski.jpg", "coco_mini/val2017/000000217285.jpg")
START_S = 120.0


def test_two_replicas_answer_as_the_local_server(mobilenet_weights, tmp_path_factory,
                                                 shared_data):
    import ray

    weights = served_weights(mobilenet_weights, tmp_path_factory)
    local = settings(weights, workers=1)
    bodies = [(shared_data / name).read_bytes() for name in IMAGES]
    app = create_app(local)
    with TestClient(app) as client:
        expected = [client.post("/v1/pose?scales=1", content=b).json() for b in bodies]
    app.state.service.close()

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_serve.start(local, "127.0.0.1", port, replicas=2, replica_cpus=1)
        deadline = time.monotonic() + START_S
        while ray_serve.import_serve().status().applications[ray_serve.APP_NAME].status \
                != "RUNNING":
            assert time.monotonic() < deadline, "Serve did not start"
            time.sleep(0.5)
        replicas = ray_serve.import_serve().status().applications[ray_serve.APP_NAME]\
            .deployments["pose"].replica_states
        assert replicas == {"RUNNING": 2}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            answers = [http.post("/v1/pose?scales=1", content=b) for b in bodies * 2]
    finally:
        ray_serve.stop()
    for got, want in zip(answers, expected * 2, strict=True):
        assert got.status_code == 200, got.text
        assert got.json()["people"] == want["people"]
    assert [len(a["people"]) for a in expected] == [5, 21]
