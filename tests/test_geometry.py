"""Image geometry: input sizes and padding, undoing them, averaging over scales, bounds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import STRIDE, FunctionNetwork, full_maps

from rtpose.config import InferenceParams
from rtpose.decode.faithful import average_maps
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry, prepare_input, scale_factors, upsample_maps
from rtpose.pipeline import PosePipeline
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS


def test_input_sizes_match_the_original_on_ski(shared_data):
    saved = np.load(shared_data / "original_formats" / "ski_mobilenet_thin_netout.npz")
    image = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    assert image.shape == (674, 712, 3)
    params = InferenceParams()
    seen = []

    def network(batch):
        seen.append(batch.shape)
        assert batch.dtype == np.float32
        h, w = batch.shape[1] // 8, batch.shape[2] // 8
        return np.zeros((1, h, w, NUM_HEATMAPS)), np.zeros((1, h, w, NUM_PAFS))

    heatmaps, pafs = full_maps(image, network, params)
    assert seen == [(1, *saved[f"in_hw_{s}"], 3) for s in params.scales]
    assert [saved[f"s{s}"].shape[1:3] for s in params.scales] == [(h // 8, w // 8) for
                                                                  _, h, w, _ in seen]
    assert heatmaps.shape == (674, 712, NUM_HEATMAPS) and pafs.shape == (674, 712, NUM_PAFS)
    assert heatmaps.dtype == pafs.dtype == np.float64


def test_prepare_input_pads_right_and_down():
    image = np.full((50, 70, 3), 10, np.uint8)
    (factor,) = scale_factors(50, InferenceParams(boxsize=100, scales=(1.0,)))
    assert factor == 2.0
    padded, (pad_down, pad_right) = prepare_input(image, 1.3, STRIDE, pad_value=128)
    h, w = round(50 * 1.3), round(70 * 1.3)  # 65, 91
    assert (pad_down, pad_right) == (7, 5)
    assert padded.shape == (h + pad_down, w + pad_right, 3) == (72, 96, 3)
    assert (padded[:h, :w] == 10).all()
    assert (padded[h:] == 128).all() and (padded[:, w:] == 128).all()


def test_no_padding_when_already_a_multiple_of_stride():
    padded, pad = prepare_input(np.zeros((40, 48, 3), np.uint8), 1.0, STRIDE)
    assert pad == (0, 0) and padded.shape == (40, 48, 3)


def test_upsample_maps_undoes_padding():
    # A map at stride 8 of a 64 x 96 input padded by 8 down and 16 right, for a 112 x 160 image.
    maps = np.zeros((8, 12, 2), np.float32)
    maps[:7, :10, 0] = 1.0  # 1 over the image part, 0 over the padding
    maps[..., 1] = 0.5
    up = upsample_maps(maps, (8, 16), (112, 160), STRIDE)
    assert up.shape == (112, 160, 2) and up.dtype == np.float32
    np.testing.assert_allclose(up[..., 1], 0.5, atol=1e-6)
    # Away from the edge, where the bicubic kernel sees no padding, the map stays 1.
    np.testing.assert_allclose(up[:80, :120, 0], 1.0, atol=1e-5)
    assert up[-1, -1, 0] < 0.9  # and the border, next to the padding, is lower


def test_average_of_scales():
    shape = (40, 56, 3)
    ones = (np.ones((5, 7, NUM_HEATMAPS)), np.ones((5, 7, NUM_PAFS)))
    threes = (np.full((10, 14, NUM_HEATMAPS), 3.0), np.full((10, 14, NUM_PAFS), 3.0))
    heatmaps, pafs = average_maps([ones, threes], Geometry(shape[:2], ((0, 0), (0, 0)), STRIDE))
    assert heatmaps.shape == (40, 56, NUM_HEATMAPS) and pafs.shape == (40, 56, NUM_PAFS)
    np.testing.assert_allclose(heatmaps, 2.0, atol=1e-5)
    np.testing.assert_allclose(pafs, 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="one pad per scale"):
        average_maps([ones], Geometry(shape[:2], ((0, 0), (0, 0)), STRIDE))


@pytest.mark.parametrize("scales", [(1.0,), (0.5, 1.0, 1.5, 2.0), (0.7,)])
def test_maps_align_with_the_image(scales):
    """A network that reports where the image is bright: the averaged map peaks where the image
    does, whatever the scales and padding."""
    image = np.zeros((150, 210, 3), np.uint8)
    cv2.circle(image, (180, 125), 6, (255, 255, 255), -1)  # near the padded corner
    cv2.circle(image, (40, 30), 6, (255, 255, 255), -1)

    def network(batch):
        gray = batch[0, :, :, 0] / 255.0
        h, w = gray.shape[0] // 8, gray.shape[1] // 8
        small = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
        heat = np.repeat(small[None, :, :, None], NUM_HEATMAPS, axis=3)
        return heat, np.zeros((1, h, w, NUM_PAFS))

    heatmaps, _ = full_maps(image, network, InferenceParams(boxsize=150, scales=scales))
    blob = heatmaps[:, :, 0]
    for x, y in [(180, 125), (40, 30)]:
        window = blob[y - 12 : y + 13, x - 12 : x + 13]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        assert abs(dx - 12) <= 2 and abs(dy - 12) <= 2


def _zeros_network(batch):
    h, w = batch.shape[1] // STRIDE, batch.shape[2] // STRIDE
    return np.zeros((1, h, w, NUM_HEATMAPS), np.float32), np.zeros((1, h, w, NUM_PAFS), np.float32)


def test_an_extreme_aspect_ratio_is_refused_before_resizing():
    """A 4 x 3000 image at boxsize 368 would be a 368 x 276,000 input (tens of GB)."""
    pipeline = PosePipeline(FunctionNetwork(_zeros_network), InferenceParams(scales=(1.0,)))
    with pytest.raises(RtposeError, match="as 276000x368 pixels .*max-pixels"):
        pipeline.infer(np.zeros((4, 3000, 3), np.uint8))
    small = PosePipeline(FunctionNetwork(_zeros_network), InferenceParams(scales=(1.0,)),
                         max_pixels=100 * 1000)
    with pytest.raises(RtposeError, match="max-pixels 100,000"):
        small.infer(np.zeros((368, 400, 3), np.uint8))
    assert small.infer(np.zeros((368, 200, 3), np.uint8)).geometry.pads == ((0, 0),)


def test_a_scale_that_empties_the_image_is_refused():
    pipeline = PosePipeline(FunctionNetwork(_zeros_network), InferenceParams(scales=(0.001,)))
    with pytest.raises(RtposeError, match="too small for the network"):
        pipeline.infer(np.zeros((674, 712, 3), np.uint8))


def test_a_config_stride_other_than_the_networks_is_refused():
    with pytest.raises(RtposeError, match="stride 7 is not the network's"):
        PosePipeline(FunctionNetwork(_zeros_network), InferenceParams(stride=7))
    PosePipeline(FunctionNetwork(_zeros_network), InferenceParams(stride=STRIDE))
