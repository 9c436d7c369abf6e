"""The web application: the HTTP API under ``/v1`` and the page at ``/``, in one FastAPI app.

    POST /v1/pose?model=&runtime=&precision=&preset=&scales=&flip=&refine=&hands=&face=
         body: the image file's bytes, raw or as the multipart field ``image``
         200: OpenPose JSON {"version": 1.3, "people": [...]} + "timings" (s per stage), the
              settings used and the image's "width" and "height"; with ``hands``/``face``
              each person also has hand_left/right_keypoints_2d (63) / face_keypoints_2d (210)
    POST /v1/draw     the same, answered with the people drawn on the image (PNG): the body as
                      the original demo draws it, hands and face as ControlNet draws them
    GET  /v1/health   the queue's state (no token needed)
    GET  /v1/models   the model names, runtimes, precisions, presets, defaults, what is loaded
    GET  /openapi.json, /docs    the schema, and its page

Every refusal is a status with one line, ``{"detail": "..."}``: 400 unknown parameter, bad
value, not an image or a truncated one; 401 no or wrong ``Authorization: Bearer`` (when the
server has a token); 413 a body larger than ``max_upload_mb`` or an image of more than
``max_image_pixels``; 422 an image the network cannot take at these settings, or hands/face
asked of a server without their weights (the line says how to get them); 503 the queue is
full (with ``Retry-After``); 504 the time limit passed. The answers name no file of the server
and hold no traceback (the server's log has the cause of a 500).

Requests of the API and the page share one ``Service``: the models (each network loaded once)
and the bounded ``Engine`` that runs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from rtpose.config import PRESETS
from rtpose.draw import draw_people
from rtpose.errors import RtposeError
from rtpose.people import People
from rtpose.pipeline import PoseResult
from rtpose.runtime import PRECISIONS, RUNTIMES
from rtpose.serve.engine import Engine, Job
from rtpose.serve.models import Models, PoseRequest, parse_request_scales
from rtpose.stream.images import decode_image, image_size
from rtpose.wholebody import draw_hands_face

LOG = logging.getLogger("rtpose.serve")
MB = 1 << 20
MULTIPART_SLACK = 64 << 10  # bytes of multipart framing allowed beyond the image's
WARM_UP_SHAPE = (184, 184, 3)
QUERY = ("model", "runtime", "precision", "preset", "scales", "flip", "refine", "hands", "face")


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs. ``models``: name → weights file; the request defaults; the
    engine's ``workers`` and ``queue_size``; each request's ``timeout_s`` (from its
    acceptance to its answer); the body and image limits; ``token``: required as
    ``Authorization: Bearer`` on the API (and as the page's password) when set; ``threads``:
    the networks' CPU threads (default all cores); ``page``: serve the page at ``/``;
    ``preload``: load the default network before serving."""

    models: dict[str, Path]
    default_model: str
    runtime: str = "auto"
    precision: str = "fp32"
    preset: str = "original"
    workers: int = 2
    queue_size: int = 8
    timeout_s: float = 30.0
    max_upload_mb: float = 20.0
    max_image_pixels: int = 40_000_000
    max_video_frames: int = 300
    token: str | None = None
    threads: int | None = None
    page: bool = True
    preload: bool = True

    @property
    def hint(self) -> str:
        """OpenVINO's hint: ``throughput`` (one stream per worker) with several workers."""
        return "throughput" if self.workers > 1 else "latency"


def draw(image: np.ndarray, people: People, peaks: list[np.ndarray] | None) -> np.ndarray:
    """The people on a BGR copy of ``image``: the body (and every heatmap peak) as the original
    demo draws it, hands and face (where found) as ControlNet draws them."""
    return draw_hands_face(draw_people(image, people, peaks), people)


class RequestError(Exception):
    """A refusal: HTTP ``status`` and one line; ``headers`` to add (``Retry-After``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


@dataclass(frozen=True, eq=False)
class Answer:
    """A request's result, the seconds it waited in the queue and the image's (H, W)."""

    request: PoseRequest
    result: PoseResult
    queued_s: float
    image_shape: tuple[int, int]

    def draw_png(self, image: np.ndarray) -> bytes:
        """The people drawn on ``image`` (``draw``), PNG-encoded."""
        result = self.result
        return cv2.imencode(".png", draw(image, result.people, result.peaks))[1].tobytes()

    def to_json(self) -> dict[str, Any]:
        """OpenPose JSON plus the settings used, the image size and the stage timings."""
        t = self.result.timings
        return {
            **self.result.people.to_openpose_json(),
            "model": self.request.model, "runtime": self.request.runtime,
            "precision": self.request.precision, "preset": self.request.preset,
            "hands": self.request.hands, "face": self.request.face,
            "width": self.image_shape[1], "height": self.image_shape[0],
            "timings": {"queue_s": self.queued_s, "network_s": t.network_s,
                        "maps_s": t.maps_s, "peaks_s": t.peaks_s,
                        "association_s": t.association_s, "total_s": self.queued_s + t.total_s},
        }


class Service:
    """The models and the engine, shared by the API and the page."""

    def __init__(self, settings: ServeSettings, models: Models | None = None) -> None:
        self.settings = settings
        self.models = models or Models(settings.models, settings.hint, settings.threads)
        self.defaults = self.models.check(PoseRequest(
            settings.default_model, settings.runtime, settings.precision, settings.preset))
        self.engine = Engine(self._run, settings.workers, settings.queue_size)

    def preload(self) -> None:
        """Load the default network and run it once (a small grey picture at one scale), so
        that the first request waits for neither."""
        warm_up = dataclasses.replace(self.defaults, scales=(1.0,))
        self.models.pipeline(warm_up).run(np.full(WARM_UP_SHAPE, 128, np.uint8))

    def _run(self, task: tuple[PoseRequest, np.ndarray]) -> PoseResult:
        request, image = task
        return self.models.pipeline(request).run(image)

    def request(self, **given: Any) -> PoseRequest:
        """A checked ``PoseRequest``: the defaults overridden by the non-None ``given``."""
        d = self.defaults
        values = {"model": d.model, "runtime": self.settings.runtime,
                  "precision": d.precision, "preset": d.preset}
        values.update({k: v for k, v in given.items() if v is not None})
        if isinstance(values.get("scales"), str):
            values["scales"] = parse_request_scales(values["scales"])
        try:
            return self.models.check(PoseRequest(**values))
        except RtposeError as error:
            raise RequestError(400, str(error)) from None

    def check_pixels(self, width: int, height: int) -> None:
        limit = self.settings.max_image_pixels
        if width * height > limit:
            raise RequestError(413, f"too many pixels: {width}x{height} is more than this "
                                    f"server's {limit:,}")

    def decode(self, data: bytes) -> np.ndarray:
        """The image of an upload, its size checked from its header before it is decoded."""
        if len(data) > self.settings.max_upload_mb * MB:
            raise RequestError(413, f"too large: {len(data):,} bytes, more than this server's "
                                    f"{self.settings.max_upload_mb:g} MB")
        size = image_size(data)  # from the header alone: nothing decoded yet
        if size is not None:
            self.check_pixels(*size)
        try:
            image = decode_image(data)
        except RtposeError as error:
            raise RequestError(400, str(error)) from None
        self.check_pixels(image.shape[1], image.shape[0])
        return image

    def submit(self, request: PoseRequest, image: np.ndarray) -> Job:
        """The accepted job, or a 503 ``RequestError`` with ``Retry-After``."""
        job = self.engine.submit((request, image))
        if job is None:
            wait = self.engine.retry_after_s()
            raise RequestError(503, f"busy: {self.engine.capacity} requests in hand, retry "
                                    f"in {wait} s", {"Retry-After": str(wait)})
        return job

    def answer(self, job: Job, request: PoseRequest, image: np.ndarray) -> Answer:
        """The job's result as an ``Answer`` (its future done), or a ``RequestError``."""
        try:
            result = job.future.result(timeout=0)
        except RtposeError as error:
            raise RequestError(422, str(error)) from None
        except Exception:
            LOG.exception("request failed")
            raise RequestError(500, "internal error (see the server's log)") from None
        return Answer(request, result, job.queued_s, image.shape[:2])

    def run_blocking(self, request: PoseRequest, image: np.ndarray) -> Answer:
        """Submit and wait, with the time limit (the page's way in; it runs in a thread)."""
        job = self.submit(request, image)
        try:
            job.future.result(timeout=self.settings.timeout_s)
        except TimeoutError:
            job.future.cancel()
            raise RequestError(504, f"no answer within {self.settings.timeout_s:g} s") from None
        except Exception:
            pass  # answer() reports it
        return self.answer(job, request, image)

    def close(self) -> None:
        self.engine.close()



def _error(error: RequestError) -> JSONResponse:
    return JSONResponse({"detail": error.detail}, error.status, error.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    too_large = RequestError(413, f"too large: the body passes this server's "
                                  f"{limit / MB:g} MB")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, limit: int) -> bytes:
    """The image's bytes: the multipart field ``image`` (or the only file), else the body."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    body = await _read_body(request, limit + (MULTIPART_SLACK if multipart else 0))
    if not multipart:
        if not body:
            raise RequestError(400, "no image: send its bytes as the body or as the multipart "
                                    "field 'image'")
        return body

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except HTTPException as error:
        raise RequestError(400, f"bad multipart body: {error.detail}") from None
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        upload = form.get("image") if isinstance(form.get("image"), UploadFile) else None
        upload = upload or (files[0] if files else None)
        if upload is None:
            raise RequestError(400, "no image: the multipart body has no file field 'image'")
        return await upload.read()
    finally:
        await form.close()


def create_app(settings: ServeSettings, service: Service | None = None) -> FastAPI:
    """The FastAPI app: the API, and the page (``settings.page``; needs Gradio) at ``/``."""
    service = service or Service(settings)
    if settings.preload:
        service.preload()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()  # the server has answered every request it accepted

    app = FastAPI(title="rtpose", version="1",
                  description="Multi-person 2D pose estimation (CMU OpenPose body model).",
                  lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return _error(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        name = first["loc"][-1] if first.get("loc") else "request"
        return JSONResponse({"detail": f"{name}: {first['msg']}"}, 400)

    def authorised(request: Request) -> None:
        _check_token(settings.token, request.headers.get("authorization", ""))

    body_schema = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string",
                                                                    "format": "binary"}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
    }}}

    def pose_settings(
        model: str | None = Query(None, description=f"one of /v1/models (default "
                                                     f"{service.defaults.model})"),
        runtime: str | None = Query(None, description=f"auto, {', '.join(RUNTIMES)}"),
        precision: str | None = Query(None, description=", ".join(PRECISIONS)),
        preset: str | None = Query(None, description=", ".join(PRESETS)),
        scales: str | None = Query(None, description="comma-separated, e.g. 1.0 or 0.5,1"),
        flip: bool | None = Query(None, description="also the mirrored image"),
        refine: bool | None = Query(None, description="sub-pixel keypoints"),
        hands: bool | None = Query(None, description="also the hands (21 keypoints each)"),
        face: bool | None = Query(None, description="also the face (70 keypoints)"),
    ) -> dict[str, Any]:
        return {"model": model, "runtime": runtime, "precision": precision, "preset": preset,
                "scales": scales, "flip": flip, "refine": refine, "hands": hands, "face": face}

    async def answered(request: Request, given: dict[str, Any]) -> tuple[Answer, np.ndarray]:
        """The answer to a request of /v1/pose or /v1/draw, and its image."""
        unknown = sorted(set(request.query_params) - set(QUERY))
        if unknown:
            raise RequestError(400, f"unknown parameter {unknown[0]!r}; known: "
                                    f"{', '.join(QUERY)}")
        try:
            asked = service.request(**given)
        except RtposeError as error:
            raise RequestError(400, str(error)) from None
        limit = int(settings.max_upload_mb * MB)
        data = await _image_bytes(request, limit)
        image = await asyncio.to_thread(service.decode, data)
        job = service.submit(asked, image)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)),
                                   settings.timeout_s)
        except TimeoutError:
            job.future.cancel()
            raise RequestError(504, f"no answer within {settings.timeout_s:g} s") from None
        except Exception:
            pass  # answer() reports it
        return service.answer(job, asked, image), image

    @app.post("/v1/pose", dependencies=[Depends(authorised)], openapi_extra=body_schema,
              summary="The people in an image, as OpenPose JSON with timings")
    async def pose(request: Request,
                   given: dict = Depends(pose_settings)) -> JSONResponse:  # noqa: B008
        answer, _ = await answered(request, given)
        return JSONResponse(answer.to_json())

    @app.post("/v1/draw", dependencies=[Depends(authorised)], openapi_extra=body_schema,
              response_class=Response, responses={200: {"content": {"image/png": {}}}},
              summary="The people drawn on the image, as PNG")
    async def drawn(request: Request,
                    given: dict = Depends(pose_settings)) -> Response:  # noqa: B008
        answer, image = await answered(request, given)
        png = await asyncio.to_thread(answer.draw_png, image)
        return Response(png, media_type="image/png")

    @app.get("/v1/health", summary="The queue's state")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queue": service.engine.stats(),
                "loaded": service.models.loaded()}

    @app.get("/v1/models", dependencies=[Depends(authorised)],
             summary="What a request may ask for")
    async def models() -> dict[str, Any]:
        d = service.defaults
        return {"models": service.models.names, "runtimes": ["auto", *RUNTIMES],
                "precisions": list(PRECISIONS), "presets": list(PRESETS),
                "defaults": {"model": d.model, "runtime": settings.runtime,
                             "precision": d.precision, "preset": d.preset},
                "loaded": service.models.loaded()}

    if settings.page:
        from rtpose.serve.page import mount_page

        app = mount_page(app, service)
    return app


def _check_token(token: str | None, header: str) -> None:
    if token is None:
        return
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(),
                                                                token.encode()):
        raise RequestError(401, "unauthorised: send Authorization: Bearer <token>",
                           {"WWW-Authenticate": "Bearer"})
