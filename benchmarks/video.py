"""End-to-end video speed: what ``demo_camera.py --video VIDEO --no-display`` does, timed.

    python -m benchmarks.video [--video ../shared/data/videos/sample2.mp4] [--arch ...]
    python -m benchmarks.video --arch mobilenet_thin --runtime keras openvino \
        --precision fp32 bf16 int8 --in-flight 1 2 --modes pipelined

For each architecture at one scale and its default input size (boxsize 368: a 960x540 frame
goes in as 368x656), runtime and precision (``--precision``: the openvino runtime's; the others
run fp32 only; int8 is calibrated on ``--calibration``, default coco_mini train2017), runs the
pipelined stream of ``rtpose.stream`` over every frame of the video (capture, network and
decoding in their own threads; with an asynchronous runtime, openvino, once per
``--in-flight`` count of frames in the network at once and ``--hint``: OpenVINO's performance
hint, ``latency`` for one inference stream using every core or ``throughput`` for one stream
per frame in flight), then the same frames one after the other in one thread (latency hint),
for comparison. Every frame is drawn, as the demo's window or video output
does. Prints the throughput (frames per second of wall time from the first capture to the last
drawn frame), the mean and 95th-percentile latency per frame (capture to drawn), and the
network and grouping (up-sampling, peaks, association) milliseconds per frame. One warm-up
frame first (graph tracing) is not counted. MobileNet-thin runs with its real weights, CMU with
its weights if ``model/keras`` has them, else with random weights (same speed; labelled
``random``). The machine and its load average are printed: the CPU may be shared.

Targets (issue 12, MobileNet-thin, one scale, on a quiet machine): >= 20 fps at fp32, >= 30 fps
in the fast mode (bf16 or int8), latency <= 100 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.coco_mini import COCO_MINI
from benchmarks.machine import machine_header
from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.draw import draw_people
from rtpose.errors import ModelNotFoundError, RtposeError
from rtpose.models import ARCHITECTURES, load_model
from rtpose.pipeline import PosePipeline
from rtpose.runtime import PRECISIONS, RUNTIMES, make_network
from rtpose.runtime.openvino.network import HINTS, OpenVinoNetwork
from rtpose.store import resolve
from rtpose.stream.sources import open_source
from rtpose.stream.stream import FrameTiming, StreamSummary, draw_fps, run_stream

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "sample2.mp4"
ONE_SCALE = InferenceParams(scales=(1.0,))
FP32_FPS, FAST_FPS, LATENCY_MS = 20, 30, 100  # issue 12's targets
FAST = ("bf16", "int8")


def load(name: str):
    """The architecture's Keras model, architecture, weights path (None: random weights) and
    label ("real"/"random")."""
    try:
        weights = resolve(name, fetch_missing=False)
    except ModelNotFoundError:
        if name == "mobilenet_thin":
            raise
        weights = None
    if weights is None:
        architecture = ARCHITECTURES[name]
        return architecture.build(), architecture, None, "random"
    model, architecture = load_model(name, weights)
    return model, architecture, weights, "real"


class Discard:
    """An output that asks for every frame drawn, as a window or a video does, and drops it."""

    draws = True

    def write(self, frame, result, drawn) -> None:
        pass


def sequential(video: Path, pipeline: PosePipeline, max_frames: int | None) -> StreamSummary:
    """Every frame read, run, and drawn in turn in one thread: the stream without pipelining."""
    timings = []
    with open_source(video=video) as source:
        start = time.perf_counter()
        for frame in source:
            if max_frames is not None and frame.index >= max_frames:
                break
            captured = time.perf_counter()
            result = pipeline.run(frame.image)
            draw_fps(draw_people(frame.image, result.people, result.peaks), 0.0)
            t = result.timings
            timings.append(FrameTiming(frame.index, time.perf_counter() - captured,
                                       t.network_s, t.postprocess_s))
        return StreamSummary(tuple(timings), 0, time.perf_counter() - start)


def pipelined(video: Path, pipeline: PosePipeline, max_frames: int | None,
              in_flight: int) -> StreamSummary:
    with open_source(video=video) as source:
        return run_stream(source, pipeline, [Discard()], max_frames, in_flight)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO,
                        help="video file (default: ../shared/data/videos/sample2.mp4)")
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES,
                        default=["mobilenet_thin", "cmu"])
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=["keras"])
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32"],
                        help="the openvino runtime's precisions (the others run fp32 only)")
    parser.add_argument("--calibration", type=Path, default=COCO_MINI / "train2017",
                        help="int8: training images to calibrate on (default coco_mini "
                             "train2017)")
    parser.add_argument("--in-flight", type=int, nargs="+", choices=(1, 2), default=[1, 2],
                        help="pipelined mode, asynchronous runtimes: frames in the network at "
                             "once (default 1 2)")
    parser.add_argument("--hint", nargs="+", choices=HINTS, default=list(HINTS),
                        help="pipelined mode, openvino: performance hints to run (default both)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="frames per run (default: the whole video)")
    parser.add_argument("--modes", nargs="+", choices=("pipelined", "sequential"),
                        default=["pipelined", "sequential"])
    args = parser.parse_args(argv)
    print(machine_header())

    try:
        with open_source(video=args.video) as source:
            first = next(iter(source)).image
            count = source.frame_count
    except RtposeError as e:
        sys.exit(f"error: {e}")
    frames = count if args.max_frames is None else min(count, args.max_frames)
    print(f"{args.video.name}: {first.shape[1]}x{first.shape[0]}, {frames} frames; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (1 min) at start")

    settings = [(name, runtime, precision) for name in args.arch for runtime in args.runtime
                for precision in args.precision if precision == "fp32" or runtime == "openvino"]
    rows = []
    progress = tqdm(total=len(settings), unit="setting")
    loaded: dict[str, tuple] = {}
    for name, runtime, precision in settings:
        progress.set_description(f"{name} {runtime} {precision}")
        try:
            if name not in loaded:
                loaded[name] = load(name)
            model, architecture, weights, label = loaded[name]
            network = make_network(model, architecture, runtime, weights, precision=precision,
                                   calibration=args.calibration)
        except RtposeError as e:
            sys.exit(f"error: {e}")
        openvino = runtime == "openvino"
        runs = []  # (mode, frames in flight, OpenVINO hint)
        if "pipelined" in args.modes:
            runs += ([("pipelined", n, hint) for hint in args.hint for n in args.in_flight
                      if hint == "latency" or n > 1]  # a throughput stream per frame in flight
                     if openvino else [("pipelined", 1, "-")])
        if "sequential" in args.modes:
            runs.append(("sequential", 1, "latency" if openvino else "-"))
        pipelines: dict[str, PosePipeline] = {}
        for mode, in_flight, hint in runs:
            if hint not in pipelines:
                if openvino and hint != network.config["PERFORMANCE_HINT"].lower():
                    network = OpenVinoNetwork(network.path, precision, hint=hint)
                pipelines[hint] = PosePipeline(network, ONE_SCALE, CMU_GROUPING)
                pipelines[hint].run(first)  # warm-up: traces the graph for this input size
            load_average = os.getloadavg()[0]
            summary = (pipelined(args.video, pipelines[hint], args.max_frames, in_flight)
                       if mode == "pipelined" else
                       sequential(args.video, pipelines[hint], args.max_frames))
            rows.append((name, label, runtime, precision, mode, in_flight, hint, summary,
                         load_average))
        progress.update()
    progress.close()

    print(f"\n{'arch':<16}{'weights':<9}{'runtime':<9}{'prec':<6}{'mode':<12}{'flight':>7}"
          f"{'hint':>11}{'frames':>7}{'fps':>7}{'latency ms':>11}{'p95 ms':>8}{'network ms':>12}"
          f"{'grouping ms':>13}{'load':>6}")
    for name, label, runtime, precision, mode, in_flight, hint, s, load_average in rows:
        print(f"{name:<16}{label:<9}{runtime:<9}{precision:<6}{mode:<12}{in_flight:>7}"
              f"{hint:>11}{len(s.frames):>7}{s.fps:>7.1f}{s.mean_latency_s * 1000:>11.0f}"
              f"{_p95_latency_ms(s):>8.0f}{s.mean_network_s * 1000:>12.1f}"
              f"{s.mean_postprocess_s * 1000:>13.1f}{load_average:>6.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end; latency and network/grouping "
          "times per frame are means; network ms: the network's own time per frame (with two "
          "in flight, not the wait behind the frame ahead)")
    for label, precisions, fps in (("fp32", ("fp32",), FP32_FPS), ("fast mode", FAST, FAST_FPS)):
        best = _best(rows, precisions)
        if best is None:
            continue
        runtime, precision, in_flight, hint, s = best
        met = s.fps >= fps and s.mean_latency_s * 1000 <= LATENCY_MS
        print(f"target (issue 12, quiet machine): {label} >= {fps} fps, latency <= {LATENCY_MS} "
              f"ms; best here {runtime} {precision} {in_flight} in flight ({hint} hint): "
              f"{s.fps:.1f} fps, "
              f"{s.mean_latency_s * 1000:.0f} ms: {'met' if met else 'not met'}")


def _p95_latency_ms(summary: StreamSummary) -> float:
    latencies = [t.latency_s for t in summary.frames]
    return float(np.percentile(latencies, 95)) * 1000 if latencies else 0.0


def _best(rows, precisions: tuple[str, ...]):
    """The fastest pipelined MobileNet-thin run at one of ``precisions``: runtime, precision,
    frames in flight, hint and summary; None if there is none."""
    found = [(s.fps, runtime, precision, in_flight, hint, s)
             for name, _, runtime, precision, mode, in_flight, hint, s, _ in rows
             if name == "mobilenet_thin" and mode == "pipelined" and precision in precisions]
    return max(found, key=lambda row: row[0])[1:] if found else None


if __name__ == "__main__":
    main()
