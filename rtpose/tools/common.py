"""What the command-line tools share: model and inference flags, and one way to fail.

Every helper reports bad input as an ``RtposeError`` with a one-line message; a tool's ``main``
runs its work inside ``one_line_errors()``, which turns it into ``error: ...`` and exit code 1,
and Ctrl+C (or SIGTERM, inside ``rtpose.files.sigterm_as_interrupt()``) into ``interrupted``
and exit code 130, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rtpose.config import (
    CMU_GROUPING,
    CMU_INFERENCE,
    PRESETS,
    GroupingParams,
    InferenceParams,
    apply_preset,
    load_config,
    parse_scales,
)
from rtpose.errors import RtposeError
from rtpose.files import INTERRUPTED_EXIT
from rtpose.geometry import MAX_INPUT_PIXELS
from rtpose.models import ARCHITECTURES, find_default_weights, load_model
from rtpose.pipeline import DECODERS, PosePipeline
from rtpose.runtime import PRECISIONS, RUNTIMES, Network, make_network, resolve_runtime
from rtpose.stream.images import MAX_IMAGE_PIXELS
from rtpose.track import OfflineParams, OneEuroParams, Tracking

DEFAULT_CONFIG = Path("config")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model PATH``, ``--arch NAME`` and ``--runtime NAME``."""
    parser.add_argument(
        "--model", type=Path, default=None,
        help="weights file (default: the first default weights file found in model/keras: "
        "CMU, then MobileNet-thin)",
    )
    parser.add_argument(
        "--arch", choices=list(ARCHITECTURES), default=None,
        help="network architecture (default: read off the weights file)",
    )
    parser.add_argument(
        "--runtime", choices=("auto", *RUNTIMES), default="auto",
        help="auto (default): openvino where OpenVINO is installed (the fastest on a CPU, "
             "same people), else keras; keras: compiled TensorFlow graph; onnx: onnxruntime, "
             "the model exported once and cached beside the weights as <name>.onnx; openvino: "
             "OpenVINO Runtime, its IR cached beside the weights")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="fp32 (default), or with --runtime openvino bf16 (CPUs with bf16) or int8; "
             "lower precisions cost AP, see docs/benchmarks.md")
    parser.add_argument(
        "--calibration", type=Path, default=None, metavar="FOLDER",
        help="--precision int8: training images to calibrate on, never validation ones "
             "(default dataset/train2017); read once, when the int8 model is not cached yet")
    add_verbose_arg(parser)


def add_verbose_arg(parser: argparse.ArgumentParser) -> None:
    """``--verbose``: keep what ``quiet_native_stderr`` drops."""
    parser.add_argument(
        "--verbose", action="store_true",
        help="show the native libraries' start-up lines (TensorFlow, CUDA probing) on stderr")


def _scales(text: str) -> tuple[float, ...]:
    try:
        return parse_scales(text)
    except ValueError:
        message = f"not a comma-separated list of numbers: {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def add_inference_args(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--preset``, and flags that override them: ``--scales``, ``--boxsize``,
    ``--thre1``, ``--thre2``, ``--flip``, ``--refine``; ``--decoder``."""
    group = parser.add_argument_group(
        "inference parameters (the preset overrides the config file, flags override both)")
    group.add_argument(
        "--config", type=Path, default=None,
        help=f"original-format config file (default: ./{DEFAULT_CONFIG} if present, else the "
        "CMU defaults)",
    )
    group.add_argument(
        "--preset", choices=list(PRESETS), default="original",
        help="original (default): the CMU algorithm; accurate: --flip, --thre1 "
        f"{PRESETS['accurate'].thre1} and a person's mean score >= "
        f"{PRESETS['accurate'].min_mean_score} (chosen on COCO train images)",
    )
    group.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, default=None,
        help="also run the mirrored image and average the outputs (about twice the network "
        "time)",
    )
    group.add_argument(
        "--refine", action=argparse.BooleanOptionalAction, default=None,
        help="sub-pixel keypoints from the smoothed heatmaps (the same people)",
    )
    group.add_argument(
        "--scales", type=_scales, default=None,
        help="comma-separated multiples of boxsize / image height, e.g. 1.0,0.5 "
        f"(default {','.join(map(str, CMU_INFERENCE.scales))})",
    )
    group.add_argument("--boxsize", type=int, default=None,
                       help=f"network input height at scale 1 (default {CMU_INFERENCE.boxsize})")
    group.add_argument("--thre1", type=float, default=None,
                       help=f"heatmap peak threshold (default {CMU_GROUPING.thre1})")
    group.add_argument("--thre2", type=float, default=None,
                       help=f"PAF sample threshold (default {CMU_GROUPING.thre2})")
    group.add_argument(
        "--decoder", choices=DECODERS, default="fast",
        help="maps to people: fast (default; the same people, from the low-resolution maps) or "
        "faithful (the original's steps on full-size maps)",
    )
    group.add_argument(
        "--max-pixels", type=positive_int, default=MAX_INPUT_PIXELS,
        help="largest network input of one scale, in pixels; a larger one (an extreme aspect "
        f"ratio) is refused (default {MAX_INPUT_PIXELS:,})",
    )


def add_max_image_pixels_arg(parser: argparse.ArgumentParser) -> None:
    """``--max-image-pixels N``: the largest picture or video frame that is decoded."""
    parser.add_argument("--max-image-pixels", type=positive_int, default=MAX_IMAGE_PIXELS,
                        metavar="N", help="largest image or video frame read, in pixels (read "
                        "from the file's header: a larger input fails before it is decoded; "
                        f"default {MAX_IMAGE_PIXELS:,})")


def params_from_args(args: argparse.Namespace) -> tuple[InferenceParams, GroupingParams]:
    """The config file's parameters (or the CMU defaults), overridden by ``--preset``'s, then
    by the flags given."""
    if args.config is not None:
        inference, grouping = load_config(args.config)
    elif DEFAULT_CONFIG.is_file():
        inference, grouping = load_config(DEFAULT_CONFIG)
    else:
        inference, grouping = CMU_INFERENCE, CMU_GROUPING
    inference, grouping = apply_preset(args.preset, inference, grouping)
    inference = dataclasses.replace(inference, **_given(args, "scales", "boxsize", "flip"))
    grouping = dataclasses.replace(grouping, **_given(args, "thre1", "thre2", "refine"))
    return inference, grouping


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """{name: value} of the flags among ``names`` that were given."""
    return {name: value for name in names if (value := getattr(args, name)) is not None}


def network_from_args(args: argparse.Namespace, threads: int | None = None,
                      hint: str = "latency") -> Network:
    """The model of ``--model`` / ``--arch`` (default weights when no ``--model``), compiled
    by ``--runtime`` (``threads``: onnxruntime's intra-op threads; TensorFlow's are set by the
    caller, before TensorFlow starts; ``hint``: OpenVINO's performance hint)."""
    weights = args.model if args.model is not None else find_default_weights(args.arch)[1]
    precision = getattr(args, "precision", "fp32")
    args.runtime = resolve_runtime(args.runtime, precision)
    with quiet_native_stderr(not getattr(args, "verbose", False)):
        network = None
        if args.runtime == "openvino":
            from rtpose.runtime.openvino_runtime import cached_openvino_network

            # A cached IR: neither TensorFlow nor Keras is imported. Another --arch than the
            # IR's (the weights') goes on to load_model, which says so.
            network = cached_openvino_network(weights, precision, threads, hint)
            if network is not None and args.arch not in (None, network.architecture):
                network = None
        if network is None:
            model, architecture = load_model(args.arch, weights)
            network = make_network(model, architecture, args.runtime, weights, threads,
                                   precision, getattr(args, "calibration", None), hint)
        if network.runtime != "openvino":  # compiled already; a first call would only cost
            # The first call compiles (one graph for every input size), initialises devices.
            network(np.zeros((1, network.stride, network.stride, 3), np.float32))
    return network


def pipeline_from_args(args: argparse.Namespace, threads: int | None = None,
                       hint: str = "latency") -> PosePipeline:
    """``network_from_args`` with the parameters of ``params_from_args`` and ``--decoder``."""
    inference, grouping = params_from_args(args)
    return PosePipeline(network_from_args(args, threads, hint), inference, grouping,
                        args.decoder, args.max_pixels)


def add_tracking_args(parser: argparse.ArgumentParser, offline: bool = False) -> None:
    """``--no-track`` and ``--smooth``: the live One Euro filter's ``--min-cutoff`` and
    ``--beta``, or (``offline``, for files) the whole-track smoother's ``--max-gap`` and
    ``--sigma``."""
    group = parser.add_argument_group("tracking (video)")
    group.add_argument("--no-track", action="store_true",
                       help="no person IDs (by default each person of a video gets an ID that "
                       "stays the same across frames)")
    if offline:
        smooth = ("smooth each person's keypoints over the whole track, filling short gaps "
                  "(filled parts are marked)")
        whole = OfflineParams()
        flags = (("--max-gap", int, whole.max_gap, "FRAMES",
                  "--smooth fills gaps up to this long (0: none)"),
                 ("--sigma", float, whole.sigma, "FRAMES", "--smooth's Gaussian width"))
    else:
        smooth = "filter each keypoint with a One Euro filter (less jitter, little lag)"
        live = OneEuroParams()
        flags = (("--min-cutoff", float, live.min_cutoff, "HZ",
                  "--smooth: cutoff of a still keypoint (lower: smoother)"),
                 ("--beta", float, live.beta, None,
                  "--smooth: how fast the cutoff rises with speed (higher: less lag)"))
    group.add_argument("--smooth", action="store_true", help=smooth)
    for flag, kind, default, metavar, text in flags:
        group.add_argument(flag, type=kind, default=default, metavar=metavar,
                           help=f"{text}; default {default}")


def tracking_from_args(args: argparse.Namespace) -> Tracking | None:
    """The stream's ``track`` option from ``add_tracking_args``'s flags (live)."""
    if args.no_track:
        if args.smooth:
            raise RtposeError("--smooth needs tracking: drop --no-track")
        return None
    if args.min_cutoff <= 0 or args.beta < 0:
        raise RtposeError("--min-cutoff must be > 0 and --beta >= 0")
    return Tracking(smooth=OneEuroParams(args.min_cutoff, args.beta) if args.smooth else None)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """``RtposeError`` → ``error: ...`` on stderr, exit 1; Ctrl+C → ``interrupted``, exit 130.

    From then on, file names that are not UTF-8 are printed as their own bytes (standard output
    would otherwise raise ``UnicodeEncodeError`` on them)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    try:
        yield
    except RtposeError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


def start_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and start its runtime (where it probes for CUDA) inside
    ``quiet_native_stderr`` unless ``verbose``: for a script that needs TensorFlow whatever the
    model or runtime, before anything imports it; TensorFlow prints nothing more afterwards."""
    with quiet_native_stderr(not verbose):
        import tensorflow as tf

        tf.constant(0)


@contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, what native code writes to file descriptor 2 is dropped: TensorFlow's
    start-up lines (absl, oneDNN, "failed call to cuInit" on a machine without a GPU), which
    read as errors but are not. Python's exceptions still propagate; ``--verbose`` keeps all."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
