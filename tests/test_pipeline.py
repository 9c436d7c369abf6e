"""PosePipeline with a stand-in network that "sees" synthetic people: image in, people out, by
both decoders, in one call or as infer + decode; what the timings measure; the --decoder flag."""

from __future__ import annotations

import argparse
import itertools
import time

import cv2
import numpy as np
import pytest
from helpers import FakeClock, FunctionNetwork
from synthetic import make_people, render_maps

from rtpose.config import InferenceParams
from rtpose.errors import RtposeError
from rtpose.geometry import scale_factors
from rtpose.pipeline import DECODERS, PosePipeline
from rtpose.tools.common import add_inference_args

IMAGE_SHAPE = (300, 420)
TRUTH = make_people([[90, 80], [250, 90]], [170, 160])


def ideal_network(params: InferenceParams, clock: FakeClock | None = None,
                  delay_s: float = 0.0):
    """A network that outputs, at stride 8, the maps of TRUTH as seen in its input: the image
    resized by each scale's factor in turn, then padded; each call moves ``clock`` on by
    ``delay_s``."""
    factors = itertools.cycle(scale_factors(IMAGE_SHAPE[0], params))

    def network(batch: np.ndarray):
        if clock is not None:
            clock.advance(delay_s)
        factor = next(factors)
        _, h, w, _ = batch.shape
        people = TRUTH.copy()
        people[:, :, :2] = (TRUTH[:, :, :2] + 0.5) * factor - 0.5
        heat, paf = render_maps(people, (h, w), sigma=7 * factor, limb_width=4 * factor)
        small = (w // 8, h // 8)
        return (cv2.resize(heat, small, interpolation=cv2.INTER_AREA)[None],
                cv2.resize(paf, small, interpolation=cv2.INTER_AREA)[None])

    return FunctionNetwork(network)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("scales", [(1.0,), (0.8, 1.2)])
def test_people_come_back_through_scaling_and_padding(scales, decoder):
    image = np.zeros((*IMAGE_SHAPE, 3), np.uint8)
    params = InferenceParams(scales=scales)
    pipeline = PosePipeline(ideal_network(params), params, decoder=decoder)
    result = pipeline.run(image)

    assert len(result.people) == 2
    order = np.argsort(result.people.xy[:, 1, 0])
    error = np.abs(result.people.xy[order] - TRUTH[:, :, :2])
    assert error.max() <= 3
    assert all(len(p) >= 2 for p in result.peaks)

    assert len(pipeline(image)) == 2
    two_steps = pipeline.decode(pipeline.infer(image))
    np.testing.assert_array_equal(two_steps.people.keypoints, result.people.keypoints)


def test_timings_split_the_network_from_the_decoding(monkeypatch):
    """The network's time (here 1 s per scale on a clock the network moves on) is in
    ``network_s`` only (none of those 2 s shows in the decoding's stages); the stages add up to
    the rest of the call."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    image = np.zeros((*IMAGE_SHAPE, 3), np.uint8)
    params = InferenceParams(scales=(0.8, 1.2))
    pipeline = PosePipeline(ideal_network(params, clock, delay_s=1.0), params)
    start = time.perf_counter()
    t = pipeline.run(image).timings
    elapsed = time.perf_counter() - start
    assert t.network_s >= 2.0
    assert 0 < t.postprocess_s < 0.5  # the fast decoder takes milliseconds here
    assert t.maps_s > 0 and t.peaks_s > 0 and t.association_s > 0
    assert t.total_s <= elapsed < t.total_s + 0.05


def test_wrong_image_shape_is_a_clear_error():
    pipeline = PosePipeline(ideal_network(InferenceParams()))
    with pytest.raises(RtposeError, match=r"BGR image of shape \(H, W, 3\), got \(20, 30\)"):
        pipeline(np.zeros((20, 30), np.uint8))


@pytest.mark.parametrize("scales", [(1.0,), (0.8, 1.2)])
def test_decoders_return_the_same_people_and_peaks(scales):
    image = np.zeros((*IMAGE_SHAPE, 3), np.uint8)
    params = InferenceParams(scales=scales)
    fast = PosePipeline(ideal_network(params), params).run(image)
    faithful = PosePipeline(ideal_network(params), params, decoder="faithful").run(image)
    np.testing.assert_array_equal(fast.people.xy, faithful.people.xy)
    np.testing.assert_array_equal(fast.people.part_counts, faithful.people.part_counts)
    np.testing.assert_allclose(fast.people.scores, faithful.people.scores, atol=1e-5)
    for got, want in zip(fast.peaks, faithful.peaks, strict=True):
        np.testing.assert_array_equal(got[:, :2], want[:, :2])


def test_decoder_choice():
    assert PosePipeline(ideal_network(InferenceParams())).decoder == "fast"
    with pytest.raises(RtposeError, match="unknown decoder 'exact'; choose one of fast, faithful"):
        PosePipeline(ideal_network(InferenceParams()), decoder="exact")
    parser = argparse.ArgumentParser()
    add_inference_args(parser)
    assert parser.parse_args([]).decoder == "fast"
    assert parser.parse_args(["--decoder", "faithful"]).decoder == "faithful"
    with pytest.raises(SystemExit):
        parser.parse_args(["--decoder", "exact"])
