"""The pipelined stream: every file frame in order with its own result, also with two frames in
the network at once, stale live frames dropped, early stops, errors raised in the caller, drawing
only for outputs that draw; and the video and JSON-lines outputs, written under a temporary name
until complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers import AsyncFunctionNetwork, FunctionNetwork, person_network

from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.errors import RtposeError
from rtpose.files import sigterm_as_interrupt
from rtpose.pipeline import PosePipeline
from rtpose.stream import stream as stream_module
from rtpose.stream.outputs import JsonLinesOutput, VideoOutput, read_json_lines
from rtpose.stream.sources import FrameSource, open_source
from rtpose.stream.stream import FrameTiming, StopStream, StreamSummary, draw_fps, run_stream

SMALL = InferenceParams(boxsize=184, scales=(1.0,))


def image_network(delays=()):
    """A network whose maps come from the input's pixels, so that each frame has its own peaks:
    the nose heatmap is the grey level / 255 at stride 8, the other maps are zero (so there are
    no limbs to score). ``delays``: seconds to sleep per call, in turn, to shuffle the threads'
    timing."""
    delays = iter(delays)

    def network(batch):
        time.sleep(next(delays, 0.0))
        grey = cv2.cvtColor(batch[0].astype(np.uint8), cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (batch.shape[2] // 8, batch.shape[1] // 8),
                           interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        heat = np.zeros((1, *small.shape, 19), np.float32)
        heat[0, :, :, 0] = small
        return heat, np.zeros((*heat.shape[:3], 38), np.float32)

    return FunctionNetwork(network)


class Recorder:
    """An output that keeps what it is given (and asks for drawn frames if ``draws``)."""

    def __init__(self, stop_at: int | None = None, error: type[BaseException] = StopStream,
                 draws: bool = True):
        self.frames, self.results = [], []
        self.stop_at, self.error, self.draws = stop_at, error, draws

    def write(self, frame, result, drawn):
        if self.draws:
            assert drawn.shape == frame.image.shape and drawn is not frame.image
        self.frames.append(frame)
        self.results.append(result)
        if len(self.frames) == self.stop_at:
            raise self.error


@pytest.fixture(scope="module")
def street(shared_data):
    return shared_data / "videos" / "street_5frames.mp4"


def test_file_frames_all_processed_in_order_with_their_own_results(street):
    delays = np.random.default_rng(0).uniform(0.02, 0.05, 5)
    pipeline = PosePipeline(image_network(delays), SMALL, CMU_GROUPING)
    recorder = Recorder()
    with open_source(video=street) as source:
        summary = run_stream(source, pipeline, [recorder])

    assert [frame.index for frame in recorder.frames] == [0, 1, 2, 3, 4]
    assert [t.index for t in summary.frames] == [0, 1, 2, 3, 4]
    assert summary.dropped == 0 and summary.stopped_by is None
    # The same peaks as the plain pipeline on each frame: no result is paired with another frame.
    with open_source(video=street) as source:
        for frame, result in zip(source, recorder.results, strict=True):
            expected = pipeline.run(frame.image).peaks
            assert sum(len(p) for p in expected) > 0
            for got, want in zip(result.peaks, expected, strict=True):
                np.testing.assert_array_equal(got, want)
    assert all(t.latency_s >= t.network_s + t.postprocess_s for t in summary.frames)
    assert all(t.network_s >= delay for t, delay in zip(summary.frames, delays, strict=True))
    # The network runs one frame at a time: the stream takes at least its delays.
    assert summary.elapsed_s >= delays.sum()
    assert summary.fps == pytest.approx(5 / summary.elapsed_s)


def green_source(n: int) -> FrameSource:
    """A file-like source of ``n`` frames of growing green level: ``person_network`` sees its
    person in another place in each."""
    frames = ((i * 0.04, np.full((96, 128, 3), (0, 20 + 40 * i, 0), np.uint8)) for i in range(n))
    return FrameSource("green", frames, live=False, fps=25.0, frame_count=n)


def test_two_frames_in_flight_give_every_frame_in_order_with_the_same_people():
    """An asynchronous network whose frames finish out of order (random delays): two in
    flight at most, every frame delivered in order, the same people as one at a time."""
    delays = iter(np.random.default_rng(1).uniform(0.02, 0.08, 6))

    def slow_person(batch):
        time.sleep(next(delays, 0.0))
        return person_network(batch)

    network = AsyncFunctionNetwork(slow_person)
    pipeline = PosePipeline(network, SMALL, CMU_GROUPING)
    assert pipeline.can_submit
    two, one = Recorder(), Recorder()
    with green_source(6) as source:
        summary = run_stream(source, pipeline, [two], in_flight=2)
    with green_source(6) as source:  # a network that cannot submit: one frame at a time
        run_stream(source, PosePipeline(FunctionNetwork(person_network), SMALL, CMU_GROUPING),
                   [one], in_flight=2)

    assert network.most_in_flight == 2
    assert [frame.index for frame in two.frames] == [t.index for t in summary.frames] == [
        0, 1, 2, 3, 4, 5]
    assert summary.dropped == 0 and all(t.network_s > 0 for t in summary.frames)
    keypoints = [r.people.keypoints for r in two.results]
    assert all(len(k) == 1 for k in keypoints)
    assert len({k.tobytes() for k in keypoints}) == 6  # each frame its own person
    for got, want in zip(two.results, one.results, strict=True):
        np.testing.assert_array_equal(got.people.keypoints, want.people.keypoints)
        np.testing.assert_array_equal(got.people.scores, want.people.scores)

    single = AsyncFunctionNetwork(person_network)
    with green_source(6) as source:
        run_stream(source, PosePipeline(single, SMALL, CMU_GROUPING), [Recorder()], in_flight=1)
    assert single.most_in_flight == 0  # in_flight=1: infer, never submit


def test_nothing_is_drawn_when_no_output_draws(street, monkeypatch):
    drawn = []
    monkeypatch.setattr(stream_module, "draw_people",
                        lambda image, *a: drawn.append(1) or image.copy())
    pipeline = PosePipeline(image_network(), SMALL)
    recorder = Recorder(draws=False)
    with open_source(video=street) as source:
        run_stream(source, pipeline, [recorder])
    assert drawn == [] and len(recorder.frames) == 5
    with open_source(video=street) as source:
        run_stream(source, pipeline, [Recorder(draws=False), Recorder(draws=True)])
    assert len(drawn) == 5


def live_source(n: int, period_s: float) -> FrameSource:
    """A camera-like source: ``n`` frames ``period_s`` apart, whether consumed or not."""

    def frames():
        for i in range(n):
            time.sleep(period_s)
            yield i * period_s, np.full((64, 96, 3), i, np.uint8)

    return FrameSource("fake camera", frames(), live=True, fps=1 / period_s, frame_count=None)


def test_live_frames_are_dropped_when_the_network_is_busy(tmp_path):
    pipeline = PosePipeline(image_network([0.05] * 40), InferenceParams(boxsize=64, scales=(1.0,)))
    recorder = Recorder()
    source = live_source(40, 0.005)
    with VideoOutput(tmp_path / "live.mp4", source) as video:
        summary = run_stream(source, pipeline, [recorder, video])

    indices = [frame.index for frame in recorder.frames]
    assert indices == sorted(set(indices)) and indices[-1] == 39  # newest frame kept
    assert summary.dropped > 0 and len(indices) + summary.dropped == 40
    for frame in recorder.frames:
        assert frame.image[0, 0, 0] == frame.index
    # The video keeps the camera's timing: each processed frame stands in for the dropped ones.
    written = cv2.VideoCapture(str(tmp_path / "live.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)
    assert written == 40 - indices[0]


def test_max_frames_stop_request_and_ctrl_c(street):
    pipeline = PosePipeline(image_network(), SMALL)
    with open_source(video=street) as source:
        summary = run_stream(source, pipeline, [Recorder()], max_frames=2)
    assert len(summary.frames) == 2 and summary.stopped_by == "max_frames"

    for error, reason in ((StopStream, "user"), (KeyboardInterrupt, "interrupt")):
        recorder = Recorder(stop_at=3, error=error)
        with open_source(video=street) as source:
            summary = run_stream(source, pipeline, [recorder])
        assert summary.stopped_by == reason
        assert [t.index for t in summary.frames] == [0, 1, 2]


class Signaller(Recorder):
    """An output that sends ``signum`` to its own process while writing frame ``at``."""

    def __init__(self, signum: int, at: int):
        super().__init__()
        self.signum, self.at = signum, at

    def write(self, frame, result, drawn):
        if len(self.frames) + 1 == self.at:
            os.kill(os.getpid(), self.signum)
        super().write(frame, result, drawn)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_writing_a_frame_lets_every_output_have_it(street, signum):
    """Ctrl+C or SIGTERM (as ``demo_camera.py`` turns it into Ctrl+C) in the middle of a frame's
    outputs: the frame still reaches the outputs after it, then the stream stops."""
    pipeline = PosePipeline(image_network(), SMALL)
    first, second = Signaller(signum, at=2), Recorder()
    with sigterm_as_interrupt(), open_source(video=street) as source:
        summary = run_stream(source, pipeline, [first, second])
    assert summary.stopped_by == "interrupt"
    assert [f.index for f in first.frames] == [f.index for f in second.frames] == [0, 1]


def test_a_network_error_is_raised_in_the_caller(street):
    def broken(batch):
        raise ValueError("bad weights")

    with open_source(video=street) as source, pytest.raises(ValueError, match="bad weights"):
        run_stream(source, PosePipeline(FunctionNetwork(broken), SMALL), [Recorder()])


def test_summary_means_and_fps_counter():
    frames = (FrameTiming(0, 0.3, 0.1, 0.02), FrameTiming(1, 0.5, 0.2, 0.04))
    summary = StreamSummary(frames, dropped=1, elapsed_s=0.5)
    assert summary.fps == pytest.approx(4.0)
    assert summary.mean_latency_s == pytest.approx(0.4)
    assert summary.mean_network_s == pytest.approx(0.15)
    assert summary.mean_postprocess_s == pytest.approx(0.03)
    assert StreamSummary((), 0, 0.0).fps == 0.0

    images = [np.zeros((60, 200, 3), np.uint8) for _ in range(2)]
    draw_fps(images[0], 12.3)
    draw_fps(images[1], 45.6)
    for image in images:  # white text in a black outline, in the top-left corner only
        assert (image[:40, :120] > 200).all(axis=2).sum() > 20 and not image[45:].any()
    assert (images[0] != images[1]).any()


def test_outputs_write_the_video_and_one_json_line_per_frame(street, tmp_path):
    pipeline = PosePipeline(image_network(), SMALL)
    video, lines = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    with (open_source(video=street) as source, VideoOutput(video, source) as writer,
          JsonLinesOutput(lines) as jsonl):
        run_stream(source, pipeline, [writer, jsonl])

    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    read = [image for ok, image in iter(capture.read, (False, None)) if ok]
    assert [image.shape for image in read] == [(540, 960, 3)] * 5
    records = read_json_lines(lines)
    assert [(r["frame"], r["timestamp"], r["people"]) for r in records] == [
        (i, pytest.approx(i * 0.2), []) for i in range(5)]
    assert json.loads(lines.read_text().splitlines()[0]) == records[0]


def test_unwritable_outputs_are_one_line_errors(street, tmp_path):
    with open_source(video=street) as source:
        with pytest.raises(RtposeError, match="^cannot write video .*out.mp4"):
            VideoOutput(tmp_path / "missing" / "out.mp4", source)
    with pytest.raises(RtposeError, match="^cannot write .*out.jsonl: No such file"):
        JsonLinesOutput(tmp_path / "missing" / "out.jsonl")


def test_outputs_appear_only_when_complete(street, tmp_path):
    """While a stream runs, neither file exists under its final name; each appears, complete,
    when its output closes."""
    video, lines = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    seen = []

    class Watcher:
        draws = False

        def write(self, frame, result, drawn):
            seen.append((video.exists(), lines.exists(), len(list(tmp_path.iterdir()))))

    pipeline = PosePipeline(image_network(), SMALL)
    with (open_source(video=street) as source, VideoOutput(video, source) as writer,
          JsonLinesOutput(lines) as jsonl):
        run_stream(source, pipeline, [writer, jsonl, Watcher()])
    assert seen == [(False, False, 2)] * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.mp4"]


def test_opening_a_stream_loads_no_keras():
    code = ("import sys; import rtpose.stream.stream, rtpose.stream.outputs, "
            "rtpose.stream.sources, rtpose.pipeline; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
