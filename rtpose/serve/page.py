"""The page (Gradio), mounted at ``/`` of the API's app: an image, the webcam or a video in, the
people drawn, as OpenPose JSON (shown and downloadable) and the time per stage out. The Hands
and Face boxes add OpenPose's hands and face (``rtpose.wholebody``), drawn as ControlNet draws
them and in the JSON.

Every request of the page goes through the same ``Service`` as the API's (one copy of each
network, the same bounded queue and time limit). Its errors are one line (``gr.Error``); an
unexpected one says "internal error" and goes to the server's log, so the page never shows a
traceback or a server path. The JSON download is a data URL made in the browser's page, not a
file of the server.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# Gradio reports usage to its makers unless told not to; a self-hosted server does not.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from rtpose.config import PRESETS  # noqa: E402
from rtpose.errors import RtposeError  # noqa: E402
from rtpose.runtime import PRECISIONS, RUNTIMES  # noqa: E402
from rtpose.serve.app import Answer, RequestError, Service, draw  # noqa: E402
from rtpose.track import Tracking  # noqa: E402

LOG = logging.getLogger("rtpose.serve")
WEBCAM_EVERY_S = 0.2  # how often the browser sends a webcam frame
WEBCAM_SCALES = "1.0"  # live frames: one scale unless the page's Scales field says otherwise
STAGES = (("queue", "queue_s"), ("network", "network_s"), ("maps", "maps_s"),
          ("peaks", "peaks_s"), ("association", "association_s"), ("total", "total_s"))


def _one_line(call):
    """Run ``call``; a refusal becomes ``gr.Error`` with its line, anything else a generic
    one (the cause goes to the log only)."""
    try:
        return call()
    except (RequestError, RtposeError) as error:
        raise gr.Error(getattr(error, "detail", None) or str(error)) from None
    except gr.Error:
        raise
    except Exception:
        LOG.exception("page request failed")
        raise gr.Error("internal error") from None


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """Gradio's RGB (or grey, or RGBA) array as a BGR uint8 image."""
    if rgb.ndim == 2:
        return cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGR if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR)


def _download_link(data: Any, name: str, text: str, mime: str = "application/json") -> str:
    payload = base64.b64encode(data.encode() if isinstance(data, str) else
                               json.dumps(data).encode()).decode()
    return f'<a download="{name}" href="data:{mime};base64,{payload}">{text}</a>'


def _parts(people) -> str:
    """The hands and faces with a keypoint found, where asked for: ``" (3 hands, 2 faces)"``."""
    found = [f"{int((part[..., 2] > 0).any(axis=-1).sum())} {name}"
             for part, name in ((people.hands, "hands"), (people.face, "faces"))
             if part is not None]
    return f" ({', '.join(found)})" if found else ""


def _summary(answer: Answer) -> str:
    t = answer.result.timings
    return (f"**{len(answer.result.people)} people**{_parts(answer.result.people)} · "
            f"{answer.request.model} on "
            f"{answer.request.runtime} {answer.request.precision}, preset "
            f"{answer.request.preset} · network {t.network_s * 1000:.0f} ms, after it "
            f"{t.postprocess_s * 1000:.0f} ms")


class Page:
    """The page's handlers over one ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def _answer(self, rgb: np.ndarray | None, model: str, preset: str, runtime: str,
                precision: str, scales: str, hands: bool = False,
                face: bool = False) -> tuple[np.ndarray, Answer]:
        if rgb is None:
            raise RequestError(400, "no image: upload one first")
        image = _bgr(rgb)
        self.service.check_pixels(image.shape[1], image.shape[0])
        request = self.service.request(model=model, preset=preset, runtime=runtime,
                                       precision=precision, scales=scales.strip() or None,
                                       hands=bool(hands), face=bool(face))
        return image, self.service.run_blocking(request, image)

    def image(self, rgb, model, preset, runtime, precision, scales, hands=False, face=False):
        def run():
            image, answer = self._answer(rgb, model, preset, runtime, precision, scales, hands,
                                         face)
            result = answer.result
            drawn = draw(image, result.people, result.peaks)[:, :, ::-1]
            people = answer.to_json()
            table = [[name, round(people["timings"][key] * 1000, 1)] for name, key in STAGES]
            link = _download_link(result.people.to_openpose_json(), "people.json",
                                  "Download the people as OpenPose JSON")
            return drawn, _summary(answer), table, people, link

        return _one_line(run)

    def webcam(self, rgb, model, preset, runtime, precision, scales, hands=False, face=False):
        if rgb is None:
            return None, ""

        def run():
            image, answer = self._answer(rgb, model, preset, runtime, precision,
                                         scales.strip() or WEBCAM_SCALES, hands, face)
            drawn = draw(image, answer.result.people, answer.result.peaks)
            return drawn[:, :, ::-1], _summary(answer)

        return _one_line(run)

    def video(self, path, model, preset, runtime, precision, scales, hands=False, face=False,
              progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for a progress bar)
        def run():
            if not path:
                raise RequestError(400, "no video: upload one first")
            request = self.service.request(model=model, preset=preset, runtime=runtime,
                                           precision=precision,
                                           scales=scales.strip() or WEBCAM_SCALES,
                                           hands=bool(hands), face=bool(face))
            return self._video(Path(path), request, progress)

        return _one_line(run)

    def _video(self, path: Path, request, progress):
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise RequestError(400, "not a video OpenCV can read")
        limit = self.service.settings.max_video_frames
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or limit
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        out = Path(tempfile.mkdtemp(prefix="rtpose-video-")) / "people.webm"
        writer, lines, counts = None, [], []
        tracking = Tracking()  # person IDs across the video's frames (rtpose.track)
        try:
            for index in progress.tqdm(range(min(total, limit)), desc="frames"):
                ok, frame = capture.read()
                if not ok:
                    break
                if index == 0:
                    self.service.check_pixels(frame.shape[1], frame.shape[0])
                answer = self._frame(request, frame)
                people = tracking.update(answer.result.people, index)
                if writer is None:
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"VP80"), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(draw(frame, people, answer.result.peaks))
                lines.append(json.dumps({"frame": index, **people.to_openpose_json()}))
                counts.append(len(people))
        finally:
            capture.release()
            if writer is not None:
                writer.release()
        if not counts:
            raise RequestError(400, "the video has no frame OpenCV can read")
        summary = (f"**{len(counts)} frames**, {np.mean(counts):.1f} people per frame on "
                   f"average, {tracking.tracker.next_id} person IDs"
                   + (f" (the first {limit} frames)" if len(counts) == limit else ""))
        link = _download_link("\n".join(lines) + "\n", "people.jsonl",
                              "Download the people of every frame (JSON lines)",
                              "application/x-ndjson")
        return str(out), summary, link

    def _frame(self, request, frame: np.ndarray) -> Answer:
        """One video frame through the queue, waiting for a place when it is full."""
        deadline = time.monotonic() + self.service.settings.timeout_s
        while True:
            try:
                return self.service.run_blocking(request, frame)
            except RequestError as error:
                if error.status != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(min(float(error.headers["Retry-After"]), 1.0))


def build_page(service: Service) -> gr.Blocks:
    """The Gradio page over ``service``."""
    page, s, d = Page(service), service.settings, service.defaults
    with gr.Blocks(title="rtpose") as blocks:
        gr.Markdown("# rtpose\nMulti-person 2D pose estimation with Part Affinity Fields "
                    "(the CMU OpenPose body model). The same service answers "
                    "`POST /v1/pose` ([API docs](docs)).")
        with gr.Row():
            settings = [
                gr.Dropdown(service.models.names, value=d.model, label="Model",
                            elem_id="model"),
                gr.Dropdown(list(PRESETS), value=d.preset, label="Preset", elem_id="preset"),
                gr.Dropdown(["auto", *RUNTIMES], value=s.runtime, label="Runtime",
                            elem_id="runtime"),
                gr.Dropdown(list(PRECISIONS), value=d.precision, label="Precision",
                            elem_id="precision"),
                gr.Textbox("", label="Scales", placeholder="the preset's; e.g. 1.0 or 0.5,1,2",
                           elem_id="scales"),
                gr.Checkbox(False, label="Hands", elem_id="hands",
                            info="OpenPose's hand network (21 keypoints a hand)"),
                gr.Checkbox(False, label="Face", elem_id="face",
                            info="OpenPose's face network (70 keypoints)"),
            ]
        with gr.Tab("Image"):
            with gr.Row():
                image = gr.Image(sources=["upload", "clipboard"], label="Image",
                                 elem_id="input-image")
                drawn = gr.Image(label="People", format="png", interactive=False,
                                 elem_id="drawn-image")
            button = gr.Button("Find people", variant="primary", elem_id="run")
            summary = gr.Markdown(elem_id="summary")
            download = gr.HTML(elem_id="download")
            with gr.Row():
                timings = gr.Dataframe(headers=["stage", "ms"], label="Time per stage",
                                       interactive=False, elem_id="timings")
                people = gr.JSON(label="People (OpenPose JSON)", elem_id="people")
            button.click(page.image, [image, *settings],
                         [drawn, summary, timings, people, download], api_name="pose",
                         concurrency_limit=s.workers)
        with gr.Tab("Webcam"):
            with gr.Row():
                camera = gr.Image(sources=["webcam"], streaming=True, label="Webcam",
                                  elem_id="webcam")
                camera_drawn = gr.Image(label="People", elem_id="webcam-drawn")
            camera_summary = gr.Markdown(elem_id="webcam-summary")
            camera.stream(page.webcam, [camera, *settings], [camera_drawn, camera_summary],
                          stream_every=WEBCAM_EVERY_S, concurrency_limit=1, api_name=False)
        with gr.Tab("Video"):
            with gr.Row():
                video = gr.Video(sources=["upload"], label="Video", elem_id="input-video")
                video_drawn = gr.Video(label="People", interactive=False,
                                       elem_id="drawn-video")
            video_button = gr.Button("Process the video", elem_id="run-video")
            video_summary = gr.Markdown()
            video_download = gr.HTML()
            video_button.click(page.video, [video, *settings],
                               [video_drawn, video_summary, video_download], api_name="video",
                               concurrency_limit=1)
    # Gradio's own queue in front of the service's, bounded too: beyond it, "queue full".
    return blocks.queue(max_size=s.queue_size)


def mount_page(app: FastAPI, service: Service) -> FastAPI:
    """``app`` with the page at ``/`` (the token, if any, is its password)."""
    token = service.settings.token
    auth = None
    if token is not None:
        import secrets

        def auth(user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), token.encode())

    return gr.mount_gradio_app(
        app, build_page(service), path="/", auth=auth, show_error=False,
        max_file_size=f"{service.settings.max_upload_mb:g}mb", footer_links=["api"],
        auth_message="The password is the server's token.")
