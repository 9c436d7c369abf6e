"""Extract the people of whole datasets of videos and images: resumable, in parallel, on a cluster.

    python extract_poses.py videos/ images/*.jpg --list more.txt --output poses/ --format openpose
    python extract_poses.py videos/ --output poses/ --workers 2 --every 2 --render
    python extract_poses.py videos/ --output poses/ --engine ray --ray-address auto --workers 8

Every input's outputs are mirrored under --output (see rtpose.extract.writers for the formats),
each written under a temporary name and renamed when complete; poses/manifest.jsonl records
every input as done or failed, and first the effective parameters (after --config, --preset
and the flags): a later run into the same folder must have the same. Running the same command
again skips what is done and retries what failed only with --retry. Bad inputs are recorded and
the batch goes on. Exit status: 0 when every input is done, 3 when any is recorded as failed, 1
on an error, 130 when interrupted. People of a video get person IDs (--no-track: none); --smooth
smooths every track over the whole video. kinetics, pyskl and csv write skeleton datasets
(rtpose.extract.datasets); kinetics and pyskl also a corpus file at the end of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from pathlib import Path

from rtpose.errors import RtposeError
from rtpose.extract.datasets import LAYOUTS, DatasetOptions, dataset_classes
from rtpose.extract.inputs import collect_inputs
from rtpose.extract.manifest import MANIFEST_NAME, read_manifest
from rtpose.extract.run import ENGINES, Summary, extract
from rtpose.extract.store import is_url, local_path
from rtpose.extract.worker import Settings
from rtpose.extract.writers import FORMATS
from rtpose.files import INTERRUPTED_EXIT, FolderLock, sigterm_as_interrupt
from rtpose.runtime import resolve_runtime
from rtpose.store import resolve
from rtpose.tools.common import (
    DEFAULT_CONFIG,
    add_inference_args,
    add_max_image_pixels_arg,
    add_model_args,
    add_tracking_args,
    one_line_errors,
    params_from_args,
    pipeline_from_args,
    positive_int,
)
from rtpose.wholebody import add_hands_face_args

FAILED_EXIT = 3
FAILURES_SHOWN = 10
STALL_TIMEOUT_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="video or image files, folders (searched recursively) and globs")
    parser.add_argument("--list", dest="lists", action="append", default=[], type=Path,
                        metavar="FILE", help="a text file of input paths, one a line (relative "
                        "to its folder); may be given several times")
    parser.add_argument("--output", required=True,
                        help="output folder (or an fsspec URL, e.g. s3://bucket/poses)")
    parser.add_argument("--format", choices=FORMATS, default="openpose",
                        help="openpose: OpenPose's --write_json files, one per frame (default); "
                        "jsonl: one JSON line per frame; npz: one file per input; kinetics: "
                        "ST-GCN's Kinetics-skeleton JSON per video; pyskl: pyskl/mmaction2's "
                        "skeleton pickle of the corpus; csv: one row per person per frame")
    parser.add_argument("--render", action="store_true",
                        help="also write the frames with their skeletons (<name>_rendered.mp4 "
                        "or .jpg)")
    parser.add_argument("--every", type=positive_int, default=1, metavar="N",
                        help="process every N-th frame of a video (default 1)")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="process at most this many frames of each video")
    parser.add_argument("--retry", action="store_true",
                        help="retry the inputs that the manifest records as failed")
    parser.add_argument("--manifest", default=None,
                        help="the run's record (default: manifest.jsonl in the output folder; "
                        "required for an output URL)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes (or Ray actors), each loading the model once "
                        "(default 1)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads per worker (default: the cores, or the Ray cluster's "
                        "CPUs, shared out between the workers)")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: processes on this machine (default); ray: Ray actors")
    parser.add_argument("--ray-address", default=None,
                        help="the Ray cluster to join, as ray.init takes it (e.g. auto, or "
                        "ray://head:10001); default: the running one, else a new local one")
    add_max_image_pixels_arg(parser)
    parser.add_argument("--stall-timeout", type=_seconds, default=STALL_TIMEOUT_S,
                        metavar="SECONDS", help="an input whose worker makes no progress (no "
                        "frame) for this long fails and the worker is replaced (local engine; "
                        f"default {STALL_TIMEOUT_S:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("skeleton datasets (kinetics, pyskl)")
    group.add_argument("--labels", type=Path, default=None, metavar="FILE",
                       help="each video's label: a JSON object or lines 'video,label' "
                       "(default: the video's folder name)")
    group.add_argument("--layout", choices=LAYOUTS, default="coco17",
                       help="pyskl: COCO's 17 keypoints (default; pyskl's pretrained models) or "
                       "the 18 OpenPose parts")
    group.add_argument("--max-persons", type=positive_int, default=2,
                       help="pyskl: persons kept per video, by track (default 2)")
    add_model_args(parser)
    add_inference_args(parser)
    add_hands_face_args(parser)
    add_tracking_args(parser, offline=True)
    parser.set_defaults(scales=(1.0,))
    return parser


def main(argv: list[str] | None = None) -> None:
    command = build_parser()
    args = command.parse_args(argv)
    if not args.inputs and not args.lists:
        command.error("give at least one INPUT or --list FILE")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # bad files are told in one line
    with one_line_errors(), sigterm_as_interrupt():
        summary = run(args)
    _report(summary, args.manifest or Path(args.output) / MANIFEST_NAME)
    if summary.interrupted:
        sys.exit(INTERRUPTED_EXIT)
    if summary.any_failed:
        sys.exit(FAILED_EXIT)


def run(args: argparse.Namespace) -> Summary:
    """The extraction that ``args`` (of ``build_parser()``) ask for."""
    # Workers may run elsewhere (another folder, another node): every path absolute.
    if not is_url(args.output):
        args.output = str(local_path(args.output).resolve())
    if args.manifest is not None:
        args.manifest = local_path(args.manifest).resolve()
    manifest = args.manifest or (None if is_url(args.output)
                                 else Path(args.output) / MANIFEST_NAME)
    inputs = collect_inputs(args.inputs, args.lists,
                            exclude=None if is_url(args.output) else args.output,
                            outputs=_earlier_outputs(args.output, manifest))
    args.model = resolve(args.model or args.arch).resolve()
    if args.config is None and DEFAULT_CONFIG.is_file():
        args.config = DEFAULT_CONFIG
    if args.config is not None:
        args.config = args.config.resolve()
    if args.smooth and args.no_track:
        raise RtposeError("--smooth needs tracking: drop --no-track")
    labels = None if args.labels is None else str(args.labels.resolve())
    options = DatasetOptions(args.layout, args.max_persons,
                             dataset_classes(inputs.items, labels)
                             if args.format in ("kinetics", "pyskl") else (), labels, args.smooth,
                             args.max_gap, args.sigma)
    settings = Settings(args.output, args.format, args.every, args.max_frames, args.render,
                        args.max_image_pixels, not args.no_track, options)
    print(f"{len(inputs.items)} inputs ({_kinds(inputs.items)})"
          + (f"; {inputs.skipped} other files skipped" if inputs.skipped else ""))
    return extract(
        inputs.items, functools.partial(pipeline_from_args, args), settings,
        workers=args.workers, threads=args.threads, engine=args.engine,
        ray_address=args.ray_address, manifest=args.manifest, retry=args.retry,
        model_settings=_model_settings(args), progress=not args.no_progress,
        stall_timeout=args.stall_timeout)


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _earlier_outputs(output: str, manifest: Path | None) -> list[Path]:
    """The manifest, the lock and the outputs the manifest records: never inputs."""
    if manifest is None:
        return []
    records = read_manifest(manifest) if manifest.is_file() else {}
    named = {record[key] for record in records.values() if record["status"] == "done"
             for key in ("output", "rendered") if isinstance(record.get(key), str)}
    if is_url(output):
        return [manifest]
    return [manifest, Path(output) / FolderLock.NAME, *(Path(output) / name for name in named)]


def _kinds(items) -> str:
    counts = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(counts.items()))


def _model_settings(args: argparse.Namespace) -> dict:
    """What the outputs depend on, besides the format: kept in the manifest. The effective
    parameters, once the config file, the preset and the flags are merged (what the config
    file says, not its path)."""
    try:
        inference, grouping = params_from_args(args)
    except OSError as e:
        raise RtposeError(f"cannot read config {args.config}: {e.strerror or e}") from None
    return {"model": str(args.model), "arch": args.arch, "precision": args.precision,
            "runtime": resolve_runtime(args.runtime, args.precision),
            "inference": dataclasses.asdict(inference), "grouping": dataclasses.asdict(grouping),
            "decoder": args.decoder, "max_pixels": args.max_pixels,
            **{part: True for part in ("hands", "face") if getattr(args, part)}}


def _report(summary: Summary, manifest: Path | str) -> None:
    print(f"{len(summary.done)} inputs done in {summary.elapsed_s:.1f} s: {summary.frames} "
          f"frames ({summary.fps:.1f} frames/s after {summary.startup_s:.1f} s of start-up), "
          f"{summary.people} people")
    if summary.skipped:
        print(f"{summary.skipped} inputs already done (skipped)")
    if summary.corpus:
        print(f"wrote {summary.corpus} (every done input)")
    for name, warning in summary.warnings[:FAILURES_SHOWN]:
        print(f"warning: {name}: {warning}")
    failures = summary.failed + summary.failed_before
    if summary.failed:
        print(f"{len(summary.failed)} inputs failed")
    if summary.failed_before:
        print(f"{len(summary.failed_before)} inputs failed before (--retry retries them)")
    for name, reason in failures[:FAILURES_SHOWN]:
        print(f"  failed: {name}: {reason}")
    if len(failures) > FAILURES_SHOWN:
        print(f"  ... and {len(failures) - FAILURES_SHOWN} more")
    if failures:
        print(f"see {manifest}")
    if summary.interrupted:
        left = summary.total - len(summary.done) - len(summary.failed) - summary.skipped \
            - len(summary.failed_before)
        print(f"interrupted: {left} inputs left; run the same command again to go on")


if __name__ == "__main__":
    main()
