"""Drawing: same pixels as the original demo's whole-image blending, colours, no mutation."""

from __future__ import annotations

import math

import cv2
import numpy as np
from synthetic import make_people

from rtpose.draw import draw_people
from rtpose.people import People
from rtpose.skeleton import COLORS, DECODE_ORDER, LIMBS, NUM_PARTS


def draw_like_the_original(image, people, peaks):
    """The original demo's drawing loop: a whole-image copy and blend per limb."""
    canvas = image.copy()
    for part in range(NUM_PARTS):
        for x, y in peaks[part][:, :2]:
            cv2.circle(canvas, (int(x), int(y)), 4, COLORS[part], thickness=-1)
    for i in range(17):
        a, b = LIMBS[DECODE_ORDER[i]]
        for person in people.keypoints:
            if person[a, 2] <= 0 or person[b, 2] <= 0:
                continue
            current = canvas.copy()
            ys, xs = person[[a, b], 1], person[[a, b], 0]
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))),
                                       (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(current, polygon, COLORS[i])
            canvas = cv2.addWeighted(canvas, 0.4, current, 0.6, 0)
    return canvas


def people_from(keypoints: np.ndarray) -> People:
    n = len(keypoints)
    return People(keypoints, np.full(n, 20.0), np.full(n, NUM_PARTS))


def test_same_pixels_as_the_original(repo_root):
    image = cv2.imread(str(repo_root / "sample_images" / "ski.jpg"))
    rng = np.random.default_rng(0)
    # People of all sizes, partly outside the image and with missing parts.
    keypoints = make_people(
        [[100, 100], [300, 200], [700, 600], [20, 650], [400, 30]], [200, 300, 250, 150, 400],
        rng, jitter=0.05,
    )
    keypoints[:, :, 2] = rng.uniform(0.3, 1.0, (5, NUM_PARTS)) * (rng.random((5, NUM_PARTS)) > 0.2)
    keypoints[keypoints[:, :, 2] == 0] = 0
    people = people_from(keypoints)
    peaks = [np.concatenate([keypoints[keypoints[:, p, 2] > 0, p], rng.uniform(0, 700, (3, 3))])
             for p in range(NUM_PARTS)]
    before = image.copy()

    drawn = draw_people(image, people, peaks)

    np.testing.assert_array_equal(drawn, draw_like_the_original(image, people, peaks))
    np.testing.assert_array_equal(image, before)  # the input is not touched
    assert not np.array_equal(drawn, image)


def test_dots_and_limb_colours():
    image = np.zeros((200, 200, 3), np.uint8)
    keypoints = make_people([[100, 60]], [150])
    drawn = draw_people(image, people_from(keypoints))

    # The right ankle ends only the right knee -> ankle limb (DECODE_ORDER position 8): its
    # dot is covered by that limb's ellipse, blended at 60 % over the dot's colour.
    x, y = keypoints[0, 10, :2].astype(int)
    expected = np.round(0.4 * np.array(COLORS[10]) + 0.6 * np.array(COLORS[8]))
    np.testing.assert_allclose(drawn[y, x], expected, atol=1)

    # Mid right thigh (hip -> knee, position 7): the limb over black.
    x, y = keypoints[0, [8, 9], :2].mean(axis=0).astype(int)
    np.testing.assert_allclose(drawn[y, x], np.round(0.6 * np.array(COLORS[7])), atol=1)


def test_nothing_to_draw():
    image = np.full((50, 60, 3), 77, np.uint8)
    drawn = draw_people(image, People.empty())
    np.testing.assert_array_equal(drawn, image)
    assert drawn is not image
