"""Frames from a camera, a video file or image files, behind one iterator.

    with open_source(video=Path("clip.mp4")) as source:
        for index, timestamp_s, image in source:  # image: BGR uint8 (H, W, 3)
            ...

Timestamps: a video file's presentation time of the frame; a camera's seconds since the source
was opened, taken when the frame is read; 0 for image files. A camera is ``live``: its frames
keep coming whether or not they are consumed, so a real-time consumer drops the stale ones. A
file's frames are all yielded, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from rtpose.errors import RtposeError
from rtpose.stream.images import read_image

DEFAULT_CAMERA_FPS = 30.0


class Frame(NamedTuple):
    index: int
    timestamp_s: float
    image: np.ndarray


class FrameSource:
    """An opened source of frames; iterate it once, then ``close`` it (or use ``with``).

    ``name``: what it reads, for messages. ``live``: a camera. ``fps``: the nominal frame rate
    (a camera that does not report one gets ``DEFAULT_CAMERA_FPS``; 0 for image files).
    ``size``: (width, height) of the first frame. ``frame_count``: a video file's frame count
    as its header states it; None for a camera.
    """

    def __init__(
        self,
        name: str,
        frames: Iterator[tuple[float, np.ndarray]],
        *,
        live: bool,
        fps: float,
        frame_count: int | None,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.live = live
        self.fps = fps
        self.frame_count = frame_count
        self._release = release
        # Read the first frame now: a source that opens but yields nothing is an error here.
        first = next(frames, None)
        if first is None:
            release()
            raise RtposeError(f"cannot read a frame from {name}")
        self.size = (first[1].shape[1], first[1].shape[0])
        self._frames = _prepend(first, frames)

    def __iter__(self) -> Iterator[Frame]:
        for index, (timestamp_s, image) in enumerate(self._frames):
            yield Frame(index, timestamp_s, image)

    def close(self) -> None:
        self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _prepend(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def open_source(
    camera: int | None = None,
    video: str | Path | None = None,
    images: Sequence[str | Path] | None = None,
) -> FrameSource:
    """Open exactly one of a camera index, a video file, or a list of image files.

    Raises ``RtposeError`` with a one-line message when the camera does not open, or the video
    or an image cannot be read (checked by reading the first frame).
    """
    given = [x is not None for x in (camera, video, images)]
    if sum(given) != 1:
        raise RtposeError("give exactly one frame source: a camera, a video or images")
    if camera is not None:
        return open_camera(camera)
    if video is not None:
        return open_video(video)
    return open_images(images)


def open_camera(index: int) -> FrameSource:
    """A live camera, ``cv2.VideoCapture(index)``."""
    # OpenCV warns on stderr for a missing camera; the error below says it in one line.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        capture.release()
        raise RtposeError(f"cannot open camera {index} (is it connected and free?)")
    start = time.perf_counter()

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield time.perf_counter() - start, image

    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_CAMERA_FPS
    return FrameSource(f"camera {index}", frames(), live=True, fps=fps, frame_count=None,
                       release=capture.release)


def open_video(path: str | Path) -> FrameSource:
    """A video file, every frame in order."""
    path = Path(path)
    if not path.is_file():
        raise RtposeError(f"cannot read video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise RtposeError(f"cannot read video {path}: not a video OpenCV can decode")

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield capture.get(cv2.CAP_PROP_POS_MSEC) / 1000, image

    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return FrameSource(f"video {path}", frames(), live=False, fps=fps, frame_count=count,
                       release=capture.release)


def open_images(paths: Sequence[str | Path]) -> FrameSource:
    """Image files, in the given order; each is read when its turn comes."""
    if not paths:
        raise RtposeError("no image files given")
    frames = ((0.0, read_image(path)) for path in paths)
    return FrameSource(f"images {paths[0]}...", frames, live=False, fps=0.0,
                       frame_count=len(paths))
