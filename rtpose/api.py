"""rtpose in one line of Python: ``rtpose.load`` a model, call it on an image, get ``People``.

    >>> import rtpose
    >>> model = rtpose.load("mobilenet_thin", scales=(1.0,))
    >>> people = model(SKI)                          # a path, a BGR uint8 array or a PIL image
    >>> len(people), people.keypoints.shape, people.scores.shape
    (5, (5, 18, 3), (5,))

``rtpose.load(..., hands=True, face=True)`` adds OpenPose's hand and face networks
(``rtpose.wholebody``): the people then carry ``hands`` (N, 2, 21, 3) and ``face`` (N, 70, 3).

``load`` owns what every tool needs: the weights (``rtpose.store``: an explicit path, the
checkout's ``model/keras/``, the user's store, fetched on first use), the ``auto`` runtime
(``rtpose.runtime.resolve_runtime``), OpenVINO's model cached beside the weights (loaded
without TensorFlow or Keras once cached) and the warm-up call. The command-line tools
(``rtpose.tools.common``) and the benchmarks call it with their flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.config import (
    CMU_GROUPING,
    CMU_INFERENCE,
    GroupingParams,
    InferenceParams,
    apply_preset,
    load_config,
)
from rtpose.errors import RtposeError
from rtpose.geometry import MAX_INPUT_PIXELS
from rtpose.native import quiet_native_stderr
from rtpose.people import People
from rtpose.pipeline import PosePipeline, PoseResult
from rtpose.runtime import Network, resolve_runtime
from rtpose.store import resolve

if TYPE_CHECKING:
    from PIL.Image import Image


def make_params(
    config: str | Path | None = None,
    preset: str = "original",
    **overrides: Any,
) -> tuple[InferenceParams, GroupingParams]:
    """The parameters: ``config`` (an original-format file) or the CMU defaults, then
    ``preset``'s, then ``overrides`` that are not None (``scales``, ``boxsize``, ``flip`` of
    ``InferenceParams``; ``thre1``, ``thre2``, ``refine`` of ``GroupingParams``).

    >>> inference, grouping = make_params(preset="accurate", scales=(1.0,))
    >>> inference.scales, inference.flip, grouping.thre1
    ((1.0,), True, 0.02)
    """
    inference, grouping = load_config(config) if config is not None else (CMU_INFERENCE,
                                                                           CMU_GROUPING)
    inference, grouping = apply_preset(preset, inference, grouping)
    given = {name: value for name, value in overrides.items() if value is not None}
    fields = {f.name for f in dataclasses.fields(InferenceParams)}
    unknown = set(given) - fields - {f.name for f in dataclasses.fields(GroupingParams)}
    if unknown:
        raise RtposeError(f"unknown parameter {sorted(unknown)[0]!r}")
    inference = dataclasses.replace(inference, **{k: v for k, v in given.items() if k in fields})
    grouping = dataclasses.replace(grouping,
                                   **{k: v for k, v in given.items() if k not in fields})
    return inference, grouping


def build_network(
    weights: str | Path,
    arch: str | None = None,
    runtime: str = "auto",
    precision: str = "fp32",
    threads: int | None = None,
    hint: str = "latency",
    calibration: str | Path | None = None,
    verbose: bool = False,
) -> Network:
    """The network of the weights file ``weights`` (architecture ``arch``, default read off
    the file), compiled by ``runtime`` (``auto``: ``resolve_runtime``) at ``precision``, and
    warmed up. On OpenVINO, its model cached beside the weights is loaded without TensorFlow or
    Keras; otherwise converted once and cached. ``threads``: onnxruntime's and OpenVINO's
    threads; ``hint``: OpenVINO's performance hint (``latency``, or ``throughput`` for frames
    in flight together); ``calibration``: int8's folder of training images. TensorFlow's
    start-up lines are dropped unless ``verbose``."""
    runtime = resolve_runtime(runtime, precision)
    with quiet_native_stderr(not verbose):
        network = None
        if runtime == "openvino":
            from rtpose.runtime.openvino.cache import cached_openvino_network

            # A cached IR: neither TensorFlow nor Keras is imported. Another arch than the
            # IR's (the weights') goes on to load_model, which says so.
            network = cached_openvino_network(weights, precision, threads, hint)
            if network is not None and arch not in (None, network.architecture):
                network = None
        if network is None:
            from rtpose.models import load_model
            from rtpose.runtime import make_network

            model, architecture = load_model(arch, weights)
            network = make_network(model, architecture, runtime, weights, threads, precision,
                                   calibration, hint)
        if network.runtime != "openvino":  # compiled already; a first call would only cost
            # The first call compiles (one graph for every input size), initialises devices.
            network(np.zeros((1, network.stride, network.stride, 3), np.float32))
    return network


def as_bgr(image: str | Path | np.ndarray | Image) -> np.ndarray:
    """A BGR uint8 (H, W, 3) array from an image file's path, such an array (as given), or a
    PIL image (RGB, converted).

    >>> as_bgr(SKI).shape
    (674, 712, 3)
    """
    if isinstance(image, (str, Path)):
        from rtpose.stream.images import read_image

        return read_image(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL, without importing it
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RtposeError(f"expected a BGR uint8 image (H, W, 3), got {image.dtype} "
                          f"{image.shape}")
    return image


class Model:
    """A pose model ready to run: ``model(image) -> People``. Made by ``rtpose.load``.

    ``pipeline``: the ``PosePipeline`` (network, parameters, decoder); ``weights``: the
    weights file it came from. Loaded with ``hands``/``face``, the pipeline holds OpenPose's hand
    and face networks (``rtpose.wholebody``).

    >>> model = rtpose.load("mobilenet_thin", scales=(1.0,))
    >>> model.architecture, model.runtime
    ('mobilenet_thin', 'openvino')
    """

    def __init__(self, pipeline: PosePipeline, weights: Path) -> None:
        self.pipeline = pipeline
        self.weights = weights

    @property
    def architecture(self) -> str:
        return self.pipeline.network.architecture

    @property
    def runtime(self) -> str:
        return self.pipeline.network.runtime

    def __repr__(self) -> str:
        return (f"Model({self.architecture!r}, runtime={self.runtime!r}, "
                f"scales={self.pipeline.inference.scales}, weights='{self.weights}')")

    def __call__(self, image: str | Path | np.ndarray | Image) -> People:
        """The people in ``image`` (a path, a BGR uint8 (H, W, 3) array or a PIL image):
        ``keypoints`` (N, 18, 3) x, y, score in image pixels, ``scores`` (N,); loaded with
        ``hands``/``face``, also ``hands`` (N, 2, 21, 3) left then right and ``face`` (N, 70, 3).

        >>> people = model(SKI)
        >>> people.keypoints[0, 0].round()              # the first person's nose: x, y, score
        array([612.,  48.,   1.])
        """
        return self.pipeline(as_bgr(image))

    def run(self, image: str | Path | np.ndarray | Image) -> PoseResult:
        """``PoseResult``: the people, every heatmap peak and the time of each stage.

        >>> result = model.run(SKI)
        >>> len(result.people), result.timings.network_s > 0
        (5, True)
        """
        return self.pipeline.run(as_bgr(image))

    def draw(self, image: str | Path | np.ndarray | Image,
             people: People | None = None) -> np.ndarray:
        """A BGR copy of ``image`` with ``people`` drawn (default: the people this model finds
        in it), as the original demo drew them; hands and face as ControlNet draws them.

        >>> drawn = model.draw(SKI, people)
        >>> drawn.shape, bool((drawn != rtpose.read_image(SKI)).any())
        ((674, 712, 3), True)
        """
        from rtpose.draw import draw_people

        image = as_bgr(image)
        people = self(image) if people is None else people
        drawn = draw_people(image, people)
        if people.hands is None and people.face is None:
            return drawn
        from rtpose.wholebody import draw_hands_face

        return draw_hands_face(drawn, people)

    def video(
        self,
        source: int | str | Path | Sequence[str | Path],
        max_frames: int | None = None,
        in_flight: int = 1,
    ) -> Iterator[tuple[np.ndarray, People]]:
        """``(frame, people)`` for each frame of ``source``: a camera index, a video file or a
        list of image files. Capture, network and decoding run in their own threads
        (``rtpose.stream``); a camera keeps only its newest frame while the network is busy.
        ``in_flight`` 2: two frames in the network at once on OpenVINO (more frames per second,
        load with ``hint="throughput"``).

        >>> for frame, people in model.video([SKI, SKI]):
        ...     print(frame.shape, len(people))
        (674, 712, 3) 5
        (674, 712, 3) 5
        """
        from rtpose.stream.sources import open_source
        from rtpose.stream.stream import PoseStream

        if isinstance(source, int):
            opened = open_source(camera=source)
        elif isinstance(source, (str, Path)):
            opened = open_source(video=source)
        else:
            opened = open_source(images=list(source))
        with opened:
            results = PoseStream(opened, self.pipeline, max_frames, in_flight)
            try:
                for frame, _, result in results:
                    yield frame.image, result.people
            finally:
                results.close()


def load(
    model: str | Path | None = None,
    *,
    arch: str | None = None,
    runtime: str = "auto",
    precision: str = "fp32",
    preset: str = "original",
    config: str | Path | None = None,
    scales: Sequence[float] | None = None,
    boxsize: int | None = None,
    thre1: float | None = None,
    thre2: float | None = None,
    flip: bool | None = None,
    refine: bool | None = None,
    decoder: str = "fast",
    max_pixels: int = MAX_INPUT_PIXELS,
    threads: int | None = None,
    hint: str = "latency",
    calibration: str | Path | None = None,
    verbose: bool = False,
    hands: bool = False,
    face: bool = False,
) -> Model:
    """A ready ``Model``. ``model``: a name (``cmu``, ``mobilenet_thin``), a weights file, or
    ``hf://OWNER/REPO/FILE``; None: the best weights present (CMU, then MobileNet-thin), else
    MobileNet-thin fetched into the store (``rtpose.store``: the search order and the store).

    The other arguments are the command-line flags of the same names: ``runtime`` (``auto``,
    ``keras``, ``onnx``, ``openvino``), ``precision`` (``fp32``, ``bf16``, ``int8``; int8
    calibrates once on ``calibration``), ``preset`` (``original`` or ``accurate``), ``config``
    (an original-format config file), then ``scales``, ``boxsize``, ``thre1``, ``thre2``,
    ``flip``, ``refine`` overriding them, ``decoder`` (``fast`` or ``faithful``),
    ``max_pixels``; ``threads``, ``hint``, ``verbose`` as in ``build_network``. ``hands``,
    ``face``: also OpenPose's hand and face networks, their weights found as the body's
    (``rtpose.store``: ``hand``, ``face``), else one line saying how to get them
    (``ModelNotFoundError``); on the body's runtime (keras, else openvino) and precision (int8
    calibrated on the hand and face crops of ``calibration``'s annotated people).

    >>> model = rtpose.load("mobilenet_thin", scales=(1.0,), preset="accurate")
    >>> model.pipeline.inference.flip, len(model(SKI))
    (True, 5)
    """
    weights = resolve(model)
    parts = (None, None)
    if hands or face:  # first: missing weights fail before the body network is built
        from rtpose.wholebody import part_networks

        parts = part_networks(hands, face, runtime, precision, threads, verbose, calibration)
    scales = tuple(float(scale) for scale in scales) if scales is not None else None
    inference, grouping = make_params(config, preset, scales=scales, boxsize=boxsize,
                                      thre1=thre1, thre2=thre2, flip=flip, refine=refine)
    network = build_network(weights, arch, runtime, precision, threads, hint, calibration,
                            verbose)
    return Model(PosePipeline(network, inference, grouping, decoder, max_pixels, *parts), weights)
