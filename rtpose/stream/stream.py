"""Pose estimation on a stream of frames, pipelined so that capture, network and decoding overlap.

Three threads joined by queues of one item::

    capture ──▶ network (PosePipeline.infer or .submit) ──▶ decoding (PosePipeline.decode),
                                                              outputs (the calling thread)

Frames are drawn only when an output needs it (``Output.draws``). OpenCV and the runtimes
release the GIL while they work, so the stages run at the same time: the
camera never waits for the network, and the network never waits for drawing or writing. A live
source (camera) keeps only its newest frame when the network is busy, so the latency stays one
frame deep; a file source blocks instead, so every frame is processed, in order.

With a network that runs asynchronously (``PosePipeline.can_submit``: OpenVINO),
``in_flight=2`` keeps two frames in the network at once: the network stage prepares and submits
the next frame while the previous one runs, and results still come out in frame order. It pays
with OpenVINO's ``throughput`` hint, one inference stream per frame, the two side by side
(``demo_camera.py``'s default): more frames per second, and each frame's latency grows by
about one frame time. On one ``latency`` stream, the second frame only waits its turn.

Tracking (``rtpose.track``) is an option of the stream: ``track="auto"`` (the default) gives
the people of a video or camera person IDs (``People.person_ids``), and leaves image sources
untouched; a ``Tracking`` object chooses its parameters and the One Euro filter; None turns it
off.

    with open_source(video=Path("clip.mp4")) as source, VideoOutput("out.mp4", source) as video:
        summary = run_stream(source, pipeline, [video])
    print(summary.fps, summary.mean_latency_s)
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

import cv2
import numpy as np

from rtpose.draw import draw_people
from rtpose.files import interrupts_deferred
from rtpose.pipeline import PendingInference
from rtpose.stream.sources import Frame, FrameSource

if TYPE_CHECKING:
    from rtpose.pipeline import PosePipeline, PoseResult
    from rtpose.track import Tracking

POLL_S = 0.1  # how often a blocked stage looks at the stop flag
JOIN_TIMEOUT_S = 10.0
FPS_WINDOW = 30  # frames over which the on-screen FPS is measured


class StopStream(Exception):  # noqa: N818 (a request, not an error)
    """Raised by an output to end the stream normally (e.g. q pressed in the window)."""


class Output(Protocol):
    """Where each processed frame goes. ``draws``: whether it needs ``drawn``, the frame with
    skeletons and FPS (None when no output needs it)."""

    draws: bool

    def write(self, frame: Frame, result: PoseResult, drawn: np.ndarray | None) -> None: ...


@dataclass(frozen=True)
class FrameTiming:
    """Per processed frame: ``latency_s`` from the frame's capture (a file's frame: from when
    the network stage takes it, as if a camera had just delivered it; a file is read ahead so
    that the network never waits for the decoder) to its picture drawn (before the outputs
    write it, when one draws); ``network_s`` the network (with resizing and padding);
    ``postprocess_s`` decoding its outputs into people (``PosePipeline.decode``)."""

    index: int
    latency_s: float
    network_s: float
    postprocess_s: float


@dataclass(frozen=True)
class StreamSummary:
    """What a stream did: the frames processed, how many a live source dropped, the wall time
    from the first capture to the last output, and why it ended early, if it did."""

    frames: tuple[FrameTiming, ...]
    dropped: int
    elapsed_s: float
    stopped_by: str | None = None  # "user" (window), "interrupt" (Ctrl+C), "max_frames"

    @property
    def fps(self) -> float:
        """Throughput: frames processed per second of wall time."""
        return len(self.frames) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def _mean(self, name: str) -> float:
        return float(np.mean([getattr(t, name) for t in self.frames])) if self.frames else 0.0

    @property
    def mean_latency_s(self) -> float:
        return self._mean("latency_s")

    @property
    def mean_network_s(self) -> float:
        return self._mean("network_s")

    @property
    def mean_postprocess_s(self) -> float:
        return self._mean("postprocess_s")


@dataclass(frozen=True)
class _Failed:
    """A stage's exception, sent downstream to be raised in the calling thread."""

    error: BaseException


_END = object()


def run_stream(
    source: FrameSource,
    pipeline: PosePipeline,
    outputs: Sequence[Output] = (),
    max_frames: int | None = None,
    in_flight: int = 1,
    track: Tracking | Literal["auto"] | None = "auto",
) -> StreamSummary:
    """Run ``pipeline`` on every frame of ``source`` (the newest ones of a live source) and hand
    each result (and its drawn frame, if an output draws) to ``outputs``, in frame order.
    ``in_flight``: how many frames the network may hold at once when it runs asynchronously
    (``pipeline.can_submit``; one otherwise). ``track``: see the module docstring.

    Ends at the end of the source, after ``max_frames`` frames, when an output raises
    ``StopStream``, or on Ctrl+C (``KeyboardInterrupt`` is caught: the summary says so, and the
    caller closes its outputs as usual). An exception in a stage is raised here.
    """
    results = PoseStream(source, pipeline, max_frames, in_flight, track)
    timings: list[FrameTiming] = []
    counter = _FpsCounter()
    draws = any(output.draws for output in outputs)
    stopped_by = None
    start = time.perf_counter()
    try:
        for frame, capture_time, result in results:
            fps = counter.tick()
            drawn = None
            if draws:
                drawn = draw_people(frame.image, result.people, result.peaks)
                if result.people.hands is not None or result.people.face is not None:
                    from rtpose.wholebody import draw_hands_face

                    drawn = draw_hands_face(drawn, result.people)
                draw_fps(drawn, fps)
            timings.append(FrameTiming(frame.index, time.perf_counter() - capture_time,
                                       result.timings.network_s, result.timings.postprocess_s))
            with interrupts_deferred():  # a frame goes into every output or none
                for output in outputs:
                    output.write(frame, result, drawn)
            if max_frames is not None and len(timings) >= max_frames:
                stopped_by = "max_frames"
                break
    except StopStream:
        stopped_by = "user"
    except KeyboardInterrupt:
        stopped_by = "interrupt"
    finally:
        elapsed = time.perf_counter() - start
        results.close()
    return StreamSummary(tuple(timings), results.dropped, elapsed, stopped_by)


class PoseStream:
    """The pipelined stream as an iterator of ``(frame, capture_time, result)`` in frame order
    (``result``: ``PoseResult``, its people tracked with ``track`` as in ``run_stream``), for
    ``run_stream`` and ``rtpose.Model.video``. The capture and network threads start on the
    first ``next`` and stop when the source ends, on ``close()`` (or when the iterator is
    collected), or on an exception, which is raised here. ``dropped``: the frames a live source
    dropped so far."""

    def __init__(self, source: FrameSource, pipeline: PosePipeline,
                 max_frames: int | None = None, in_flight: int = 1,
                 track: Tracking | Literal["auto"] | None = "auto") -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        track = default_tracking(source) if track == "auto" else track
        self._drops = _Counter()
        self._results = self._run(source, pipeline, max_frames, in_flight, track)

    @property
    def dropped(self) -> int:
        return self._drops.value

    def __iter__(self) -> PoseStream:
        return self

    def __next__(self) -> tuple[Frame, float, PoseResult]:
        return next(self._results)

    def close(self) -> None:
        self._results.close()

    def _run(self, source: FrameSource, pipeline: PosePipeline, max_frames: int | None,
             in_flight: int, track: Tracking | None
             ) -> Iterator[tuple[Frame, float, PoseResult]]:
        stop = threading.Event()
        captured: queue.Queue = queue.Queue(maxsize=1)
        # Frames submitted and not yet taken by this thread: at most in_flight (async) ...
        slots = threading.Semaphore(in_flight) if pipeline.can_submit and in_flight > 1 else None
        # ... or, computed here in the network thread, one waiting while the next is computed.
        computed: queue.Queue = queue.Queue(maxsize=1 if slots is None else in_flight)
        frames = source if source.live else itertools.islice(source, max_frames)
        threads = [
            threading.Thread(target=_capture,
                             args=(frames, source.live, captured, stop, self._drops),
                             name="rtpose-capture", daemon=True),
            threading.Thread(target=_network,
                             args=(pipeline, captured, computed, stop, slots, source.live),
                             name="rtpose-network", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            while (item := _get(computed, stop)) is not _END and item is not None:
                if isinstance(item, _Failed):
                    raise item.error
                frame, capture_time, pending = item
                inferred = pending.result()
                if slots is not None:
                    slots.release()
                result = pipeline.decode(inferred)
                if track is not None:
                    result = replace(result, people=track.update(result.people, frame.index,
                                                                 frame.timestamp_s))
                if pipeline.hand_network is not None or pipeline.face_network is not None:
                    result = replace(result, people=pipeline.with_hands_face(frame.image,
                                                                             result.people))
                yield frame, capture_time, result
        finally:
            stop.set()
            for thread in threads:
                thread.join(JOIN_TIMEOUT_S)


def default_tracking(source: FrameSource) -> Tracking | None:
    """``Tracking()`` for a video or a camera (a source with a frame rate), None for images."""
    if source.fps <= 0:
        return None
    from rtpose.track import Tracking

    return Tracking()


def _capture(frames, live: bool, out: queue.Queue, stop: threading.Event, drops: _Counter):
    """Read frames into ``out``: replacing the waiting one if ``live``, else waiting."""
    try:
        for frame in frames:
            if stop.is_set():
                return
            item = (frame, time.perf_counter())
            if live:
                drops.value += _put_latest(out, item)
            elif not _put(out, item, stop):
                return
    except BaseException as error:  # re-raised by run_stream in the calling thread
        _put(out, _Failed(error), stop)
    else:
        _put(out, _END, stop)


def _network(pipeline: PosePipeline, inp: queue.Queue, out: queue.Queue, stop: threading.Event,
             slots: threading.Semaphore | None, live: bool):
    """Run the network on each captured frame (``pipeline.submit`` when ``slots``, after taking
    one, else ``pipeline.infer``), passing its handle on with the frame's capture time (now,
    for a file); pass the end and failures on."""
    while _acquire(slots, stop) and (item := _get(inp, stop)) is not None:
        if item is _END or isinstance(item, _Failed):
            _put(out, item, stop)
            return
        frame, capture_time = item
        if not live:
            capture_time = time.perf_counter()
        try:
            pending = (pipeline.submit(frame.image) if slots is not None
                       else PendingInference(pipeline.infer(frame.image)))
        except BaseException as error:  # re-raised by run_stream in the calling thread
            _put(out, _Failed(error), stop)
            return
        if not _put(out, (frame, capture_time, pending), stop):
            return


def _acquire(slots: threading.Semaphore | None, stop: threading.Event) -> bool:
    """Take one of ``slots`` (if any), waiting for one; False if ``stop`` was set first."""
    while slots is not None and not slots.acquire(timeout=POLL_S):
        if stop.is_set():
            return False
    return not stop.is_set()


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    """The next item, or None once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            continue
    return None


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; False if ``stop`` was set first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _put_latest(q: queue.Queue, item: Any) -> int:
    """Put ``item`` without waiting, dropping the waiting item if any; the number dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


class _Counter:
    """An int that one thread writes and another reads after ``join``."""

    def __init__(self) -> None:
        self.value = 0


class _FpsCounter:
    """Frames per second over the last ``FPS_WINDOW`` frames."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._times: deque[float] = deque(maxlen=FPS_WINDOW + 1)

    def tick(self) -> float:
        self._times.append(self._clock())
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


def draw_fps(image: np.ndarray, fps: float) -> None:
    """Write ``"12.3 fps"`` in the top-left corner of ``image``, in place."""
    text = f"{fps:.1f} fps"
    for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
        cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, color, thickness,
                    cv2.LINE_AA)
