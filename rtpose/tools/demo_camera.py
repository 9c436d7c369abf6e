"""Find people in a webcam or video stream in real time, draw them, write video and JSON lines.

    python demo_camera.py                                  # webcam 0, in a window (q quits)
    python demo_camera.py --video clip.mp4 --no-display --output out.mp4 --json out.jsonl

One scale (--scales 1.0) unless --scales says otherwise; capture, network and drawing run in
their own threads (rtpose.stream). With --runtime openvino, two frames are in the network at once
(--in-flight, each on its own OpenVINO stream): more frames per second, and about one frame
time more latency; --in-flight 1 for the least latency. SIGTERM stops it as Ctrl+C does: the video
and JSON lines written so far are finished and kept. Each person gets an ID that stays the same
across frames (drawn beside the head; --no-track turns it off); --smooth filters the keypoints
(One Euro filter, --min-cutoff and --beta).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from rtpose.files import sigterm_as_interrupt
from rtpose.stream.images import check_distinct, check_writable
from rtpose.stream.outputs import (
    JsonLinesOutput,
    ProgressOutput,
    VideoOutput,
    Window,
    has_display,
)
from rtpose.stream.sources import open_source
from rtpose.stream.stream import run_stream
from rtpose.tools.common import (
    add_inference_args,
    add_max_image_pixels_arg,
    add_model_args,
    add_tracking_args,
    one_line_errors,
    pipeline_from_args,
    positive_int,
    tracking_from_args,
)
from rtpose.wholebody import add_hands_face_args

STOP_REASONS = {"user": "quit in the window", "interrupt": "Ctrl+C or SIGTERM"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=None, help="camera index (default 0)")
    source.add_argument("--video", type=Path, default=None, help="video file instead of a camera")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the annotated video to this .mp4 file")
    parser.add_argument("--json", type=Path, default=None,
                        help="write one JSON line of people per frame to this file")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="stop after this many frames")
    parser.add_argument("--no-display", action="store_true",
                        help="never open a window (none is opened without a display anyway)")
    parser.add_argument("--in-flight", type=int, choices=(1, 2), default=2,
                        help="frames in the network at once with --runtime openvino (default "
                             "2: more fps; 1: the least latency); the other runtimes run one")
    add_model_args(parser)
    add_inference_args(parser)
    add_hands_face_args(parser)
    add_tracking_args(parser)
    add_max_image_pixels_arg(parser)
    parser.set_defaults(scales=(1.0,))
    args = parser.parse_args(argv)
    camera = 0 if args.camera is None and args.video is None else args.camera
    # FFmpeg's own lines for an undecodable file: the error below says it in one line.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")

    with one_line_errors(), sigterm_as_interrupt(), ExitStack() as stack:
        track = tracking_from_args(args)
        check_distinct({"--video": args.video}, {"--output": args.output, "--json": args.json})
        check_writable(args.output, args.json)
        frames = stack.enter_context(open_source(camera=camera, video=args.video,
                                                 max_pixels=args.max_image_pixels))
        show = not args.no_display and has_display()
        window = [stack.enter_context(Window(frames.name))] if show else []
        hint = "throughput" if args.in_flight > 1 else "latency"
        pipeline = pipeline_from_args(args, hint=hint)
        outputs = [stack.enter_context(ProgressOutput(frames))]
        if args.output is not None:
            outputs.append(stack.enter_context(VideoOutput(args.output, frames)))
        if args.json is not None:
            outputs.append(stack.enter_context(JsonLinesOutput(args.json)))
        summary = run_stream(frames, pipeline, outputs + window, args.max_frames,
                             args.in_flight, track)

    scales = len(pipeline.inference.scales)
    print(f"{len(summary.frames)} frames from {frames.name} in {summary.elapsed_s:.1f} s: "
          f"{summary.fps:.1f} fps, latency {summary.mean_latency_s * 1000:.0f} ms/frame")
    print(f"network {summary.mean_network_s * 1000:.1f} ms/frame ({scales} scale"
          f"{'s' if scales > 1 else ''}), grouping {summary.mean_postprocess_s * 1000:.1f} "
          f"ms/frame, {summary.dropped} frames dropped")
    if summary.stopped_by in STOP_REASONS:
        print(f"stopped early: {STOP_REASONS[summary.stopped_by]}")
    if track is not None:
        print(f"{track.tracker.next_id} person IDs")
    for path in (args.output, args.json):
        if path is not None and path.is_file():
            print(f"wrote {path}")
    shortfall = frames.shortfall() if summary.stopped_by is None else None
    if shortfall is not None:
        message, failed = shortfall
        print(f"{'error' if failed else 'warning'}: {message}", file=sys.stderr)
        if failed:
            sys.exit(1)


if __name__ == "__main__":
    main()
