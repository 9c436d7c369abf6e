"""Image in, people out: multi-scale inference then grouping, with a timing of each stage.

The one entry point of the demos, the evaluator and the camera demo::

    model, arch = load_model()
    pipeline = PosePipeline.from_model(model, arch)
    people = pipeline(image)  # BGR uint8 (H, W, 3) -> People
    result = pipeline.run(image)  # people, all peaks, timings
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rtpose.config import CMU_GROUPING, CMU_INFERENCE, GroupingParams, InferenceParams
from rtpose.errors import RtposeError
from rtpose.grouping import find_peaks, group_peaks
from rtpose.inference import Network, run_scales, upsample_and_average
from rtpose.people import People

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage of one call. ``network_s`` includes resizing and padding the
    input at each scale."""

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
    grouping; the parameters default to the CMU demo's."""

    def __init__(
        self,
        network: Network,
        inference: InferenceParams = CMU_INFERENCE,
        grouping: GroupingParams = CMU_GROUPING,
    ) -> None:
        self.network = network
        self.inference = inference
        self.grouping = grouping

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        architecture,
        inference: InferenceParams = CMU_INFERENCE,
        grouping: GroupingParams = CMU_GROUPING,
    ) -> PosePipeline:
        """A pipeline running a Keras model of ``architecture`` (``rtpose.models``)."""
        return cls(keras_network(model, architecture), inference, grouping)

    def run(self, image: np.ndarray) -> PoseResult:
        """People in a BGR uint8 image (H, W, 3), with all peaks and the stage timings."""
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            raise RtposeError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
        start = time.perf_counter()
        outputs, pads = run_scales(image, self.network, self.inference)
        networked = time.perf_counter()
        heatmaps, pafs = upsample_and_average(outputs, pads, image.shape, self.inference.stride)
        upsampled = time.perf_counter()
        peaks = find_peaks(heatmaps, self.grouping.thre1)
        peaked = time.perf_counter()
        people = group_peaks(peaks, pafs, self.grouping)
        done = time.perf_counter()
        timings = Timings(networked - start, upsampled - networked, peaked - upsampled,
                          done - peaked)
        return PoseResult(people, peaks, timings)

    def __call__(self, image: np.ndarray) -> People:
        return self.run(image).people
