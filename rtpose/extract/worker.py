"""One worker: the model loaded once, then input after input through the pipelined stream.

``Worker(factory, settings, threads)`` limits the process's CPU threads (TensorFlow's intra-
and inter-op pools, OpenMP and BLAS, OpenCV) to ``threads`` before the model loads, builds the
pipeline with ``factory(threads)`` and opens the output store. ``Worker.process(item)`` runs
``rtpose.stream.run_stream`` on one input (capture, network and decoding overlap), hands every
processed frame to the format's writers, and publishes the outputs only once the input is
complete. It never raises for a bad input: the ``Result`` says ``failed`` with a one-line
reason, or ``stopped`` when ``should_stop()`` became true (then nothing was published).

Both engines run this class: the local one in spawned processes, the Ray one as actors.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rtpose.errors import RtposeError, first_line
from rtpose.extract.datasets import DatasetOptions
from rtpose.extract.inputs import Item
from rtpose.extract.store import open_store
from rtpose.extract.writers import Writer, make_writers
from rtpose.stream.images import read_image
from rtpose.stream.sources import (
    FRAME_COUNT_SLACK,
    FRAME_COUNT_TOLERANCE,
    Frame,
    FrameSource,
    open_video,
)
from rtpose.stream.stream import StopStream, run_stream

if TYPE_CHECKING:
    from rtpose.pipeline import PosePipeline, PoseResult

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclass(frozen=True)
class Settings:
    """What a run's outputs depend on, besides the model: the output folder or URL, the format
    (``rtpose.extract.writers.FORMATS``), every how many frames, at most how many frames per
    input, and whether to render the skeletons; the largest image or video frame read, in
    pixels (a larger input fails before it is decoded; None: no limit); whether to track the
    people of videos (person IDs), and the dataset formats' and offline smoothing's options."""

    output: str
    format: str
    every: int = 1
    max_frames: int | None = None
    render: bool = False
    max_image_pixels: int | None = None
    track: bool = True
    options: DatasetOptions = DatasetOptions()


@dataclass(frozen=True)
class Result:
    """What became of one input: ``status`` ``done``, ``failed`` (``reason``, one line) or
    ``stopped`` (the run was stopped first); frames processed, people found, seconds taken,
    warnings (e.g. a truncated JPEG, read in part)."""

    name: str
    status: str
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def limit_threads(threads: int) -> None:
    """Give this process ``threads`` CPU threads: set before TensorFlow or onnxruntime start
    (the environment variables are read when their thread pools are made)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    cv2.setNumThreads(threads)


class Worker:
    """The pipeline, loaded once, and the store; ``process`` runs one input."""

    def __init__(self, factory: bytes, settings: Settings, threads: int) -> None:
        limit_threads(threads)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # errors are told in one line
        self.settings = settings
        self.pipeline: PosePipeline = pickle.loads(factory)(threads)
        self.store = open_store(settings.output)
        if settings.track:  # the tracker's matching, loaded with the model, not in an input
            import scipy.optimize  # noqa: F401

    def process(
        self,
        item: Item,
        should_stop: Callable[[], bool] = lambda: False,
        on_frame: Callable[[], None] = lambda: None,
    ) -> Result:
        """Run ``item`` through the pipeline into its outputs; see the module docstring.
        ``should_stop`` is asked after every frame, ``on_frame`` told of every frame."""
        start = time.perf_counter()
        warnings: list[str] = []
        writers: list[Writer] = []

        def result(status: str, frames: int = 0, people: int = 0, reason: str | None = None):
            return Result(item.name, status, frames, people,
                          round(time.perf_counter() - start, 3), reason, tuple(warnings))

        try:
            if item.kind == "unknown":
                raise RtposeError(f"{item.path}: not an image or video file name "
                                  f"(unknown extension {Path(item.path).suffix!r})")
            with open_input(item, self.settings.every, warnings.append,
                            self.settings.max_image_pixels) as source:
                fps = source.fps / self.settings.every if source.fps > 0 else 0.0
                writers = make_writers(self.store, item, self.settings.format,
                                       self.settings.render, fps, source.size,
                                       self.settings.options)
                collect = _Collect(writers, self.settings.every, should_stop, on_frame)
                summary = run_stream(source, self.pipeline, [collect], self.settings.max_frames,
                                     track="auto" if self.settings.track else None)
                if summary.stopped_by in ("user", "interrupt"):
                    _abort(writers)
                    return result("stopped", collect.frames, collect.people)
                if summary.stopped_by is None:
                    _check_frame_count(item, source.frame_count or 0, source.decoded,
                                       warnings.append)
            for writer in writers:
                writer.commit()
            return result("done", collect.frames, collect.people)
        except RtposeError as error:
            _abort(writers)
            return result("failed", reason=first_line(error))
        except OSError as error:  # a full disk, a folder that became read-only, ...
            _abort(writers)
            return result("failed", reason=os_error_reason(error))
        except Exception as error:  # recorded with its type: one input never stops the batch
            _abort(writers)
            return result("failed", reason=f"{type(error).__name__}: {first_line(error)}")


def os_error_reason(error: OSError) -> str:
    """An ``OSError`` in one plain line: ``cannot write /out/a.jsonl: no space left on
    device`` (the path as the user knows it: a temporary's name without its marks)."""
    what = error.strerror or first_line(error)
    what = what[:1].lower() + what[1:]
    filename = error.filename
    if filename is None:
        return f"input/output error: {what}"
    path = Path(os.fsdecode(filename))
    path = path.with_name(re.sub(r"^\.tmp-\d+-[0-9a-f]{8}\.", "", path.name))
    verb = "write" if error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) else "use"
    return f"cannot {verb} {path}: {what}"


def _check_frame_count(item: Item, stated: int, decoded: int,
                       warn: Callable[[str], None]) -> None:
    missing = stated - decoded
    if missing > max(FRAME_COUNT_SLACK, FRAME_COUNT_TOLERANCE * stated):
        raise RtposeError(f"cannot read video {item.path}: decoding stopped after {decoded} "
                          f"of its {stated} frames (truncated or corrupt)")
    if missing > FRAME_COUNT_SLACK:
        warn(f"decoded {decoded} of the {stated} frames its header states")


class _Collect:
    """The stream's output: every processed frame to the writers; stops when asked."""

    draws = False  # the render writer draws without the stream's FPS counter

    def __init__(self, writers: list[Writer], every: int, should_stop, on_frame) -> None:
        self.writers, self.every = writers, every
        self.should_stop, self.on_frame = should_stop, on_frame
        self.frames = self.people = 0

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray | None) -> None:
        index = frame.index * self.every  # the source's frame number
        for writer in self.writers:
            try:
                writer.write(index, frame.timestamp_s, result.people, frame.image, result.peaks)
            except OSError as e:
                raise RtposeError(writer.cannot_write(e)) from e
        self.frames += 1
        self.people += len(result.people)
        self.on_frame()
        if self.should_stop():
            raise StopStream


def _abort(writers: list[Writer]) -> None:
    for writer in writers:
        try:
            writer.abort()
        except OSError:
            pass


def _check_readable(path: Path, kind: str) -> None:
    """``RtposeError`` naming what is wrong when ``path`` is not a non-empty regular file this
    process may read: checked before a decoder, which would say only that it cannot decode
    it (or wait for ever on a FIFO)."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb") as file:
                empty = not file.read(1)
    except FileNotFoundError:
        raise RtposeError(f"cannot read {kind} {path}: no such file") from None
    except OSError as error:
        raise RtposeError(f"cannot read {kind} {path}: "
                          f"{(error.strerror or first_line(error)).lower()}") from None
    if stat.S_ISDIR(mode):
        raise RtposeError(f"cannot read {kind} {path}: a folder")
    if not stat.S_ISREG(mode):
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else (
            "a device")
        raise RtposeError(f"cannot read {kind} {path}: not a regular file ({what})")
    if empty:
        raise RtposeError(f"cannot read {kind} {path}: the file is empty")


def open_input(item: Item, every: int = 1, warn: Callable[[str], None] | None = None,
               max_pixels: int | None = None) -> FrameSource:
    """``item`` as a frame source: an image as one frame, a video's every ``every``-th
    frame (``rtpose.stream.sources.open_video``). Raises ``RtposeError`` (one line) when the
    file cannot be read (missing, not a regular file, not readable, empty, more than
    ``max_pixels`` pixels in an image or frame) or holds no frame."""
    path = Path(item.path)
    _check_readable(path, item.kind)
    if item.kind == "image":
        frames = iter([(0.0, read_image(path, warn, max_pixels))])
        return FrameSource(f"image {path}", frames, live=False, fps=0.0, frame_count=1)
    return open_video(path, max_pixels, every)  # safe on names that are not UTF-8
