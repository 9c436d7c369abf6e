"""Frames from a camera, a video file or image files, behind one iterator.

    with open_source(video=Path("clip.mp4")) as source:
        for index, timestamp_s, image in source:  # image: BGR uint8 (H, W, 3)
            ...

Timestamps: a video file's presentation time of the frame; a camera's seconds since the source
was opened, taken when the frame is read; 0 for image files. A camera is ``live``: its frames
keep coming whether or not they are consumed, so a real-time consumer drops the stale ones. A
file's frames are all yielded, in order.

OpenCV crashes (SIGSEGV) on a file name that is not UTF-8 (a Latin-1 byte such as 0xe9):
``opencv_path`` gives it such a file under an ASCII alias. A video whose frames are larger than
``max_pixels`` (its header says so) is refused before a frame is decoded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from rtpose.errors import RtposeError
from rtpose.stream.images import MAX_IMAGE_PIXELS, check_input_file, read_image

DEFAULT_CAMERA_FPS = 30.0
# A video that decodes fewer frames than its header states is truncated or corrupt, but some
# containers (Matroska, WebM) only estimate the count from the duration: a shortfall of up to
# FRAME_COUNT_SLACK frames passes, up to FRAME_COUNT_TOLERANCE of the count is a warning, more
# an error (demo_camera.py; a failed input in extract_poses.py).
FRAME_COUNT_SLACK = 1
FRAME_COUNT_TOLERANCE = 0.02


class Frame(NamedTuple):
    index: int
    timestamp_s: float
    image: np.ndarray


class FrameSource:
    """An opened source of frames; iterate it once, then ``close`` it (or use ``with``).

    ``name``: what it reads, for messages. ``live``: a camera. ``fps``: the nominal frame rate
    (a camera that does not report one gets ``DEFAULT_CAMERA_FPS``; 0 for image files).
    ``size``: (width, height) of the first frame. ``frame_count``: a video file's frame count
    as its header states it; None for a camera. ``decoded``: the frames read so far, skipped
    ones included. ``frames`` yields (timestamp, image) pairs, image None for a frame read but
    skipped (``open_video``'s ``every``).
    """

    def __init__(
        self,
        name: str,
        frames: Iterator[tuple[float, np.ndarray | None]],
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
        self.decoded = 1
        self._first, self._frames = first, frames

    def __iter__(self) -> Iterator[Frame]:
        first, self._first = self._first, None  # not held while the rest is read
        yield Frame(0, *first)
        index = 1
        for timestamp_s, image in self._frames:
            self.decoded += 1
            if image is not None:
                yield Frame(index, timestamp_s, image)
                index += 1

    def shortfall(self) -> tuple[str, bool] | None:
        """Once a file was read to its end: when it decoded more than ``FRAME_COUNT_SLACK``
        frames fewer than its header states, what happened in words and whether it is more
        than ``FRAME_COUNT_TOLERANCE`` of them (a truncated or corrupt file); else None."""
        stated = self.frame_count or 0
        missing = stated - self.decoded
        if self.live or missing <= FRAME_COUNT_SLACK:
            return None
        return (f"decoding of {self.name} stopped after {self.decoded} of the {stated} frames its "
                "header states (truncated or corrupt)",
                missing > FRAME_COUNT_TOLERANCE * stated)

    def close(self) -> None:
        self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_source(
    camera: int | None = None,
    video: str | Path | None = None,
    images: Sequence[str | Path] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> FrameSource:
    """Open exactly one of a camera index, a video file, or a list of image files; a video or
    image larger than ``max_pixels`` pixels (None: no bound) is refused.

    Raises ``RtposeError`` with a one-line message when the camera does not open, or the video
    or an image cannot be read (checked by reading the first frame).
    """
    given = [x is not None for x in (camera, video, images)]
    if sum(given) != 1:
        raise RtposeError("give exactly one frame source: a camera, a video or images")
    if camera is not None:
        return open_camera(camera)
    if video is not None:
        return open_video(video, max_pixels)
    return open_images(images, max_pixels)


@contextmanager
def opencv_path(path: str | Path) -> Iterator[str]:
    """A name of ``path`` that OpenCV's file functions take safely: ``str(path)`` when it is
    valid UTF-8; else a symbolic link with an ASCII name in a temporary folder, to ``path``
    itself, or to its folder when only the folder's name is not UTF-8 (so that a file may be
    created there). The link is removed when the block ends."""
    path = Path(path)
    if _utf8(str(path)):
        yield str(path)
        return
    folder = tempfile.mkdtemp(prefix="rtpose-path-")
    try:
        if _utf8(path.name):
            os.symlink(path.parent.absolute(), os.path.join(folder, "folder"))
            yield os.path.join(folder, "folder", path.name)
        else:
            suffix = path.suffix if _utf8(path.suffix) else ""
            link = os.path.join(folder, f"file{suffix}")
            os.symlink(path.absolute(), link)
            yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a byte that is not UTF-8, as os.fsdecode escapes it
        return False
    return True


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


def open_video(path: str | Path, max_pixels: int | None = MAX_IMAGE_PIXELS,
               every: int = 1) -> FrameSource:
    """A video file's every ``every``-th frame, in order (the others are skipped without being
    converted); frames larger than ``max_pixels`` pixels (None: no bound) are refused before
    one is decoded. ``RtposeError`` (one line) as ``open_capture``, or when no frame decodes."""
    capture = open_capture(path, max_pixels)

    def frames() -> Iterator[tuple[float, np.ndarray | None]]:
        read = 0
        while True:
            if read % every == 0:
                ok, image = capture.read()
            else:
                ok, image = capture.grab(), None
            if not ok:
                return
            read += 1
            yield (0.0 if image is None else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000), image

    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    try:
        return FrameSource(f"video {path}", frames(), live=False, fps=fps,
                           frame_count=max(count, 0), release=capture.release)
    except RtposeError:
        raise RtposeError(f"cannot read video {path}: no frame could be decoded (empty, "
                          "corrupt, or a codec OpenCV lacks)") from None


def open_capture(path: str | Path,
                 max_pixels: int | None = MAX_IMAGE_PIXELS) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of a video file, opened: ``RtposeError`` (one line) when the file is
    missing, not a regular file (a FIFO would block), unreadable, not a video OpenCV can decode,
    or of frames over ``max_pixels`` pixels (None: no bound). Safe on names that are not
    UTF-8."""
    path = check_input_file(path, "video")
    with opencv_path(path) as name:
        capture = cv2.VideoCapture(name)  # FFmpeg holds the file open: the alias may go
    if not capture.isOpened():
        capture.release()
        raise RtposeError(f"cannot read video {path}: not a video OpenCV can decode")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if max_pixels is not None and width * height > max_pixels:
        capture.release()
        raise RtposeError(f"cannot read video {path}: its {width} x {height} frames are more "
                          f"than the limit of {max_pixels:,} pixels (--max-image-pixels)")
    return capture


def open_images(paths: Sequence[str | Path],
                max_pixels: int | None = MAX_IMAGE_PIXELS) -> FrameSource:
    """Image files, in the given order; each is read when its turn comes."""
    if not paths:
        raise RtposeError("no image files given")
    frames = ((0.0, read_image(path, max_pixels=max_pixels)) for path in paths)
    return FrameSource(f"images {paths[0]}...", frames, live=False, fps=0.0,
                       frame_count=len(paths))
