"""Flip averaging: the skeleton's mirror tables, mirroring maps and people, and the pipeline's
mirrored pass aligned with the image (mirrored people where the maps say so, a symmetric image
gives people in mirrored pairs)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import FunctionNetwork
from synthetic import make_people, render_maps

from rtpose.config import InferenceParams
from rtpose.geometry import mirror_maps, scale_factors
from rtpose.people import People
from rtpose.pipeline import DECODERS, PosePipeline
from rtpose.skeleton import (
    FLIP_HEATMAP_PERMUTATION,
    FLIP_LIMB_DIRECTIONS,
    FLIP_LIMBS,
    FLIP_PAF_PERMUTATION,
    FLIP_PAF_SIGNS,
    FLIP_PERMUTATION,
    LIMBS,
    NUM_HEATMAPS,
    NUM_PAFS,
    PARTS,
)

# Heights and widths that pad to nothing at scales 1 and 0.5: the mirrored input is then the
# mirror of the image itself.
IMAGE_SHAPE = (368, 640)
TRUTH = make_people([[120, 90], [250, 100]], [170, 160])  # left half: mirrors do not overlap


def _swap_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    return "left_" + name[6:] if name.startswith("right_") else name


def test_flip_tables_are_involutions_that_follow_the_part_names():
    for p, q in enumerate(FLIP_PERMUTATION):
        assert PARTS[q] == _swap_side(PARTS[p])
    assert FLIP_HEATMAP_PERMUTATION == (*FLIP_PERMUTATION, 18)
    for table in (FLIP_HEATMAP_PERMUTATION, FLIP_LIMBS, FLIP_PAF_PERMUTATION):
        assert [table[table[i]] for i in range(len(table))] == list(range(len(table)))
    for limb, (a, b) in enumerate(LIMBS):
        mirrored = (FLIP_PERMUTATION[a], FLIP_PERMUTATION[b])
        if FLIP_LIMB_DIRECTIONS[limb] < 0:
            mirrored = mirrored[::-1]
        assert LIMBS[FLIP_LIMBS[limb]] == mirrored
        # x negated (the mirror), both where the mirrored limb runs the other way.
        direction = FLIP_LIMB_DIRECTIONS[limb]
        assert FLIP_PAF_SIGNS[2 * limb: 2 * limb + 2] == (-direction, direction)
        assert FLIP_PAF_PERMUTATION[2 * limb: 2 * limb + 2] == (2 * FLIP_LIMBS[limb],
                                                                2 * FLIP_LIMBS[limb] + 1)
    assert all(FLIP_PAF_SIGNS[c] * FLIP_PAF_SIGNS[FLIP_PAF_PERMUTATION[c]] == 1
               for c in range(NUM_PAFS))


def test_mirroring_twice_is_the_identity_on_maps_and_on_people():
    rng = np.random.default_rng(0)
    heat = rng.normal(size=(2, 7, 9, NUM_HEATMAPS)).astype(np.float32)
    paf = rng.normal(size=(2, 7, 9, NUM_PAFS)).astype(np.float32)
    once = mirror_maps(heat, paf)
    assert not np.array_equal(once[0], heat) and not np.array_equal(once[1], paf)
    twice = mirror_maps(*once)
    np.testing.assert_array_equal(twice[0], heat)
    np.testing.assert_array_equal(twice[1], paf)

    people = People(TRUTH.copy(), np.array([20.0, 21.0]), np.array([18, 18]))
    people.keypoints[1, 3] = 0  # a missing part stays missing
    mirrored = people.mirrored(IMAGE_SHAPE[1])
    assert mirrored.keypoints[0, 5, 0] == IMAGE_SHAPE[1] - 1 - people.keypoints[0, 2, 0]
    assert (mirrored.keypoints[1, FLIP_PERMUTATION[3]] == 0).all()
    np.testing.assert_array_equal(mirrored.mirrored(IMAGE_SHAPE[1]).keypoints, people.keypoints)


def test_the_maps_of_mirrored_people_are_the_mirrored_maps():
    """The tables agree with the maps' meaning: maps drawn for the mirrored people (left and
    right parts swapped, limbs pointing the mirrored way) are the mirrored maps."""
    people = People(TRUTH, np.zeros(2), np.zeros(2, np.int64))
    heat, paf = render_maps(TRUTH, IMAGE_SHAPE)
    want_heat, want_paf = render_maps(people.mirrored(IMAGE_SHAPE[1]).keypoints, IMAGE_SHAPE)
    got_heat, got_paf = mirror_maps(heat, paf)
    np.testing.assert_allclose(got_heat, want_heat, atol=1e-6)
    np.testing.assert_allclose(got_paf, want_paf, atol=1e-6)


def blind_network(params: InferenceParams, seen: list | None = None) -> FunctionNetwork:
    """A network that outputs the maps of TRUTH in the frame of whatever it is given (each
    scale's resized image), for every image of the batch: its mirrored pass, turned back,
    shows TRUTH's mirror."""
    factors = scale_factors(IMAGE_SHAPE[0], params)
    calls = []

    def network(batch: np.ndarray):
        if seen is not None:
            seen.append(batch.copy())
        factor = factors[len(calls) % len(factors)]
        calls.append(factor)
        n, h, w, _ = batch.shape
        people = TRUTH.copy()
        people[:, :, :2] = (TRUTH[:, :, :2] + 0.5) * factor - 0.5
        heat, paf = render_maps(people, (h, w), sigma=7 * factor, limb_width=4 * factor)
        small = (w // 8, h // 8)
        heat = cv2.resize(heat, small, interpolation=cv2.INTER_AREA)
        paf = cv2.resize(paf, small, interpolation=cv2.INTER_AREA)
        return np.repeat(heat[None], n, axis=0), np.repeat(paf[None], n, axis=0)

    return FunctionNetwork(network)


def _by_neck_x(people: People) -> People:
    order = np.argsort(people.xy[:, 1, 0])
    return People(people.keypoints[order], people.scores[order], people.part_counts[order])


def test_flip_runs_the_image_and_its_mirror_as_one_batch():
    image = np.random.default_rng(1).integers(0, 255, (*IMAGE_SHAPE[:1], 300, 3), np.uint8)
    params = InferenceParams(scales=(1.0, 0.5), flip=True)
    seen: list[np.ndarray] = []
    PosePipeline(blind_network(params, seen), params).run(image)
    assert [batch.shape[0] for batch in seen] == [2, 2]
    for batch in seen:
        np.testing.assert_array_equal(batch[1], batch[0][:, ::-1])  # padding mirrored too
        assert (batch[0][:, -1] == 128).all()  # 300 and 150 pad to 304 and 152


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("scales", [(1.0,), (1.0, 0.5)])
def test_the_mirrored_pass_lands_on_the_mirrored_pixels(scales, decoder):
    """The blind network sees TRUTH in both passes, so the averaged maps hold TRUTH and its
    mirror, each at half strength: people at the truth and at exactly mirrored pixels."""
    image = np.zeros((*IMAGE_SHAPE, 3), np.uint8)
    plain = InferenceParams(scales=scales)
    flipped = InferenceParams(scales=scales, flip=True)
    alone = PosePipeline(blind_network(plain), plain, decoder=decoder)(image)
    both = _by_neck_x(PosePipeline(blind_network(flipped), flipped, decoder=decoder)(image))

    assert len(alone) == 2 and len(both) == 4
    assert np.abs(_by_neck_x(alone).xy - TRUTH[:, :, :2]).max() <= 3
    found, mirrors = both.keypoints[:2], both.keypoints[2:][::-1]
    assert np.abs(found[:, :, :2] - TRUTH[:, :, :2]).max() <= 3
    # The mirrored people are the found ones mirrored, to the pixel (ties of two symmetric
    # neighbours may fall either way: 1 pixel).
    want = People(found, both.scores[:2], both.part_counts[:2]).mirrored(IMAGE_SHAPE[1])
    np.testing.assert_array_equal(mirrors[:, :, 2] > 0, want.present)
    assert np.abs(mirrors[:, :, :2] - want.xy).max() <= 1
    np.testing.assert_allclose(found[:, :, 2], 0.5 * alone.keypoints[np.argsort(
        alone.xy[:, 1, 0])][:, :, 2], rtol=0.05)


@pytest.mark.slow
def test_a_symmetric_image_gives_mirrored_people(shared_data, mobilenet_weights):
    """The real network on an image that equals its mirror: with flip averaging the averaged
    maps are symmetric, so every person found comes with its mirror image."""
    from rtpose.models import load_model
    from rtpose.runtime import make_network

    ski = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    half = cv2.resize(ski, (380, 360))[:, :320]  # the skiers on the left
    image = cv2.resize(np.hstack([half, half[:, ::-1]]), (640, 368))  # 368 high: no scaling
    model, arch = load_model(None, mobilenet_weights)
    params = InferenceParams(scales=(1.0,), flip=True)
    people = PosePipeline(make_network(model, arch), params)(image)

    assert len(people) >= 4
    mirrored = people.mirrored(image.shape[1])
    for person in mirrored.keypoints:
        present = person[:, 2] > 0
        distance = np.abs(people.xy[:, present] - person[present, :2]).sum(axis=(1, 2))
        match = people.keypoints[np.argmin(distance)]
        np.testing.assert_array_equal(match[:, 2] > 0, person[:, 2] > 0)
        assert np.abs(match[:, :2] - person[:, :2]).max() <= 1
