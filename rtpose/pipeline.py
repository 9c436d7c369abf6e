"""Image in, people out: multi-scale inference then decoding, with a timing of each stage.

The one entry point of the demos, the evaluator and the camera demo::

    model, arch = load_model()
    pipeline = PosePipeline.from_model(model, arch)
    people = pipeline(image)  # BGR uint8 (H, W, 3) -> People
    result = pipeline.run(image)  # people, all peaks, timings

Two decoders turn the network's outputs into people (``DECODERS``):

- ``fast`` (default): ``rtpose.fast_decode``, the same peaks and people computed from the
  low-resolution outputs, without up-sampling any map;
- ``faithful``: the original algorithm step by step: every map up-sampled to the image and
  averaged (``inference.upsample_and_average``), then ``grouping.find_peaks`` and
  ``grouping.group_peaks`` on the full-size maps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rtpose import fast_decode
from rtpose.config import CMU_GROUPING, CMU_INFERENCE, GroupingParams, InferenceParams
from rtpose.errors import RtposeError
from rtpose.grouping import find_peaks, group_peaks
from rtpose.inference import Network, run_scales, upsample_and_average
from rtpose.people import People

if TYPE_CHECKING:
    import keras


DECODERS = ("fast", "faithful")


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage of one call. ``network_s`` includes resizing and padding the
    input at each scale.

    Faithful decoder: ``upsample_s`` up-samples and averages the maps, ``peaks_s`` finds the
    peaks, ``association_s`` scores, matches and merges limbs. Fast decoder: no map is
    up-sampled; ``upsample_s`` is the lookup (or, for a new image size or scale geometry, the
    construction) of its precomputed operators, ``peaks_s`` finds the peaks from the
    low-resolution heatmaps, ``association_s`` includes computing the PAFs at the sample points.
    """

    network_s: float
    upsample_s: float
    peaks_s: float
    association_s: float

    @property
    def postprocess_s(self) -> float:
        return self.upsample_s + self.peaks_s + self.association_s

    @property
    def total_s(self) -> float:
        return self.network_s + self.postprocess_s


@dataclass(frozen=True, eq=False)
class PoseResult:
    """People, every heatmap peak per part ((n, 3) x, y, score; the original demo drew them
    all), and the time each stage took."""

    people: People
    peaks: list[np.ndarray]
    timings: Timings


def keras_network(model: keras.Model, architecture) -> Network:
    """A ``Network`` from a Keras testing model and its ``rtpose.models.Architecture``."""
    import keras  # only here: the rest of the pipeline runs any network, without Keras

    def network(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps, pafs = architecture.split_outputs(model(batch, training=False))
        return keras.ops.convert_to_numpy(heatmaps), keras.ops.convert_to_numpy(pafs)

    return network


class PosePipeline:
    """Multi-scale inference with ``network`` (see ``rtpose.inference.Network``), then
    decoding with ``decoder`` (one of ``DECODERS``); the parameters default to the CMU
    demo's."""

    def __init__(
        self,
        network: Network,
        inference: InferenceParams = CMU_INFERENCE,
        grouping: GroupingParams = CMU_GROUPING,
        decoder: str = "fast",
    ) -> None:
        if decoder not in DECODERS:
            raise RtposeError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.network = network
        self.inference = inference
        self.grouping = grouping
        self.decoder = decoder

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        architecture,
        inference: InferenceParams = CMU_INFERENCE,
        grouping: GroupingParams = CMU_GROUPING,
        decoder: str = "fast",
    ) -> PosePipeline:
        """A pipeline running a Keras model of ``architecture`` (``rtpose.models``)."""
        return cls(keras_network(model, architecture), inference, grouping, decoder)

    def run(self, image: np.ndarray) -> PoseResult:
        """People in a BGR uint8 image (H, W, 3), with all peaks and the stage timings."""
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            raise RtposeError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
        start = time.perf_counter()
        outputs, pads = run_scales(image, self.network, self.inference)
        return self.decode(outputs, pads, image.shape, time.perf_counter() - start)

    def decode(
        self,
        outputs: list[tuple[np.ndarray, np.ndarray]],
        pads: list[tuple[int, int]],
        image_shape: tuple[int, ...],
        network_s: float = 0.0,
    ) -> PoseResult:
        """The second half of ``run``: the network's outputs and input pads at each scale
        (``inference.run_scales``) to people, for an image of ``image_shape``, with the
        decoder's stage timings and ``network_s`` as the network's."""
        decode = self._decode_fast if self.decoder == "fast" else self._decode_faithful
        return decode(outputs, pads, image_shape, network_s)

    def _decode_faithful(self, outputs, pads, image_shape, network_s: float) -> PoseResult:
        start = time.perf_counter()
        heatmaps, pafs = upsample_and_average(outputs, pads, image_shape, self.inference.stride)
        upsampled = time.perf_counter()
        peaks = find_peaks(heatmaps, self.grouping.thre1)
        peaked = time.perf_counter()
        people = group_peaks(peaks, pafs, self.grouping)
        done = time.perf_counter()
        timings = Timings(network_s, upsampled - start, peaked - upsampled, done - peaked)
        return PoseResult(people, peaks, timings)

    def _decode_fast(self, outputs, pads, image_shape, network_s: float) -> PoseResult:
        with fast_decode.single_threaded_blas():
            start = time.perf_counter()
            geometry = fast_decode.geometry_of(outputs, pads, image_shape, self.inference.stride)
            prepared = time.perf_counter()
            peaks = fast_decode.find_peaks_lowres(geometry, [h for h, _ in outputs],
                                                  self.grouping.thre1)
            peaked = time.perf_counter()
            pafs = fast_decode.LowResPafs(geometry, [p for _, p in outputs])
            people = group_peaks(peaks, pafs, self.grouping)
            done = time.perf_counter()
        timings = Timings(network_s, prepared - start, peaked - prepared, done - peaked)
        return PoseResult(people, peaks, timings)

    def __call__(self, image: np.ndarray) -> People:
        return self.run(image).people
