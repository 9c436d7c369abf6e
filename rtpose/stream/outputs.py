"""Outputs of a stream of processed frames: annotated video, JSON lines, a window, progress.

Each is a context manager with ``write(frame, result, drawn)`` (``rtpose.stream.Output``);
``draws`` says whether it needs the drawn frame (``drawn`` is None otherwise, and the stream
draws nothing when no output needs it). Files are written under a temporary name beside the
destination and renamed into place when the ``with`` block ends (normally, on an error, on
Ctrl+C or on SIGTERM), so a killed run never leaves a file that looks complete; the next run
removes the temporaries a killed one left there. A failed write (a full disk) is an
``RtposeError``, never a success: the video is read back before it is renamed into place, since
OpenCV's video writer reports nothing (on a full disk it leaves a file without an index, from
which no frame decodes).

JSON lines: one object per processed frame, written and flushed as it comes::

    {"frame": 0, "timestamp": 0.0, "people": [{"pose_keypoints_2d": [x0, y0, c0, ...],
                                               "score": 25.1, "part_count": 17}]}

``people`` is the OpenPose form of ``rtpose.people.People.to_openpose_json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from rtpose.errors import RtposeError
from rtpose.files import remove_stale_temporaries, temporary_name
from rtpose.stream.images import FULL_DISK, write_failure
from rtpose.stream.sources import Frame, FrameSource, opencv_path
from rtpose.stream.stream import StopStream

if TYPE_CHECKING:
    from rtpose.pipeline import PoseResult

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc
FULL_DISK_BYTES = 1 << 20  # a written video that does not read back, with less free: a full disk


class VideoOutput:
    """The drawn frames as an MP4 video (``mp4v``) at the source's frame rate and size.

    The video keeps the source's timing: when a live source dropped frames before this one,
    this one is written once for each of them too.
    """

    draws = True

    def __init__(self, path: str | Path, source: FrameSource) -> None:
        self.path = Path(path)
        # OpenCV is given an ASCII temporary name (and an alias of a folder whose name is not
        # UTF-8: opencv_path); the final name is Python's rename.
        self._partial = _temporary(self.path.with_name(f"video{self.path.suffix}"))
        self._alias = ExitStack()
        name = self._alias.enter_context(opencv_path(self._partial))
        fps = source.fps if source.fps > 0 else 1.0
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self._writer = cv2.VideoWriter(name, fourcc, fps, source.size)
        if not self._writer.isOpened():
            self._alias.close()
            self._partial.unlink(missing_ok=True)
            folder = self.path.parent
            reason = (f"no folder {folder}" if not folder.is_dir() else
                      FULL_DISK if _disk_full(folder) else
                      f"OpenCV cannot write a {self.path.suffix or 'no-extension'} video (use "
                      ".mp4)")
            raise RtposeError(f"cannot write video {self.path}: {reason}")
        self.size = source.size
        self.frames = 0  # written, repeats included
        self._last_index: int | None = None

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray) -> None:
        if (drawn.shape[1], drawn.shape[0]) != self.size:
            drawn = cv2.resize(drawn, self.size, interpolation=cv2.INTER_AREA)
        gap = 1 if self._last_index is None else max(frame.index - self._last_index, 1)
        self._last_index = frame.index
        for _ in range(gap):
            self._writer.write(drawn)
        self.frames += gap

    def close(self, failing: bool = False) -> None:
        """Finish the file and rename it into place once it reads back as a video of the
        frames written (a video of no frame is not read back); else remove it and, unless
        ``failing`` (another error is on its way), raise ``RtposeError`` saying why."""
        self._writer.release()
        self._alias.close()
        problem = self._problem() if self.frames else None
        if problem is None:
            _finish(self._partial, self.path)
            return
        self._partial.unlink(missing_ok=True)
        if not failing:
            raise RtposeError(f"cannot write video {self.path}: {problem}")

    def _problem(self) -> str | None:
        """What is wrong with the finished temporary file, or None."""
        with opencv_path(self._partial) as name:
            capture = cv2.VideoCapture(name)
            try:
                count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
                readable = count > 0 and capture.read()[0]
            finally:
                capture.release()
        if readable and count == self.frames:
            return None
        if _disk_full(self._partial.parent):
            return FULL_DISK
        return (f"the file written does not read back as a video of {self.frames} frames "
                f"(it has {count})")

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(failing=exc_type is not None)


class JsonLinesOutput:
    """The people of each frame as one JSON line (see the module docstring)."""

    draws = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._partial = _temporary(self.path)
        self._failed = False
        try:
            self._file: IO[str] = open(self._partial, "w", encoding="utf-8")
        except OSError as e:
            raise RtposeError(f"cannot write {self.path}: {write_failure(e)}") from e

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray | None) -> None:
        line = {
            "frame": frame.index,
            "timestamp": round(frame.timestamp_s, 6),
            "people": result.people.to_openpose_json()["people"],
        }
        try:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()
        except OSError as e:
            self._failed = True
            raise RtposeError(f"cannot write {self.path}: {write_failure(e)}") from e

    def close(self, failing: bool = False) -> None:
        """Rename the file into place; a file whose write failed (its last line may be cut) is
        removed instead and, unless ``failing`` (another error is on its way), so said."""
        try:
            self._file.close()
        except OSError as e:
            if not self._failed:
                self._failed = True
                if not failing:
                    self._partial.unlink(missing_ok=True)
                    raise RtposeError(f"cannot write {self.path}: {write_failure(e)}") from e
        if self._failed:
            self._partial.unlink(missing_ok=True)
            return
        _finish(self._partial, self.path)

    def __enter__(self) -> JsonLinesOutput:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(failing=exc_type is not None)


def _disk_full(folder: Path) -> bool:
    """Whether ``folder``'s disk has less than ``FULL_DISK_BYTES`` free (the reason a video
    writer, which reports nothing, failed)."""
    return shutil.disk_usage(folder).free < FULL_DISK_BYTES


def _temporary(path: Path) -> Path:
    """A temporary name beside ``path``, once the temporaries of killed runs there are gone."""
    remove_stale_temporaries(path.parent)
    return temporary_name(path)


def _finish(partial: Path, path: Path) -> None:
    try:
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise RtposeError(f"cannot write {path}: {write_failure(e)}") from e


def read_json_lines(path: str | Path) -> list[dict]:
    """The frames written by ``JsonLinesOutput``, in order."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def has_display() -> bool:
    """Whether a window can be shown: on Linux, an X11 or Wayland display must be set."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """Shows each drawn frame; q, Esc or closing the window raises ``StopStream``.

    Open it only when ``has_display()``; an OpenCV built without GUI support (the
    ``opencv-python-headless`` wheel) raises ``RtposeError`` here.
    """

    def __init__(self, title: str = "rtpose") -> None:
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise RtposeError("cannot open a window: this OpenCV has no GUI support (use "
                              "--no-display, or install opencv-python)") from e

    draws = True

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray) -> None:
        cv2.imshow(self.title, drawn)
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopStream  # q, Esc, or the window was closed

    def close(self) -> None:
        cv2.destroyAllWindows()

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ProgressOutput:
    """A tqdm progress bar of the frames processed (out of a video file's frame count)."""

    def __init__(self, source: FrameSource) -> None:
        total = None if source.live else source.frame_count
        self._bar = tqdm(total=total, unit="frame", desc=source.name, leave=False)

    draws = False

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray | None) -> None:
        self._bar.update()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ProgressOutput:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
