"""The HTTP API of ``rtpose serve`` (``rtpose.serve``): its answers equal the pipeline's, every
refusal is a one-line 4xx, a full queue answers 503 with Retry-After, the time limit 504, the
token guards the API, two clients at once get their own people, and SIGTERM answers every
accepted request before the process exits. Loopback only; every loop is bounded."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install -e .[web]")
httpx = pytest.importorskip("httpx", reason="needs the web extra: pip install -e .[web]")
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import (  # noqa: E402
    free_port,
    running_server,
    served_weights,
    settings,
)

from rtpose.errors import RtposeError  # noqa: E402
from rtpose.people import People  # noqa: E402
from rtpose.serve.app import Service, create_app  # noqa: E402
from rtpose.serve.engine import Engine  # noqa: E402
from rtpose.serve.models import Models, parse_model_spec  # noqa: E402

CROWD = "coco_mini/val2017/000000217285.jpg"  # 21 people
WAIT_S = 30.0


@pytest.fixture(scope="module")
def weights(mobilenet_weights, tmp_path_factory):
    return served_weights(mobilenet_weights, tmp_path_factory)


@pytest.fixture(scope="module")
def models(weights):
    """One ``Models`` (the network loaded once) shared by every app of this module."""
    return Models({"mobilenet_thin": weights}, hint="throughput")


@pytest.fixture(scope="module")
def service(weights, models):
    service = Service(settings(weights, queue_size=2), models)
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service.settings, service)) as client:
        yield client


@pytest.fixture(scope="module")
def images(shared_data):
    """name → (file bytes, BGR image) of ski.jpg and a 21-person coco_mini image."""
    paths = {"ski": shared_data / "sample_images" / "ski.jpg", "crowd": shared_data / CROWD}
    return {name: (path.read_bytes(), cv2.imread(str(path))) for name, path in paths.items()}


def expected(service, image, **given):
    """The people the pipeline itself finds with the request's settings."""
    return service.models.pipeline(service.request(**given)).run(image).people


def assert_same_people(answer: dict, people: People) -> None:
    got = People.from_json(answer)
    assert len(got) == len(people)
    np.testing.assert_allclose(got.keypoints, people.keypoints, atol=1e-6)


def test_raw_and_multipart_bodies_give_the_pipelines_people(client, service, images):
    data, image = images["ski"]
    raw = client.post("/v1/pose", content=data, params={"scales": "1"})
    multipart = client.post("/v1/pose?scales=1", files={"image": ("ski.jpg", data)})
    assert raw.status_code == multipart.status_code == 200
    people = expected(service, image, scales="1")
    assert len(people) == 5
    for answer in (raw.json(), multipart.json()):
        assert_same_people(answer, people)
        assert answer["version"] == 1.3 and (answer["width"], answer["height"]) == (712, 674)
        assert (answer["model"], answer["runtime"]) == ("mobilenet_thin", "openvino")
        t = answer["timings"]
        assert t["network_s"] > 0 and t["total_s"] >= t["network_s"] + t["peaks_s"]


def test_health_models_and_openapi(client):
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["queue"]["queue_size"] == 2
    models = client.get("/v1/models").json()
    assert models["models"] == ["mobilenet_thin"] and "openvino" in models["runtimes"]
    assert {"model": "mobilenet_thin", "runtime": "openvino", "precision": "fp32"} in \
        models["loaded"]
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/v1/pose"]["post"]
    assert {"multipart/form-data", "image/jpeg"} <= set(post["requestBody"]["content"])
    assert {p["name"] for p in post["parameters"]} >= {"preset", "scales", "runtime"}


@pytest.fixture(scope="module")
def strict(weights, models):
    """An app with small limits: uploads of 0.2 MB, images of 300,000 pixels."""
    service = Service(settings(weights, max_upload_mb=0.2, max_image_pixels=300_000), models)
    with TestClient(create_app(service.settings, service)) as client:
        yield client
    service.close()


def _jpeg(height: int, width: int) -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    return cv2.imencode(".jpg", noise)[1].tobytes()


def _png_half() -> bytes:
    png = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    return png[: len(png) // 2]


def _png_bomb() -> bytes:
    """A PNG that says it is 100,000 x 100,000 pixels (a few hundred bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))


REFUSALS = [
    ("?colour=red", "small", 400, "unknown parameter 'colour'"),
    ("?preset=best", "small", 400, "unknown preset 'best'"),
    ("?model=../../etc/passwd", "small", 400, "unknown model '../../etc/passwd'"),
    ("?scales=a,b", "small", 400, "scales: not a comma-separated list of numbers"),
    ("?flip=perhaps", "small", 400, "flip:"),
    ("", "text", 400, "not an image"),
    ("", "truncated_jpeg", 400, "truncated image: the JPEG"),
    ("", "truncated_png", 400, "truncated image: the PNG"),
    ("", "empty", 400, "no image"),
    ("", "large", 413, "too large"),
    ("", "many_pixels", 413, "too many pixels: 700x500"),
    ("", "bomb", 413, "too many pixels"),
]


@pytest.mark.parametrize("query, body, status, reason", REFUSALS)
def test_refusals_are_one_line(strict, query, body, status, reason):
    small = _jpeg(64, 64)
    bodies = {"small": small, "text": b"hello, not an image", "empty": b"",
              "truncated_jpeg": small[: len(small) // 2], "truncated_png": _png_half(),
              "large": _jpeg(900, 900), "many_pixels": cv2.imencode(
                  ".png", np.zeros((500, 700, 3), np.uint8))[1].tobytes(),
              "bomb": _png_bomb()}
    answer = strict.post(f"/v1/pose{query}", content=bodies[body])
    detail = answer.json()["detail"]
    assert answer.status_code == status and detail.startswith(reason), detail
    assert "\n" not in detail and "Traceback" not in detail and "/tmp" not in detail


def test_multipart_without_an_image_field_and_wrong_form(strict):
    answer = strict.post("/v1/pose", files={"note": (None, "no file")})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "no image: the multipart body has no file field 'image'"
    answer = strict.post("/v1/pose", files=[("image", ("a.jpg", b"1")), ("b", ("b.jpg", b"2"))])
    assert answer.status_code == 400 and answer.json()["detail"].startswith("bad multipart")
    answer = strict.post("/v1/pose", files={"other": ("x.jpg", _jpeg(32, 32))})
    assert answer.status_code == 200  # the only file is the image


def test_a_model_that_cannot_load_says_so_without_paths(weights, models, tmp_path):
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not weights")
    service = Service(settings(weights, preload=False),
                      Models({"mobilenet_thin": weights, "broken": broken}))
    with TestClient(create_app(service.settings, service)) as client:
        answer = client.post("/v1/pose?model=broken", content=_jpeg(64, 64))
    service.close()
    detail = answer.json()["detail"]
    assert answer.status_code == 422 and detail.startswith("model broken cannot run")
    assert str(tmp_path) not in detail


class Gate:
    """A run function that holds every job until opened, then runs the service's own."""

    def __init__(self, service: Service):
        self.run, self.open = service._run, threading.Event()

    def __call__(self, task):
        assert self.open.wait(WAIT_S)
        return self.run(task)


def _held_service(weights, models, **options):
    service = Service(settings(weights, **options), models)
    service.engine.close()
    gate = Gate(service)
    service.engine = Engine(gate, service.settings.workers, service.settings.queue_size)
    return service, gate


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_full_queue_answers_503_with_retry_after(weights, models, images):
    service, gate = _held_service(weights, models, workers=1, queue_size=1)
    data = images["ski"][0]
    with TestClient(create_app(service.settings, service)) as client, \
            ThreadPoolExecutor(2) as pool:
        accepted = [pool.submit(client.post, "/v1/pose?scales=1", content=data)
                    for _ in range(2)]
        _wait_for(lambda: service.engine.stats()["running"] == 1
                  and service.engine.stats()["waiting"] == 1, "two accepted requests")
        refused = client.post("/v1/pose?scales=1", content=data)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["detail"].startswith("busy: 2 requests in hand")
        gate.open.set()
        assert [len(f.result(WAIT_S).json()["people"]) for f in accepted] == [5, 5]
    assert service.engine.stats()["refused"] == 1
    service.close()


def test_the_time_limit_answers_504(weights, models, images):
    service, gate = _held_service(weights, models, workers=1, queue_size=1, timeout_s=0.3)
    with TestClient(create_app(service.settings, service)) as client:
        answer = client.post("/v1/pose?scales=1", content=images["ski"][0])
        assert answer.status_code == 504 and answer.json()["detail"] == "no answer within 0.3 s"
        gate.open.set()
    service.close()


def test_the_token_guards_the_api(weights, models, images):
    service = Service(settings(weights, token="s3cret"), models)
    data = images["ski"][0]
    with TestClient(create_app(service.settings, service)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for answer in (client.post("/v1/pose?scales=1", content=data, headers=headers),
                           client.get("/v1/models", headers=headers)):
                assert answer.status_code == 401
                assert answer.headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/pose?scales=1", content=data, headers=good).status_code == 200
        assert client.get("/v1/models", headers=good).status_code == 200
        assert client.get("/v1/health").status_code == 200  # for load balancers
    service.close()


def test_two_clients_at_once_get_their_own_people(service, images):
    people = {name: expected(service, image, scales="1") for name, (_, image) in images.items()}
    assert (len(people["ski"]), len(people["crowd"])) == (5, 21)
    with running_server(create_app(service.settings, service)) as url:

        def client(name: str) -> list[dict]:
            with httpx.Client(base_url=url, timeout=WAIT_S) as http:
                return [http.post("/v1/pose?scales=1", content=images[name][0]).json()
                        for _ in range(3)]

        with ThreadPoolExecutor(2) as pool:
            answers = dict(zip(people, pool.map(client, people), strict=True))
    for name, answered in answers.items():
        for answer in answered:
            assert_same_people(answer, people[name])


def test_sigterm_answers_every_accepted_request_then_exits(weights, images, repo_root):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rtpose.tools.serve", "--model", f"mt={weights}", "--port",
         str(port), "--workers", "1", "--queue", "8", "--no-page"],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=WAIT_S) as http:
            def health() -> dict | None:
                try:
                    return http.get("/v1/health").json()["queue"]
                except httpx.TransportError:
                    assert server.poll() is None, server.communicate()
                    return None

            _wait_for(lambda: health() is not None, "the server")
            with ThreadPoolExecutor(3) as pool:  # 4 scales: about a second each
                posts = [pool.submit(http.post, "/v1/pose", content=images["ski"][0])
                         for _ in range(3)]
                _wait_for(lambda: (q := health()) and q["running"] + q["waiting"] == 3 - q[
                    "answered"] and q["answered"] < 3, "three accepted requests")
                server.send_signal(signal.SIGTERM)
                answers = [post.result(WAIT_S) for post in posts]
        out, err = server.communicate(timeout=WAIT_S)
    finally:
        server.kill()
    assert [a.status_code for a in answers] == [200] * 3
    assert all(len(a.json()["people"]) == 5 for a in answers)
    assert server.returncode == 0, err
    assert "stopped: 3 requests answered, 0 refused" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/health", timeout=2)


def test_command_line_checks_and_warnings(weights, capsys):
    from rtpose.tools.serve import build_parser, settings_from_args, warn_if_exposed

    warn_if_exposed("127.0.0.1", None)
    warn_if_exposed("0.0.0.0", None)
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: listening on 0.0.0.0: anyone who can reach this port can use the "
                   "server; set --token to require one"]
    args = build_parser().parse_args(["--model", f"x={weights}", "--model", str(weights)])
    assert list(settings_from_args(args).models) == ["x", "mobilenet_thin"]
    assert parse_model_spec("a=b.h5")[0] == "a"
    with pytest.raises(RtposeError, match="no such weights file"):
        settings_from_args(build_parser().parse_args(["--model", "missing.weights.h5"]))


def test_the_token_is_the_pages_password(weights, models):
    pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
    service = Service(settings(weights, token="s3cret", page=True), models)
    with TestClient(create_app(service.settings, service)) as client:
        assert client.get("/config").status_code == 401
        assert client.post("/gradio_api/call/pose", json={"data": []}).status_code == 401
        login = client.post("/login", data={"username": "any", "password": "s3cret"})
        assert login.status_code == 200 and client.get("/config").status_code == 200
    service.close()


def test_the_pages_errors_are_one_line(weights, models, images):
    gr = pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
    from rtpose.serve.page import Page

    service = Service(settings(weights, max_image_pixels=300_000, preload=False), models)
    page = Page(service)
    rgb = images["ski"][1][:, :, ::-1]
    for image, scales, message in ((None, "", "no image: upload one first"),
                                   (rgb[:300, :300], "x", "scales: not a comma-separated"),
                                   (rgb, "", "too many pixels: 712x674")):
        with pytest.raises(gr.Error, match=message):
            page.image(image, "mobilenet_thin", "original", "auto", "fp32", scales)
    drawn, summary, table, people, link = page.image(rgb[:300, :300], "mobilenet_thin",
                                                     "original", "auto", "fp32", "1")
    assert drawn.shape == (300, 300, 3) and [row[0] for row in table][-1] == "total"
    service.close()
