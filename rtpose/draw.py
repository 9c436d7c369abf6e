"""Drawing people as the original demo did: part dots, then translucent limb ellipses.

Dots: a filled circle of radius 4 at every peak (or every part of every person), in the part's
colour ``skeleton.COLORS[part]``. Limbs: for each of the first 17 limbs of
``skeleton.DECODE_ORDER`` (position k, colour ``COLORS[k]``) and each person having both parts,
a filled ellipse 4 px thick along the limb, blended in with 60 % opacity.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rtpose.people import People
from rtpose.skeleton import COLORS, DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS

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
    return canvas


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
