"""Sub-pixel keypoints (GroupingParams.refine): Gaussian peaks at sub-pixel centres come back to
0.1 pixel from both decoders, and refining moves keypoints without changing the people."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ski_outputs

from rtpose.config import GroupingParams
from rtpose.decode import DECODERS, decode
from rtpose.decode.peaks import peaks_and_patches, subpixel
from rtpose.geometry import Geometry
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS

# (x, y) centres, one part each, away from whole and half pixels.
CENTRES = np.array([[30.3, 40.8], [100.55, 80.1], [60.0, 90.45], [130.77, 30.26],
                    [75.62, 20.93]])


def gaussians(xs: np.ndarray, ys: np.ndarray, sigma: float) -> np.ndarray:
    """Heatmaps (len(ys), len(xs), 19): part i a Gaussian at CENTRES[i] sampled at (xs, ys)."""
    heat = np.zeros((len(ys), len(xs), NUM_HEATMAPS), np.float32)
    for part, (x, y) in enumerate(CENTRES):
        heat[:, :, part] = np.exp(-((xs[None] - x) ** 2 + (ys[:, None] - y) ** 2)
                                  / (2 * sigma**2))
    return heat


@pytest.mark.parametrize("sigma", [2.0, 4.0, 7.0])
def test_full_size_gaussians_are_found_to_a_tenth_of_a_pixel(sigma):
    height, width = 120, 160
    heat = gaussians(np.arange(width), np.arange(height), sigma)
    peaks, patches = peaks_and_patches(heat)
    assert [len(p) for p in peaks] == [1] * len(CENTRES) + [0] * (18 - len(CENTRES))
    refined = subpixel(peaks, patches, (height, width))
    for part, centre in enumerate(CENTRES):
        assert np.abs(peaks[part][0, :2] - centre).max() > 0.2  # the peak pixel is off
        assert np.abs(refined[part][0] - centre).max() <= 0.1


def test_both_decoders_find_low_resolution_gaussians_to_a_tenth_of_a_pixel():
    """Network outputs (stride 8, output cell j centred on input pixel 8 j + 3.5) sampled
    from Gaussians of 12 input pixels: up-sampled and smoothed, their peaks are the centres."""
    height, width = 160, 200
    low = gaussians(8 * np.arange(width // 8) + 3.5, 8 * np.arange(height // 8) + 3.5, 12.0)
    outputs = [(low, np.zeros((*low.shape[:2], NUM_PAFS), np.float32))]
    geometry = Geometry((height, width), ((0, 0),), 8)
    found = {}
    for decoder in DECODERS:
        peaks, people = decode(outputs, geometry, GroupingParams(refine=True), decoder)
        assert len(people) == 0
        found[decoder] = np.array([p[0, :2] for p in peaks[:len(CENTRES)]])
        assert np.abs(found[decoder] - CENTRES).max() <= 0.1
    np.testing.assert_allclose(found["fast"], found["faithful"], atol=1e-3)


def test_peaks_on_the_edge_keep_their_pixel_across_it():
    height, width = 40, 50
    # Part 0's centre at pixel (-0.6, 20.8): its peak is on the left edge, x = 0.
    heat = gaussians(np.arange(width) + 30.9, np.arange(height) + 20.0, 4.0)
    peaks, patches = peaks_and_patches(heat)
    assert peaks[0][:, :2].tolist() == [[0, 21]]
    (x, y), = subpixel(peaks, patches, (height, width))[0]
    assert x == 0 and abs(y - 20.8) <= 0.1


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("scales", [(1.0,), (0.5, 1.0, 1.5, 2.0)])
def test_refining_keeps_the_people_of_the_peak_pixels(shared_data, scales, decoder):
    """The saved MobileNet-thin outputs on ski.jpg: the same people, parts and scores; each
    keypoint moves by at most half a pixel, most of them by some."""
    outputs, geometry = ski_outputs(shared_data, scales)
    _, plain = decode(outputs, geometry, GroupingParams(), decoder)
    peaks, refined = decode(outputs, geometry, GroupingParams(refine=True), decoder)
    assert len(plain) == 5
    np.testing.assert_array_equal(refined.present, plain.present)
    np.testing.assert_array_equal(refined.conf, plain.conf)
    np.testing.assert_array_equal(refined.scores, plain.scores)
    moved = np.abs(refined.xy - plain.xy)[plain.present]
    assert moved.max() <= 0.5 and np.mean(moved > 0.01) > 0.5
    assert all(p[:, :2].astype(np.int64).tolist() != p[:, :2].tolist() for p in peaks if len(p))
