"""Synthetic people and the ideal maps a network would predict for them, for tests and benchmarks.

``render_maps`` draws, in the image frame, a Gaussian peak per visible part (heatmaps
(H, W, 19), background = 1 - max over parts) and a unit vector along each limb whose two parts
are visible, within ``limb_width`` pixels of the segment (PAFs (H, W, 38), limb i: channel 2i x,
2i+1 y; where people overlap the vectors are averaged).
"""

from __future__ import annotations

import numpy as np

from rtpose.skeleton import BACKGROUND, LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS, PAF_CHANNELS

# A standing person facing the camera, 1 unit tall from the eyes to the ankles; origin at the
# neck, x right, y down, in CMU part order.
TEMPLATE = np.array([
    (0.0, -0.12),  # nose
    (0.0, 0.0),  # neck
    (-0.10, 0.0), (-0.14, 0.17), (-0.16, 0.32),  # right shoulder, elbow, wrist
    (0.10, 0.0), (0.14, 0.17), (0.16, 0.32),  # left shoulder, elbow, wrist
    (-0.06, 0.36), (-0.07, 0.60), (-0.08, 0.84),  # right hip, knee, ankle
    (0.06, 0.36), (0.07, 0.60), (0.08, 0.84),  # left hip, knee, ankle
    (-0.03, -0.15), (0.03, -0.15),  # right eye, left eye
    (-0.06, -0.13), (0.06, -0.13),  # right ear, left ear
])


def make_people(
    centers: np.ndarray, heights: np.ndarray, rng: np.random.Generator | None = None,
    jitter: float = 0.0,
) -> np.ndarray:
    """People from the template: (N, 18, 3) integer pixel x, y and visibility 1.

    ``centers``: (N, 2) neck positions; ``heights``: (N,) sizes in pixels; ``jitter``: standard
    deviation of a random offset per part, as a fraction of the height.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 1, 2)
    heights = np.asarray(heights, dtype=np.float64).reshape(-1, 1, 1)
    xy = centers + TEMPLATE[None] * heights
    if jitter:
        rng = rng or np.random.default_rng()
        xy = xy + rng.normal(0.0, jitter, xy.shape) * heights
    people = np.ones((len(xy), NUM_PARTS, 3))
    people[:, :, :2] = np.rint(xy)
    return people


def random_people(
    rng: np.random.Generator, n: int, shape: tuple[int, int], height_range=(80, 200),
    jitter: float = 0.02, missing: float = 0.0,
) -> np.ndarray:
    """``n`` people at random places and sizes inside an (H, W) image: (n, 18, 3) as
    ``make_people``, with a fraction ``missing`` of parts made invisible (visibility 0)."""
    h, w = shape
    heights = rng.uniform(*height_range, n)
    margin_x = 0.2 * heights
    centers = np.stack([
        rng.uniform(margin_x, w - 1 - margin_x),
        rng.uniform(0.2 * heights, h - 1 - 0.9 * heights),
    ], axis=1)
    people = make_people(centers, heights, rng, jitter)
    people[:, :, :2] = np.clip(people[:, :, :2], 0, [w - 1, h - 1])
    people[:, :, 2] = rng.random((n, NUM_PARTS)) >= missing
    return people


def render_maps(
    people: np.ndarray, shape: tuple[int, int], sigma: float = 7.0, limb_width: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Ideal heatmaps (H, W, 19) and PAFs (H, W, 38), float32, for people (N, 18, 3) given as
    pixel x, y and visibility (> 0 = visible)."""
    h, w = shape
    heatmaps = np.zeros((h, w, NUM_HEATMAPS), dtype=np.float32)
    pafs = np.zeros((h, w, NUM_PAFS), dtype=np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for person in people:
        visible = person[:, 2] > 0
        for part in np.nonzero(visible)[0]:
            px, py = person[part, :2]
            gauss = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * sigma**2))
            np.maximum(heatmaps[:, :, part], gauss, out=heatmaps[:, :, part])
    heatmaps[:, :, BACKGROUND] = 1.0 - heatmaps[:, :, :NUM_PARTS].max(axis=2)

    for limb, (part_a, part_b) in enumerate(LIMBS):
        total = np.zeros((h, w, 2), dtype=np.float32)
        count = np.zeros((h, w), dtype=np.float32)
        for person in people:
            if person[part_a, 2] <= 0 or person[part_b, 2] <= 0:
                continue
            start, end = person[part_a, :2], person[part_b, :2]
            length = np.hypot(*(end - start))
            if length == 0:
                continue
            unit = (end - start) / length
            dx, dy = xs - start[0], ys - start[1]
            along = dx * unit[0] + dy * unit[1]
            across = np.abs(dx * unit[1] - dy * unit[0])
            on_limb = (along >= -0.5) & (along <= length + 0.5) & (across <= limb_width)
            total[on_limb] += unit.astype(np.float32)
            count[on_limb] += 1
        cx, cy = PAF_CHANNELS[limb]
        pafs[:, :, [cx, cy]] = total / np.maximum(count, 1)[..., None]
    return heatmaps, pafs
