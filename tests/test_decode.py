"""The decode contract: the fast method finds the faithful method's peaks and people (the
original's people on ski.jpg at 1 and 4 scales, generated crowds with noise, borders, odd sizes
and empty maps), and the training labels of generated people decode back to them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import STRIDE, ski_outputs
from synthetic import make_people, random_people, render_maps

from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.data.labels import encode_labels
from rtpose.decode import DECODERS, decode, lowres
from rtpose.decode.faithful import average_maps
from rtpose.decode.operators import Banded
from rtpose.decode.peaks import find_peaks, gaussian_smooth
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry, prepare_input, scale_factors, upsample_maps, upsampling_matrix
from rtpose.skeleton import NUM_HEATMAPS, NUM_LIMBS, NUM_PAFS, NUM_PARTS

FOUR_SCALES = (0.5, 1.0, 1.5, 2.0)


def faithful(outputs, geometry, params=CMU_GROUPING):
    """(peaks, people) of the faithful decoder."""
    return decode(outputs, geometry, params, decoder="faithful")


def assert_same_peaks(fast, slow):
    assert [len(p) for p in fast] == [len(p) for p in slow]
    for got, want in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(got[:, :2], want[:, :2])
        np.testing.assert_allclose(got[:, 2], want[:, 2], rtol=1e-5, atol=1e-6)


def assert_same_people(fast, slow):
    assert len(fast) == len(slow)
    np.testing.assert_array_equal(fast.xy, slow.xy)
    np.testing.assert_array_equal(fast.part_counts, slow.part_counts)
    np.testing.assert_allclose(fast.conf, slow.conf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.scores, slow.scores, rtol=1e-5, atol=1e-5)


def lowres_outputs(people, image_shape, scales, rng, boxsize=96, noise=0.0):
    """Network outputs at stride 8 that see ``people`` (N, 18, 3) of an image of
    ``image_shape`` at each scale (maps rendered straight at the output resolution), with
    Gaussian ``noise``; and their geometry."""
    params = InferenceParams(boxsize=boxsize, scales=scales)
    outputs, pads = [], []
    for factor in scale_factors(image_shape[0], params):
        padded, pad = prepare_input(np.zeros(image_shape, np.uint8), factor, STRIDE)
        h, w = padded.shape[0] // 8, padded.shape[1] // 8
        seen = people.copy()
        seen[:, :, :2] = ((people[:, :, :2] + 0.5) * factor - 0.5 - 3.5) / 8
        heat, paf = render_maps(seen, (h, w), sigma=max(7 * factor / 8, 0.6),
                                limb_width=max(4 * factor / 8, 0.8))
        heat += rng.normal(0, noise, heat.shape).astype(np.float32)
        paf += rng.normal(0, noise, paf.shape).astype(np.float32)
        outputs.append((heat, paf))
        pads.append(pad)
    return outputs, Geometry(image_shape[:2], tuple(pads), STRIDE)


@pytest.mark.parametrize(("setting", "scales"), [("1scale", (1.0,)), ("4scales", FOUR_SCALES)])
def test_ski_same_as_faithful_and_the_original(shared_data, setting, scales):
    outputs, geometry = ski_outputs(shared_data, scales)
    peaks, people = decode(outputs, geometry)
    slow_peaks, slow_people = faithful(outputs, geometry)
    assert_same_peaks(peaks, slow_peaks)
    assert_same_people(people, slow_people)

    expected = json.loads(
        (shared_data / "original_formats" / "ski_original_people.json").read_text())[setting]
    parts = np.array([person["parts"] for person in expected])
    assert len(people) == len(expected) == 5
    np.testing.assert_array_equal(people.xy, parts[:, :, :2])
    np.testing.assert_allclose(people.conf, parts[:, :, 2], atol=1e-4)
    np.testing.assert_allclose(people.scores, [p["score"] for p in expected], atol=1e-4)
    np.testing.assert_array_equal(people.part_counts, [p["n_parts"] for p in expected])


@pytest.mark.parametrize(("seed", "scales", "shape"), [
    (0, (1.0,), (240, 320, 3)),
    (1, (1.0,), (301, 457, 3)),
    (2, (0.7, 1.3), (255, 333, 3)),
    (3, FOUR_SCALES, (200, 280, 3)),
])
def test_generated_crowds_same_as_faithful(seed, scales, shape):
    rng = np.random.default_rng(seed)
    truth = random_people(rng, 20, shape[:2], height_range=(50, 140), jitter=0.03, missing=0.1)
    outputs, geometry = lowres_outputs(truth, shape, scales, rng, noise=0.03)
    peaks, people = decode(outputs, geometry)
    slow_peaks, slow_people = faithful(outputs, geometry)
    assert len(slow_people) >= 10
    assert_same_peaks(peaks, slow_peaks)
    assert_same_people(people, slow_people)


def test_noise_only_maps_many_peaks_same_as_faithful():
    rng = np.random.default_rng(7)
    shape = (150, 210, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, (1.0,), rng, noise=0.3)
    peaks, people = decode(outputs, geometry)
    slow_peaks, slow_people = faithful(outputs, geometry)
    assert sum(len(p) for p in slow_peaks) > 100
    assert_same_peaks(peaks, slow_peaks)
    assert_same_people(people, slow_people)


@pytest.mark.parametrize("shape", [(33, 41, 3), (9, 700, 3), (400, 60, 3), (8, 8, 3),
                                   (127, 130, 3)])
def test_odd_sizes_same_as_faithful(shape):
    rng = np.random.default_rng(sum(shape))
    truth = random_people(rng, 3, shape[:2], height_range=(min(shape[:2]) / 2,) * 2)
    outputs, geometry = lowres_outputs(truth, shape, (1.0, 1.4), rng, boxsize=64, noise=0.2)
    peaks, people = decode(outputs, geometry)
    slow_peaks, slow_people = faithful(outputs, geometry)
    assert_same_peaks(peaks, slow_peaks)
    assert_same_people(people, slow_people)


def test_peaks_on_the_borders_and_corners():
    """Spikes on the first and last rows and columns of the outputs peak on the image border;
    the pixels outside the image count as 0, as in the faithful path. (A scale factor of 100 /
    120 leaves no two pixels tied, see the next test.)"""
    shape = (120, 168, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, (1.0,),
                                   np.random.default_rng(0), boxsize=100)
    heat = outputs[0][0]
    h, w = heat.shape[:2]
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, w // 2), (h // 3, 0)]:
        heat[y, x, 3] = 2.0
    peaks, _ = decode(outputs, geometry)
    slow_peaks, _ = faithful(outputs, geometry)
    assert_same_peaks(peaks, slow_peaks)
    xy = peaks[3][:, :2]
    assert len(xy) >= 6 and (xy[:, 0] == 0).any() and (xy[:, 1] == 0).any()
    assert (xy[:, 0] == shape[1] - 1).any() or (xy[:, 1] == shape[0] - 1).any()


def test_a_tie_keeps_one_peak_within_a_pixel():
    """A spike whose up-sampled blob is symmetric about a pixel boundary (a scale factor of
    0.8): two pixels tie to within rounding. The faithful path keeps one by its rounding, the
    fast path the later one: the same number of peaks, at most a pixel apart."""
    shape = (120, 168, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, (1.0,),
                                   np.random.default_rng(0))
    heat = outputs[0][0]
    heat[heat.shape[0] // 2, heat.shape[1] - 1, 5] = 2.0
    heat[4, 6, 7] = 2.0
    peaks, _ = decode(outputs, geometry)
    slow_peaks, _ = faithful(outputs, geometry)
    for part in (5, 7):
        assert len(peaks[part]) == len(slow_peaks[part]) == 1
        assert np.abs(peaks[part][0, :2] - slow_peaks[part][0, :2]).max() <= 1
        np.testing.assert_allclose(peaks[part][0, 2], slow_peaks[part][0, 2], rtol=1e-3)


@pytest.mark.parametrize("value", [0.0, -0.3])
def test_no_people_on_flat_maps(value):
    shape = (100, 140, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, FOUR_SCALES,
                                   np.random.default_rng(0))
    outputs = [(np.full_like(heat, value), np.full_like(paf, value)) for heat, paf in outputs]
    peaks, people = decode(outputs, geometry)
    assert [len(p) for p in peaks] == [0] * NUM_PARTS
    assert all(p.shape == (0, 3) for p in peaks)
    assert len(people) == 0 and people.keypoints.shape == (0, NUM_PARTS, 3)


def test_negative_threshold_compares_borders_with_zero():
    """With thre1 < 0 every pixel passes the threshold; border pixels still need to beat the 0
    outside the image."""
    rng = np.random.default_rng(3)
    shape = (60, 90, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, (1.0,), rng, boxsize=60)
    outputs = [(heat - 0.05 + rng.normal(0, 0.01, heat.shape).astype(np.float32), paf)
               for heat, paf in outputs]
    ops = lowres.operators_for([h for h, _ in outputs], geometry)
    peaks = lowres.find_peaks_lowres(ops, [h for h, _ in outputs], thre1=-0.1)
    slow_peaks = find_peaks(average_maps(outputs, geometry)[0], thre1=-0.1)
    assert sum(len(p) for p in slow_peaks) > 0
    assert_same_peaks(peaks, slow_peaks)


def test_low_res_pafs_equal_the_averaged_maps():
    rng = np.random.default_rng(5)
    shape = (211, 157, 3)
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), shape, (0.8, 1.7), rng,
                                   noise=1.0)
    _, pafs = average_maps(outputs, geometry)
    ops = lowres.operators_for([h for h, _ in outputs], geometry)
    sampler = lowres.LowResPafs(ops, [p for _, p in outputs])
    ys, xs = rng.integers(0, shape[0], (40, 3)), rng.integers(0, shape[1], (40, 3))
    limbs = rng.integers(0, NUM_LIMBS, (40, 3))
    paf_x, paf_y = sampler(ys, xs, limbs)
    assert paf_x.shape == paf_y.shape == (40, 3)
    np.testing.assert_allclose(paf_x, pafs[ys, xs, 2 * limbs], atol=1e-5)
    np.testing.assert_allclose(paf_y, pafs[ys, xs, 2 * limbs + 1], atol=1e-5)
    # One limb for all pixels, as a scalar.
    np.testing.assert_allclose(sampler(ys, xs, 4)[1], pafs[ys, xs, 9], atol=1e-5)


def test_operators_equal_the_faithful_up_sampling():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(7, 11, 1)).astype(np.float32)
    pad, image_shape = (5, 3), (61, 83)
    up_y, up_x = upsampling_matrix(7, 5, 61, STRIDE), upsampling_matrix(11, 3, 83, STRIDE)
    np.testing.assert_allclose(up_y @ maps[:, :, 0] @ up_x.T,
                               upsample_maps(maps, pad, image_shape, STRIDE)[:, :, 0], atol=1e-5)
    banded = Banded.from_dense(up_x)
    np.testing.assert_array_equal(banded.to_dense(), up_x)
    assert banded.start.min() >= 0 and banded.start.max() + banded.width <= banded.n_in


@pytest.mark.parametrize("shape", [(1, 4), (3, 2), (12, 5), (13, 3), (26, 7), (61, 83)])
def test_gaussian_smooth_is_scipys_bit_for_bit(shape):
    """The fast method's smoothing without scipy: scipy's Gaussian exactly, also on lines
    shorter than its radius (12), where the mirroring repeats."""
    from scipy.ndimage import gaussian_filter1d

    values = np.random.default_rng(2).normal(size=shape)
    for axis in (0, 1):
        expected = gaussian_filter1d(values, 3.0, axis=axis, mode="reflect", truncate=4.0)
        np.testing.assert_array_equal(gaussian_smooth(values, axis), expected)


def test_operators_are_cached_and_check_their_maps():
    outputs, geometry = lowres_outputs(np.zeros((0, NUM_PARTS, 3)), (50, 70, 3), (1.0,),
                                       np.random.default_rng(0))
    heatmaps = [h for h, _ in outputs]
    first = lowres.operators_for(heatmaps, geometry)
    same = Geometry((50, 70), geometry.pads, STRIDE)
    assert lowres.operators_for([h.copy() for h in heatmaps], same) is first
    with pytest.raises(ValueError, match="one output per scale"):
        lowres.LowResOperators(geometry, [(7, 9), (7, 9)])
    wrong = np.zeros((3, 4, NUM_HEATMAPS), np.float32)
    with pytest.raises(ValueError, match="maps of shapes"):
        lowres.find_peaks_lowres(first, [wrong])
    with pytest.raises(ValueError, match="38 channels"):
        heat, _ = outputs[0]
        lowres.LowResPafs(first, [np.zeros((*heat.shape[:2], NUM_PAFS - 2), np.float32)])
    with pytest.raises(RtposeError, match="unknown decoder 'slow'"):
        decode(outputs, geometry, decoder="slow")


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_labels_decode_back_to_their_people(decoder):
    """Encoder and decoder mirror each other: the labels that training asks the network to
    predict for generated people (``encode_labels``, stride 8) decode to the same people."""
    rng = np.random.default_rng(11)
    truth = make_people([(100, 120), (260, 110), (180, 250)], [150, 140, 90], rng, jitter=0.02)
    truth[2, 10, 2] = 0  # one person's ankle unlabelled
    heat, paf = encode_labels(truth, (46, 46), STRIDE)
    geometry = Geometry((368, 368), ((0, 0),), STRIDE)
    _, people = decode([(heat.astype(np.float32), paf.astype(np.float32))], geometry,
                       decoder=decoder)
    assert len(people) == 3
    order = np.argsort(people.xy[:, 1, 0])  # by neck x, as the truth is
    found = people.keypoints[order[[0, 2, 1]]]
    labelled = truth[..., 2] > 0
    np.testing.assert_array_equal(found[..., 2] > 0, labelled)
    assert np.abs(found[..., :2] - truth[..., :2])[labelled].max() <= 1.5
