"""End-to-end video speed: what ``demo_camera.py --video VIDEO --no-display`` does, timed.

    python -m benchmarks.video [--video ../shared/data/videos/sample2.mp4] [--arch ...]

For each architecture at one scale and its default input size (boxsize 368: a 960x540 frame
goes in as 368x656), runs the pipelined stream of ``rtpose.stream`` over every frame of the
video (capture, network and decoding in their own threads), then the same frames one after the
other in one thread, for comparison. Prints the throughput (frames per second of wall time from
the first capture to the last drawn frame), the mean latency per frame (capture to drawn), and
the network and grouping (up-sampling, peaks, association) milliseconds per frame. One warm-up
frame first (graph tracing) is not counted. MobileNet-thin runs with its real weights, CMU with
its weights if ``model/keras`` has them, else with random weights (same speed; labelled
``random``). The machine's CPU count and load average are printed: the CPU may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from benchmarks.machine import machine_header
from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.draw import draw_people
from rtpose.errors import ModelNotFoundError, RtposeError
from rtpose.models import ARCHITECTURES, find_default_weights, load_model
from rtpose.pipeline import PosePipeline
from rtpose.runtime import RUNTIMES, make_network
from rtpose.stream.sources import open_source
from rtpose.stream.stream import FrameTiming, StreamSummary, draw_fps, run_stream

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "sample2.mp4"
ONE_SCALE = InferenceParams(scales=(1.0,))


def make_pipeline(name: str, runtime: str) -> tuple[PosePipeline, str]:
    """The architecture's pipeline at one scale, and which weights it runs ("real"/"random")."""
    try:
        _, weights = find_default_weights(name, ROOT)
    except ModelNotFoundError:
        if name == "mobilenet_thin":
            raise
        weights = None
    if weights is None:
        architecture = ARCHITECTURES[name]
        model, label = architecture.build(), "random"
    else:
        (model, architecture), label = load_model(name, weights), "real"
    network = make_network(model, architecture, runtime, weights)
    return PosePipeline(network, ONE_SCALE, CMU_GROUPING), label


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


def pipelined(video: Path, pipeline: PosePipeline, max_frames: int | None) -> StreamSummary:
    with open_source(video=video) as source:
        return run_stream(source, pipeline, max_frames=max_frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO,
                        help="video file (default: ../shared/data/videos/sample2.mp4)")
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES,
                        default=["mobilenet_thin", "cmu"])
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=["keras"])
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

    rows = []
    progress = tqdm(total=len(args.arch) * len(args.runtime) * len(args.modes), unit="run")
    for name in args.arch:
        for runtime in args.runtime:
            try:
                pipeline, label = make_pipeline(name, runtime)
            except RtposeError as e:
                sys.exit(f"error: {e}")
            pipeline.run(first)  # warm-up: traces the graph for this input size
            for mode in args.modes:
                progress.set_description(f"{name} {runtime} {mode}")
                run = pipelined if mode == "pipelined" else sequential
                load = os.getloadavg()[0]
                rows.append((name, label, runtime, mode,
                             run(args.video, pipeline, args.max_frames), load))
                progress.update()
    progress.close()

    print(f"\n{'arch':<16}{'weights':<9}{'runtime':<9}{'mode':<12}{'frames':>7}{'fps':>7}"
          f"{'latency ms':>12}{'network ms':>12}{'grouping ms':>13}{'load':>6}")
    for name, label, runtime, mode, s, load in rows:
        print(f"{name:<16}{label:<9}{runtime:<9}{mode:<12}{len(s.frames):>7}{s.fps:>7.1f}"
              f"{s.mean_latency_s * 1000:>12.0f}{s.mean_network_s * 1000:>12.1f}"
              f"{s.mean_postprocess_s * 1000:>13.1f}{load:>6.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end; latency and network/grouping "
          "times per frame are means")
    print("target (issue 8): >= 15 fps with mobilenet_thin, pipelined, on a 2-core CPU; "
          f"{'met' if _target_met(rows) else 'not met'} here")


def _target_met(rows) -> bool:
    fps = [s.fps for name, _, _, mode, s, _ in rows
           if name == "mobilenet_thin" and mode == "pipelined"]
    return bool(fps) and max(fps) >= 15


if __name__ == "__main__":
    main()
