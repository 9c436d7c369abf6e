"""The page of ``rtpose serve`` in a real browser: headless Chromium (Debian's ``chromium``)
driven by Playwright uploads ski.jpg, waits for the answer, and finds 5 people, a drawn image
that differs from the input, and the people as a downloadable OpenPose JSON; gradio_client
calls the page's endpoint. ``RTPOSE_UPDATE_PICTURES=1`` also saves the screenshot to
``docs/images/web.png``."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("gradio", reason="needs the web extra: pip install -e .[web]")
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="needs Playwright: pip install playwright")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)

from serve_helpers import running_server, served_weights, settings  # noqa: E402

from rtpose.files import atomic_path  # noqa: E402
from rtpose.people import People  # noqa: E402
from rtpose.serve.app import create_app  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def url(mobilenet_weights, tmp_path_factory):
    app = create_app(settings(served_weights(mobilenet_weights, tmp_path_factory), page=True))
    with running_server(app) as url:
        yield url
    app.state.service.close()


def test_the_page_finds_five_people_on_ski(url, shared_data, repo_root, tmp_path):
    ski = shared_data / "sample_images" / "ski.jpg"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, timeout=TIMEOUT_MS)
            upload = "#input-image input[type=file]"
            page.wait_for_selector(upload, state="attached", timeout=TIMEOUT_MS)
            page.set_input_files(upload, str(ski))
            page.wait_for_selector("#input-image img", timeout=TIMEOUT_MS)
            page.click("#run")
            page.wait_for_function("document.querySelector('#summary').innerText"
                                   ".includes('people')", timeout=TIMEOUT_MS)
            summary = page.inner_text("#summary")
            drawn_url = page.get_attribute("#drawn-image img", "src")
            drawn = page.request.get(drawn_url).body()
            link = page.get_attribute("#download a", "href")
            text = page.inner_text("body")
            screenshot = page.screenshot(full_page=True)
        finally:
            browser.close()
    # Gradio may still show its progress timer ("0.0s") above the text while the page settles.
    assert summary.strip().splitlines()[-1].startswith("5 people"), summary
    drawn = cv2.imdecode(np.frombuffer(drawn, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imread(str(ski))
    assert drawn.shape == original.shape
    changed = np.abs(drawn.astype(int) - original).max(axis=2) > 30
    assert 0.005 < changed.mean() < 0.5  # skeletons drawn, the picture still there
    assert link.startswith("data:application/json;base64,")
    assert len(People.from_json(json.loads(base64.b64decode(link.split(",", 1)[1])))) == 5
    assert str(repo_root) not in text and "Traceback" not in text
    (tmp_path / "web.png").write_bytes(screenshot)
    if os.environ.get("RTPOSE_UPDATE_PICTURES"):
        with atomic_path(repo_root / "docs" / "images" / "web.png") as temporary:
            temporary.write_bytes(screenshot)


def test_the_webcam_streams_from_the_browser(url, shared_data, tmp_path):
    """Chromium's fake camera plays ski.jpg (a Y4M file); the page streams it to the server
    and shows each frame drawn (Gradio mirrors the webcam, so the people are ski's, mirrored)."""
    ski = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    camera = tmp_path / "ski.y4m"
    with open(camera, "wb") as file:
        file.write(f"YUV4MPEG2 W{ski.shape[1]} H{ski.shape[0]} F5:1 Ip A1:1 C420jpeg\n"
                   .encode())
        for _ in range(5):
            file.write(b"FRAME\n" + cv2.cvtColor(ski, cv2.COLOR_BGR2YUV_I420).tobytes())
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_context(permissions=["camera"]).new_page()
            page.goto(url, timeout=TIMEOUT_MS)
            page.get_by_role("tab", name="Webcam").click()
            page.get_by_text("Click to Access Webcam").click()
            page.click("#webcam button[aria-label='capture photo']", timeout=TIMEOUT_MS)
            page.wait_for_function("document.querySelector('#webcam-summary').innerText"
                                   ".includes('people')", timeout=TIMEOUT_MS)
            summary = page.inner_text("#webcam-summary")
        finally:
            browser.close()
    # Gradio may still show its progress timer ("0.0s") above the text while the page settles.
    assert summary.strip().splitlines()[-1].startswith("5 people"), summary


def test_gradio_client_calls_the_page(url, shared_data):
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(url, verbose=False)
    ski = gradio_client.handle_file(str(shared_data / "sample_images" / "ski.jpg"))
    drawn, summary, timings, people, link = client.predict(
        ski, "mobilenet_thin", "original", "auto", "fp32", "1", api_name="/pose")
    assert summary.startswith("**5 people**") and len(people["people"]) == 5
    assert Path(drawn).is_file() and [row[0] for row in timings["data"]][:2] == ["queue",
                                                                                  "network"]


def test_gradio_client_processes_a_video(url, shared_data):
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(url, verbose=False)
    video = gradio_client.handle_file(str(shared_data / "videos" / "street_5frames.mp4"))
    drawn, summary, link = client.predict(video, "mobilenet_thin", "original", "auto", "fp32",
                                          "", api_name="/video")
    assert summary.startswith("**5 frames**"), summary
    capture = cv2.VideoCapture(drawn["video"] if isinstance(drawn, dict) else drawn)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    lines = base64.b64decode(link.split('href="data:application/x-ndjson;base64,')[1]
                             .split('"')[0]).decode().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2, 3, 4]
