"""Drawing people as the original demo did: part dots, then translucent limb ellipses.

Dots: a filled circle of radius 4 at every peak (or every part of every person), in the part's
colour ``skeleton.COLORS[part]``. Limbs: for each of the first 17 limbs of
``skeleton.DECODE_ORDER`` (position k, colour ``COLORS[k]``) and each person having both parts,
a filled ellipse 4 px thick along the limb, blended in with 60 % opacity.

Tracked people (``People.person_ids``) also get their ID: a box around their parts and the
number beside the head (the highest part of nose, eyes, ears, neck), in the ID's colour
(``id_color``: hues spread by the golden ratio, so that neighbouring IDs differ).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rtpose.people import People
from rtpose.skeleton import COLORS, DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS

HEAD_PARTS = (0, 14, 15, 16, 17, 1)  # nose, eyes, ears, neck
GOLDEN_RATIO = 0.618033988749895
DOT_RADIUS = 4
LIMB_HALF_WIDTH = 4
LIMB_WEIGHTS = (0.4, 0.6)  # canvas, ellipse


def draw_people(
    image: np.ndarray, people: People, peaks: list[np.ndarray] | None = None
) -> np.ndarray:
    """A copy of the BGR uint8 ``image`` with ``people`` drawn on it.

    ``peaks``: per part (n, >=2) x, y of all heatmap peaks, drawn as dots as the original did
    (``PoseResult.peaks``); without them, the people's own parts are the dots.

    >>> image = rtpose.read_image(SKI)
    >>> drawn = rtpose.draw_people(image, rtpose.load("mobilenet_thin", scales=(1.0,))(image))
    >>> drawn.shape, drawn.dtype, bool((drawn != image).any())
    ((674, 712, 3), dtype('uint8'), True)
    """
    canvas = image.copy()
    if peaks is None:
        peaks = [people.xy[people.present[:, part], part] for part in range(NUM_PARTS)]
    for part, points in enumerate(peaks):
        for x, y in np.asarray(points)[:, :2]:
            cv2.circle(canvas, (int(x), int(y)), DOT_RADIUS, COLORS[part], thickness=-1)

    for position, limb in enumerate(DECODE_ORDER[:NUM_TREE_LIMBS]):
        part_a, part_b = LIMBS[limb]
        for xy, present in zip(people.xy, people.present, strict=True):
            if present[part_a] and present[part_b]:
                _blend_limb(canvas, xy[part_a], xy[part_b], COLORS[position])
    if people.person_ids is not None:
        _draw_ids(canvas, people)
    return canvas


def id_color(person_id: int) -> tuple[int, int, int]:
    """A bright BGR colour for a person ID."""
    hue = int(180 * ((person_id * GOLDEN_RATIO) % 1.0))
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _draw_ids(canvas: np.ndarray, people: People) -> None:
    """Each tracked person's box and ID number beside the head, in the ID's colour."""
    for xy, present, person_id in zip(people.xy, people.present, people.person_ids,
                                      strict=True):
        if not present.any():
            continue
        color = id_color(int(person_id))
        (x0, y0), (x1, y1) = xy[present].min(axis=0), xy[present].max(axis=0)
        cv2.rectangle(canvas, (int(x0), int(y0)), (int(x1), int(y1)), color, 1, cv2.LINE_AA)
        head = [p for p in HEAD_PARTS if present[p]]
        x, y = xy[min(head, key=lambda p: xy[p, 1])] if head else (x0, y0)
        origin = (int(x) + 8, int(y) - 8)
        for ink, thickness in (((0, 0, 0), 4), (color, 2)):
            cv2.putText(canvas, str(int(person_id)), origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7, ink,
                        thickness, cv2.LINE_AA)


def _blend_limb(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, color) -> None:
    """Blend a filled ellipse from a to b into ``canvas``, in place.

    The original blended a whole-image copy; outside the ellipse that blend leaves pixels
    unchanged, so only the ellipse's bounding box is blended here, with the same result.
    """
    (xa, ya), (xb, yb) = a, b
    center = (int((xa + xb) / 2), int((ya + yb) / 2))
    length = ((xa - xb) ** 2 + (ya - yb) ** 2) ** 0.5
    angle = math.degrees(math.atan2(ya - yb, xa - xb))
    polygon = cv2.ellipse2Poly(center, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)

    x, y, w, h = cv2.boundingRect(polygon)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    region = canvas[y0:y1, x0:x1]
    filled = region.copy()
    cv2.fillConvexPoly(filled, polygon - np.array([x0, y0], dtype=polygon.dtype), color)
    canvas[y0:y1, x0:x1] = cv2.addWeighted(region, LIMB_WEIGHTS[0], filled, LIMB_WEIGHTS[1], 0)
