"""Image in, people out: ``PosePipeline`` = ``infer`` (the network at every scale) + ``decode``.

    network = make_network(model, arch)            # rtpose.runtime
    pipeline = PosePipeline(network)
    people = pipeline(image)                       # BGR uint8 (H, W, 3) -> People
    result = pipeline.run(image)                   # people, all peaks, stage timings
    result = pipeline.decode(pipeline.infer(image))  # the same, in two steps (rtpose.stream)
    pending = pipeline.submit(image)               # infer, started; the network runs on
    result = pipeline.decode(pending.result())     # (asynchronously if it can: can_submit)

The image geometry is ``rtpose.geometry``'s; decoding is ``rtpose.decode.decode`` with
``decoder`` ``fast`` (default) or ``faithful``. Nothing here imports Keras.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rtpose.config import CMU_GROUPING, CMU_INFERENCE, GroupingParams, InferenceParams
from rtpose.decode import DECODERS, Stopwatch, decode, faithful
from rtpose.errors import RtposeError
from rtpose.geometry import MAX_INPUT_PIXELS, Geometry, merge_mirrored, network_inputs
from rtpose.people import People
from rtpose.runtime.network import Network, PendingMaps


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage of one image. ``network_s`` includes resizing and padding the
    input at each scale. ``maps_s``: up-sampling and averaging the maps (faithful decoder), or
    the lookup or construction of the low-resolution operators (fast decoder); ``peaks_s``:
    the peaks; ``association_s``: scoring, matching and merging limbs."""

    network_s: float
    maps_s: float
    peaks_s: float
    association_s: float

    @property
    def postprocess_s(self) -> float:
        return self.maps_s + self.peaks_s + self.association_s

    @property
    def total_s(self) -> float:
        return self.network_s + self.postprocess_s


@dataclass(frozen=True, eq=False)
class NetworkOutputs:
    """``PosePipeline.infer``'s result: per scale the network's (heatmaps (h, w, 19), PAFs
    (h, w, 38)) (averaged with the mirror's with ``InferenceParams.flip``), the image geometry,
    and the seconds the network took."""

    outputs: list[tuple[np.ndarray, np.ndarray]]
    geometry: Geometry
    network_s: float


class PendingInference:
    """``PosePipeline.submit``'s handle on one image: ``result()`` waits for what ``infer``
    returns. ``network_s`` counts the preparation, the network's own time on each batch
    (``PendingMaps.network_s``: not the time spent waiting behind another image's batches) and
    the flip merge."""

    def __init__(self, inferred: NetworkOutputs | None = None, pending: Sequence[PendingMaps] = (),
                 geometry: Geometry | None = None, flip: bool = False, prepare_s: float = 0.0):
        self._inferred, self._pending, self._geometry = inferred, list(pending), geometry
        self._flip, self._prepare_s = flip, prepare_s

    def result(self) -> NetworkOutputs:
        if self._inferred is None:
            outputs, network_s = [], self._prepare_s
            for pending in self._pending:
                heat, paf = pending.result()
                start = time.perf_counter()
                outputs.append(_image_outputs(heat, paf, self._flip))
                network_s += pending.network_s + time.perf_counter() - start
            self._inferred = NetworkOutputs(outputs, self._geometry, network_s)
            self._pending = []
        return self._inferred


@dataclass(frozen=True, eq=False)
class PoseResult:
    """People, every heatmap peak per part ((n, 3) x, y, score; the original demo drew them
    all), and the time each stage took."""

    people: People
    peaks: list[np.ndarray]
    timings: Timings


class PosePipeline:
    """Multi-scale inference with ``network`` (``rtpose.runtime.Network``), then decoding with
    ``decoder`` (one of ``DECODERS``); the parameters default to the CMU demo's.

    The network's stride comes from its architecture; a config file that states another one
    (``InferenceParams.stride``) is refused. ``max_pixels`` bounds one scale's network input.
    ``hand_network``, ``face_network``: OpenPose's hand and face networks (``rtpose.wholebody``),
    or None; ``run`` (and ``rtpose.stream``) then adds the people's hands and face.
    """

    def __init__(
        self,
        network: Network,
        inference: InferenceParams = CMU_INFERENCE,
        grouping: GroupingParams = CMU_GROUPING,
        decoder: str = "fast",
        max_pixels: int = MAX_INPUT_PIXELS,
        hand_network: Callable[[np.ndarray], np.ndarray] | None = None,
        face_network: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if decoder not in DECODERS:
            raise RtposeError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        if inference.stride is not None and inference.stride != network.stride:
            raise RtposeError(
                f"the config's stride {inference.stride} is not the network's: the "
                f"{network.architecture} architecture has stride {network.stride}")
        if max_pixels < 1:
            raise RtposeError(f"max_pixels must be positive, got {max_pixels}")
        self.network = network
        self.inference = inference
        self.grouping = grouping
        self.decoder = decoder
        self.max_pixels = max_pixels
        self.hand_network, self.face_network = hand_network, face_network

    def infer(self, image: np.ndarray) -> NetworkOutputs:
        """The network's outputs at every scale for a BGR uint8 image (H, W, 3)."""
        self._check_image(image)
        start = time.perf_counter()
        outputs, pads = [], []
        for batch, pad in network_inputs(image, self.inference, self.network.stride,
                                         self.max_pixels):
            outputs.append(_image_outputs(*self.network(batch), self.inference.flip))
            pads.append(pad)
        geometry = Geometry((image.shape[0], image.shape[1]), tuple(pads), self.network.stride)
        return NetworkOutputs(outputs, geometry, time.perf_counter() - start)

    @property
    def can_submit(self) -> bool:
        """Whether the network runs batches asynchronously (``rtpose.runtime.AsyncNetwork``)."""
        return callable(getattr(self.network, "submit", None))

    def submit(self, image: np.ndarray) -> PendingInference:
        """``infer`` started: with an asynchronous network (``can_submit``), returns once the
        image's batches are submitted, so that the next image can be prepared while the network
        runs; otherwise the network runs here. ``result()`` waits for ``infer``'s result."""
        if not self.can_submit:
            return PendingInference(self.infer(image))
        self._check_image(image)
        pending, pads, prepare_s = [], [], 0.0
        start = time.perf_counter()
        for batch, pad in network_inputs(image, self.inference, self.network.stride,
                                         self.max_pixels):
            prepare_s += time.perf_counter() - start
            pending.append(self.network.submit(batch))
            pads.append(pad)
            start = time.perf_counter()
        prepare_s += time.perf_counter() - start
        geometry = Geometry((image.shape[0], image.shape[1]), tuple(pads), self.network.stride)
        return PendingInference(None, pending, geometry, self.inference.flip, prepare_s)

    def decode(self, inferred: NetworkOutputs) -> PoseResult:
        """People from ``infer``'s result, with every stage's time."""
        clock = Stopwatch()
        peaks, people = decode(inferred.outputs, inferred.geometry, self.grouping, self.decoder,
                               clock)
        laps = clock.laps
        timings = Timings(inferred.network_s, laps["maps"], laps["peaks"], laps["association"])
        return PoseResult(people, peaks, timings)

    def run(self, image: np.ndarray) -> PoseResult:
        """People in a BGR uint8 image (H, W, 3), with all peaks and the stage timings (and
        their hands and face where the pipeline has those networks)."""
        result = self.decode(self.infer(image))
        return replace(result, people=self.with_hands_face(image, result.people))

    def with_hands_face(self, image: np.ndarray, people: People) -> People:
        """``people`` found in ``image`` with their hands and face, from the pipeline's hand and
        face networks; as given without them."""
        if self.hand_network is None and self.face_network is None:
            return people
        from rtpose.wholebody import with_hands_face

        return with_hands_face(image, people, self.hand_network, self.face_network)

    def __call__(self, image: np.ndarray) -> People:
        return self.run(image).people

    def _check_image(self, image: np.ndarray) -> None:
        """A BGR image, and one the decoder can afford (before the network runs)."""
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            raise RtposeError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
        if self.decoder == "faithful":
            faithful.check_image_size(*image.shape[:2])


def _image_outputs(heat, paf, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """One image's ``(heat, paf)`` from a batch's: the image's own, or with ``flip`` the batch
    of the image and its mirror merged."""
    heat, paf = np.asarray(heat), np.asarray(paf)
    return merge_mirrored(heat, paf) if flip else (heat[0], paf[0])

