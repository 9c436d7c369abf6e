"""What the command-line tools share: model and inference flags, and one way to fail.

Every helper reports bad input as an ``RtposeError`` with a one-line message; a tool's ``main``
runs its work inside ``one_line_errors()``, which turns it into ``error: ...`` and exit code 1,
and Ctrl+C (or SIGTERM, inside ``rtpose.files.sigterm_as_interrupt()``) into ``interrupted``
and exit code 130, without a traceback.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtpose.api import build_network, make_params
from rtpose.config import (
    CMU_GROUPING,
    CMU_INFERENCE,
    PRESETS,
    GroupingParams,
    InferenceParams,
    parse_scales,
)
from rtpose.errors import RtposeError
from rtpose.files import INTERRUPTED_EXIT
from rtpose.geometry import MAX_INPUT_PIXELS
from rtpose.models import ARCHITECTURES
from rtpose.native import quiet_native_stderr, start_tensorflow  # noqa: F401 (the tools' names)
from rtpose.pipeline import DECODERS, PosePipeline
from rtpose.runtime import PRECISIONS, RUNTIMES, Network, resolve_runtime
from rtpose.store import resolve
from rtpose.stream.images import MAX_IMAGE_PIXELS
from rtpose.track import OfflineParams, OneEuroParams, Tracking

OVERRIDES = ("scales", "boxsize", "flip", "thre1", "thre2", "refine")

DEFAULT_CONFIG = Path("config")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model PATH``, ``--arch NAME`` and ``--runtime NAME``."""
    parser.add_argument(
        "--model", default=None,
        help="weights file or model name (cmu, mobilenet_thin) (default: the best present in "
        "the checkout's model/keras/, then in the store: CMU, then MobileNet-thin; else "
        "MobileNet-thin fetched into the store)",
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
             "(default dataset/train2017; with --hands or --face, their COCO keypoint "
             "annotations in ../annotations/ too); read once, when the int8 model is not "
             "cached yet")
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
    """The config file's parameters (``--config``, else ``./config`` if present, else the CMU
    defaults), overridden by ``--preset``'s, then by the flags given."""
    config = args.config if args.config is not None else (
        DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    return make_params(config, args.preset,
                       **{name: getattr(args, name) for name in OVERRIDES})


def network_from_args(args: argparse.Namespace, threads: int | None = None,
                      hint: str = "latency") -> Network:
    """``rtpose.api.build_network`` of ``--model`` (default: ``rtpose.store.resolve``'s, the
    best weights present, else MobileNet-thin fetched), ``--arch``, ``--runtime``,
    ``--precision``, ``--calibration``, ``--verbose``; ``args.runtime`` becomes the one
    ``auto`` chose."""
    precision = getattr(args, "precision", "fp32")
    args.runtime = resolve_runtime(args.runtime, precision)
    return build_network(resolve(args.model or args.arch), args.arch, args.runtime, precision,
                         threads, hint, getattr(args, "calibration", None),
                         getattr(args, "verbose", False))


def pipeline_from_args(args: argparse.Namespace, threads: int | None = None,
                       hint: str = "latency") -> PosePipeline:
    """``network_from_args`` with the parameters of ``params_from_args`` and ``--decoder``; with
    ``--hands`` / ``--face`` (``rtpose.wholebody.add_hands_face_args``), also the hand and face
    networks (loaded first: missing weights fail before the body network is built)."""
    inference, grouping = params_from_args(args)
    parts = (None, None)
    if getattr(args, "hands", False) or getattr(args, "face", False):
        from rtpose.wholebody import part_networks_from_args

        parts = part_networks_from_args(args, threads)
    return PosePipeline(network_from_args(args, threads, hint), inference, grouping,
                        args.decoder, args.max_pixels, *parts)


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
