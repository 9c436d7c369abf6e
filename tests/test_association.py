"""Peaks and PAF association on full-size maps: the original's people on real network outputs,
synthetic people, edge cases, and agreement with the loop oracle (``reference_grouping.py``)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import reference_grouping as reference
from helpers import ski_outputs
from synthetic import make_people, random_people, render_maps

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.decode.association import connect_limb, group_peaks, score_limb
from rtpose.decode.faithful import average_maps, people_from_maps
from rtpose.decode.peaks import find_peaks
from rtpose.skeleton import LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS


def group_people(heatmaps, pafs, params=CMU_GROUPING):
    return people_from_maps(heatmaps, pafs, params)[1]


def ski_maps(shared_data, scales):
    """Averaged maps of the saved MobileNet-thin outputs on ski.jpg, as the original built them."""
    return average_maps(*ski_outputs(shared_data, scales))


@pytest.mark.parametrize(
    ("setting", "scales"), [("1scale", (1.0,)), ("4scales", (0.5, 1.0, 1.5, 2.0))]
)
def test_ski_matches_the_original(shared_data, setting, scales):
    heatmaps, pafs = ski_maps(shared_data, scales)
    expected = json.loads(
        (shared_data / "original_formats" / "ski_original_people.json").read_text()
    )[setting]
    peaks = find_peaks(heatmaps, GroupingParams().thre1)
    people = group_peaks(peaks, pafs)

    assert len(people) == len(expected) == 5
    parts = np.array([person["parts"] for person in expected])
    np.testing.assert_array_equal(people.xy, parts[:, :, :2])
    np.testing.assert_allclose(people.conf, parts[:, :, 2], atol=1e-4)
    np.testing.assert_allclose(people.scores, [p["score"] for p in expected], atol=1e-4)
    np.testing.assert_array_equal(people.part_counts, [p["n_parts"] for p in expected])

    # Peak ids: the position of each part in the concatenated peak lists.
    all_peaks = np.concatenate(peaks)
    offsets = np.cumsum([0] + [len(p) for p in peaks])
    for person, want in zip(people.keypoints, expected, strict=True):
        ids = [
            offsets[part] + int(np.nonzero((peaks[part][:, :2] == xy).all(axis=1))[0][0])
            if c > 0 else -1
            for part, (*xy, c) in enumerate(person)
        ]
        assert ids == want["cand_ids"]
        assert all(all_peaks[i, 2] == person[p, 2] for p, i in enumerate(ids) if i >= 0)


def test_synthetic_people_are_recovered():
    truth = make_people([[60, 60], [180, 70], [300, 60], [420, 80]], [150, 160, 170, 140])
    heatmaps, pafs = render_maps(truth, (260, 480))
    people = group_people(heatmaps, pafs)

    assert len(people) == 4
    order = np.argsort(people.xy[:, 1, 0])  # by neck x, as placed
    np.testing.assert_array_equal(people.xy[order], truth[:, :, :2])
    np.testing.assert_allclose(people.conf, 1.0)
    np.testing.assert_array_equal(people.part_counts, 18)
    # 18 parts of score 1 and the 17 tree limbs of PAF score 1.
    np.testing.assert_allclose(people.scores, 35.0, atol=1e-6)


def test_find_peaks_order_ids_and_borders():
    heatmaps = np.zeros((60, 80, NUM_HEATMAPS))
    corners = [(0, 0), (79, 0), (40, 30), (0, 59), (79, 59)]  # (x, y), row-major order
    people = np.zeros((len(corners), NUM_PARTS, 3))
    people[:, 3, :2] = corners
    people[:, 3, 2] = 1
    heatmaps, _ = render_maps(people, (60, 80))
    peaks = find_peaks(heatmaps)

    assert [len(p) for p in peaks] == [0, 0, 0, 5] + [0] * 14
    np.testing.assert_array_equal(peaks[3][:, :2], corners)
    np.testing.assert_allclose(peaks[3][:, 2], 1.0)


@pytest.mark.parametrize("spikes", [0, 40, 3000])
def test_find_peaks_equals_smoothing_the_whole_image(spikes):
    """Smoothing only around high values (few spikes), or all (many), finds the same peaks."""
    rng = np.random.default_rng(spikes)
    shape = (200, 260)
    truth = random_people(rng, 6, shape, height_range=(60, 150), jitter=0.03)
    truth[0, :, :2] = np.clip(truth[0, :, :2] - 40, 0, None)  # partly at the image border
    heatmaps, _ = render_maps(truth, shape)
    ys, xs, parts = (rng.integers(0, n, spikes) for n in (*shape, NUM_PARTS))
    heatmaps[ys, xs, parts] += rng.uniform(0.5, 2.0, spikes)

    peaks = find_peaks(heatmaps)
    expected = reference.find_peaks_loops(heatmaps.astype(np.float64))
    for part in range(NUM_PARTS):
        np.testing.assert_array_equal(peaks[part], np.reshape(expected[part], (-1, 4))[:, :3])


def test_no_people_on_empty_maps():
    heatmaps = np.zeros((50, 60, NUM_HEATMAPS))
    pafs = np.zeros((50, 60, NUM_PAFS))
    assert all(len(p) == 0 for p in find_peaks(heatmaps))
    people = group_people(heatmaps, pafs)
    assert len(people) == 0
    assert people.keypoints.shape == (0, NUM_PARTS, 3)


def test_one_part_only_makes_no_person():
    truth = make_people([[60, 40]], [100])
    truth[:, 1:, 2] = 0  # only the nose
    heatmaps, pafs = render_maps(truth, (140, 120))
    assert [len(p) for p in find_peaks(heatmaps)] == [1] + [0] * 17
    assert len(group_people(heatmaps, pafs)) == 0


def test_overlapping_people_are_separated():
    # The second person stands in front of the first, offset by less than a shoulder width.
    truth = make_people([[100, 60], [130, 80]], [170, 150])
    heatmaps, pafs = render_maps(truth, (240, 240))
    people = group_people(heatmaps, pafs)

    assert len(people) == 2
    order = np.argsort(people.xy[:, 1, 0])
    np.testing.assert_array_equal(people.xy[order], truth[:, :, :2])


def test_people_too_small_or_too_weak_are_dropped():
    truth = make_people([[60, 60], [200, 60]], [150, 150])
    truth[1, 3:, 2] = 0  # the second person: nose, neck, right shoulder only
    heatmaps, pafs = render_maps(truth, (240, 280))
    assert len(group_people(heatmaps, pafs)) == 1
    assert len(group_people(heatmaps, pafs, GroupingParams(min_parts=3))) == 2
    assert len(group_people(heatmaps, pafs, GroupingParams(min_mean_score=2.0))) == 0


def test_zero_length_limb_is_not_a_candidate():
    truth = make_people([[60, 60]], [150])
    truth[0, 14, :2] = truth[0, 0, :2]  # right eye on the nose's pixel
    heatmaps, pafs = render_maps(truth, (220, 140))
    peaks = find_peaks(heatmaps)
    nose_eye = LIMBS.index((0, 14))
    score, accepted = score_limb(peaks[0], peaks[14], pafs, nose_eye)
    assert score.shape == accepted.shape == (1, 1) and not accepted[0, 0]
    assert len(connect_limb(peaks[0], peaks[14], pafs, nose_eye)) == 0

    people = group_people(heatmaps, pafs)
    keypoints, scores, counts = reference.group_people_loops(heatmaps, pafs)
    np.testing.assert_array_equal(people.keypoints, keypoints)
    # The eye still joins: eye -> ear starts a second person, which the right shoulder -> ear
    # limb merges into the first.
    assert len(people) == 1
    np.testing.assert_array_equal(people.xy[0], truth[0, :, :2])
    assert people.part_counts[0] == 18


def test_score_limb_penalises_long_limbs():
    pafs = np.zeros((100, 400, NUM_PAFS))
    pafs[:, :, 6] = 1.0  # limb 3's PAF points right everywhere
    a = np.array([[10.0, 50, 1]])
    b = np.array([[30.0, 50, 1], [390.0, 50, 1], [10.0, 90, 1]])
    score, accepted = score_limb(a, b, pafs, limb=3)
    # Short and along the PAF: 1. Long (380 px > 50 px = half the height): 1 + 50/380 - 1.
    # Across the PAF: 0, rejected.
    np.testing.assert_allclose(score[0], [1.0, 50 / 380, 0.0])
    np.testing.assert_array_equal(accepted[0], [True, True, False])


def test_agrees_with_loop_reference_on_random_maps():
    branches = Counter()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        shape = (240, 320)
        truth = random_people(rng, 15, shape, height_range=(60, 160), jitter=0.03, missing=0.15)
        heatmaps, pafs = render_maps(truth, shape)
        # Noise adds spurious peaks and connections, so that every merging case occurs.
        heatmaps += rng.normal(0, 0.05, heatmaps.shape).astype(np.float32)
        pafs += rng.normal(0, 0.1, pafs.shape).astype(np.float32)

        keypoints, scores, counts = reference.group_people_loops(heatmaps, pafs, branches=branches)
        people = group_people(heatmaps, pafs)

        assert len(people) >= 10
        np.testing.assert_array_equal(people.keypoints, keypoints)
        np.testing.assert_array_equal(people.scores, scores)
        np.testing.assert_array_equal(people.part_counts, counts)
    assert {"one", "new", "merge", "two_overlapping"} <= set(branches), branches
