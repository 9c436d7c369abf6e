"""Hands and face in ``rtpose serve``: ``POST /v1/pose?hands=true&face=true`` gives each person
OpenPose's three arrays, equal to ``rtpose.load(..., hands=True, face=True)``'s on ski.jpg, and
``POST /v1/draw`` draws them on the body's picture; the curl commands of docs/web.md do both on
a running server; a server without their weights answers one line that says how to get them and
keeps serving (and serves them once they are put in place); the page's Hands and Face boxes
draw them, in the hand and face boxes only.

Random hand and face weights in their real names and shapes, run small as
``test_wholebody_tools`` runs them (the hand network at one scale, the face at 184 px)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install -e .[web]")
pytest.importorskip("httpx", reason="needs the web extra: pip install -e .[web]")
import test_serve as serve_tests  # noqa: E402
import test_wholebody_tools as wholebody_tests  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import running_server, settings  # noqa: E402

import rtpose  # noqa: E402
from rtpose import store, wholebody  # noqa: E402
from rtpose.draw import draw_people  # noqa: E402
from rtpose.people import People  # noqa: E402
from rtpose.runtime.part_runtime import how_to_get  # noqa: E402
from rtpose.serve.app import Service, create_app  # noqa: E402
from rtpose.serve.models import Models  # noqa: E402
from rtpose.wholebody import draw_hands_face  # noqa: E402

SKI = "sample_images/ski.jpg"
# The hand and face weights' fixtures (a store holding them, the small part networks), and the
# server's: the served weights and one ``Models`` shared by the module's services.
part_files, part_store, parts_env = (wholebody_tests.part_files, wholebody_tests.part_store,
                                     wholebody_tests.parts_env)
weights, models = serve_tests.weights, serve_tests.models
BOTH = {"scales": "1", "hands": "true", "face": "true"}


@pytest.fixture
def service(weights, models):
    service = Service(settings(weights, preload=False), models)
    yield service
    service.close()


@pytest.fixture(scope="module")
def ski(repo_root):
    return (repo_root / SKI).read_bytes()


def _part_lengths(person: dict) -> tuple[int, ...]:
    return tuple(len(person.get(key, ())) for key in (
        "hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d"))


def test_hands_and_face_over_http_are_rtpose_loads(parts_env, service, weights, ski,
                                                    repo_root):
    with TestClient(create_app(service.settings, service)) as client:
        answer = client.post("/v1/pose", content=ski, params=BOTH)
        hands_only = client.post("/v1/pose", content=ski, params={"scales": "1",
                                                                   "hands": "true"})
        loaded = client.get("/v1/models").json()["loaded"]
    assert answer.status_code == hands_only.status_code == 200, answer.text
    body = answer.json()
    assert (body["hands"], body["face"]) == (True, True) and len(body["people"]) == 5
    assert all(_part_lengths(person) == (63, 63, 210) for person in body["people"])
    assert all(_part_lengths(person) == (63, 63, 0) for person in hands_only.json()["people"])
    assert {"part": "hand", "runtime": "openvino", "precision": "fp32"} in loaded
    assert {"part": "face", "runtime": "openvino", "precision": "fp32"} in loaded

    expected = rtpose.load(weights, scales=(1.0,), hands=True, face=True)(repo_root / SKI)
    got = People.from_json(body)
    np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-4)
    np.testing.assert_allclose(got.hands, expected.hands, atol=1e-4)
    np.testing.assert_allclose(got.face, expected.face, atol=1e-4)
    assert (got.hands[..., 2] > 0).any() and (got.face[..., 2] > 0).any()


def test_the_drawn_image_has_the_hands_and_face(parts_env, service, repo_root):
    image = rtpose.read_image(repo_root / SKI)[200:, :280]  # two of ski.jpg's people
    png = cv2.imencode(".png", image)[1].tobytes()
    with TestClient(create_app(service.settings, service)) as client:
        plain = client.post("/v1/draw", content=png, params={"scales": "1"})
        whole = client.post("/v1/draw", content=png, params=BOTH)
        refused = client.post("/v1/draw", content=png, params={"colour": "red"})
    assert plain.headers["content-type"] == whole.headers["content-type"] == "image/png"
    plain, whole = (cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
                    for r in (plain, whole))
    # The pipeline's people and peaks, drawn: the body alike, then the hands and face on it.
    result = service.models.pipeline(service.request(scales="1", hands=True, face=True)).run(image)
    assert len(result.people) == 2 and (result.people.hands[..., 2] > 0).any()
    np.testing.assert_array_equal(plain, draw_people(image, result.people, result.peaks))
    np.testing.assert_array_equal(whole, draw_hands_face(plain.copy(), result.people))
    assert (whole != plain).any()
    assert refused.status_code == 400 and refused.json()["detail"].startswith(
        "unknown parameter 'colour'")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl: apt-get install -y curl")
def test_the_docs_curl_commands_with_hands_and_face(parts_env, service, repo_root, tmp_path):
    page = (repo_root / "docs" / "web.md").read_text()
    pose, draw = [line.strip() for line in page.splitlines()
                  if line.strip().startswith("curl") and "hands=true&face=true" in line]
    with running_server(create_app(service.settings, service)) as url:
        done = [subprocess.run(
            [word.replace("http://127.0.0.1:8000", url).replace("@", f"@{repo_root}/")
             for word in shlex.split(command)], cwd=tmp_path, capture_output=True, text=True,
            timeout=120) for command in (pose, draw)]
    assert [d.returncode for d in done] == [0, 0], done[0].stderr + done[1].stderr
    people = json.loads(done[0].stdout)["people"]
    assert len(people) == 5 and all(_part_lengths(p) == (63, 63, 210) for p in people)
    drawn = cv2.imread(str(tmp_path / "people.png"))
    assert drawn.shape == (674, 712, 3)


def test_without_the_weights_one_line_and_the_body_still_served(weights, ski, tmp_path,
                                                               monkeypatch, part_store):
    gr = pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
    from rtpose.serve.page import Page

    monkeypatch.setenv(store.HOME_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr(store, "checkout_root", lambda: None)
    # Its own networks: none of the hand and face networks loaded by the other tests.
    service = Service(settings(weights, preload=False), Models({"mobilenet_thin": weights}))
    with pytest.raises(gr.Error, match="this server has no face network weights: run `"):
        Page(service).image(rtpose.read_image(SKI)[:, :, ::-1], "mobilenet_thin", "original",
                            "auto", "fp32", "1", False, True)
    with TestClient(create_app(service.settings, service)) as client:
        for flag, part in (("hands", "hand"), ("face", "face")):
            answer = client.post("/v1/pose", content=ski, params={"scales": "1", flag: "true"})
            assert answer.status_code == 422
            detail = answer.json()["detail"]
            assert detail == f"this server has no {part} network weights: {how_to_get(part)}"
            assert "\n" not in detail and str(tmp_path) not in detail
            assert f"rtpose fetch {part}" in detail and "get_cmu_model.sh" in detail
        plain = client.post("/v1/pose", content=ski, params={"scales": "1"})
        assert plain.status_code == 200
        assert [_part_lengths(p) for p in plain.json()["people"]] == [(0, 0, 0)] * 5
        # Put in place while the server runs: served, nothing remembered of the refusal.
        monkeypatch.setenv(store.HOME_ENV, str(part_store))
        monkeypatch.setattr(wholebody, "HAND_SCALES", (0.5,))
        answer = client.post("/v1/pose", content=ski, params={"scales": "1", "hands": "true"})
        assert answer.status_code == 200, answer.text
        assert client.get("/v1/health").json()["queue"]["answered"] == 5


def _changed(drawn: np.ndarray, plain: np.ndarray) -> np.ndarray:
    return (drawn != plain).any(axis=2)


def test_the_pages_hands_and_face_are_drawn_in_their_boxes(parts_env, service, repo_root):
    pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
    from rtpose.serve.page import Page

    page = Page(service)
    rgb = rtpose.read_image(repo_root / SKI)[:, :, ::-1]
    plain, plain_summary, _, plain_people, _ = page.image(
        rgb, "mobilenet_thin", "original", "auto", "fp32", "1")
    drawn, summary, _, people, link = page.image(
        rgb, "mobilenet_thin", "original", "auto", "fp32", "1", True, True)
    assert plain_summary.startswith("**5 people** ·")
    assert re.match(r"\*\*5 people\*\* \(\d+ hands, \d+ faces\) ·", summary), summary
    assert all(_part_lengths(p) == (63, 63, 210) for p in people["people"])
    assert all(_part_lengths(p) == (0, 0, 0) for p in plain_people["people"])
    download = json.loads(base64.b64decode(link.split("base64,")[1].split('"')[0]))
    assert download["people"] == people["people"]

    # The body is drawn alike; what differs lies in the hand and face boxes (with the dots'
    # and lines' few pixels beyond), and every hand box with a keypoint found has some of it.
    changed = _changed(drawn, plain)
    found = People.from_json(people)
    boxes = wholebody.hand_boxes(found.keypoints, rgb.shape[:2])
    inside = np.zeros_like(changed)
    margin = 6
    for x, y, side in [*boxes[:, 2:5], *wholebody.face_boxes(found.keypoints,
                                                             rgb.shape[:2])[:, 1:4]]:
        inside[max(y - margin, 0):y + side + margin, max(x - margin, 0):x + side + margin] = True
    assert changed.any() and not (changed & ~inside).any()
    for person, hand, x, y, side in boxes:
        if (found.hands[person, hand, :, 2] > 0).sum() >= 2:
            assert changed[y:y + side, x:x + side].any()


def test_the_pages_video_with_hands(parts_env, weights, models, shared_data):
    pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
    from rtpose.serve.page import Page

    service = Service(settings(weights, preload=False, max_video_frames=2), models)
    drawn, summary, link = Page(service).video(
        str(shared_data / "videos" / "street_5frames.mp4"), "mobilenet_thin", "original", "auto",
        "fp32", "", True, False)
    service.close()
    assert summary.startswith("**2 frames**"), summary
    lines = base64.b64decode(link.split("base64,")[1].split('"')[0]).decode().splitlines()
    people = [person for line in lines for person in json.loads(line)["people"]]
    assert people and all(_part_lengths(p) == (63, 63, 0) for p in people)
