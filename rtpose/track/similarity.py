"""How alike two sets of people are: keypoint similarity (OKS) and box overlap (IoU).

Inputs are keypoints (A, 18, 2) and (B, 18, 2) in pixels with their (A, 18) and (B, 18)
presence masks; outputs are (A, B) matrices in [0, 1].
"""

from __future__ import annotations

import numpy as np

from rtpose.skeleton import PART_SIGMAS

MIN_AREA = 32.0**2  # px²: a person seen by a few parts is not matched more strictly than this
_VARIANCES = (2 * np.array(PART_SIGMAS)) ** 2  # COCO's (2 sigma)² per part


def boxes(xy: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 around each person's parts present (zeros for one with none)."""
    big = np.where(present[..., None], xy, np.inf)
    small = np.where(present[..., None], xy, -np.inf)
    box = np.concatenate([big.min(axis=1), small.max(axis=1)], axis=1)
    return np.where(np.isfinite(box), box, 0.0)


def box_areas(box: np.ndarray) -> np.ndarray:
    """(N,) areas of (N, 4) boxes."""
    return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])


def oks(a_xy: np.ndarray, a_present: np.ndarray, b_xy: np.ndarray, b_present: np.ndarray,
        area: np.ndarray) -> np.ndarray:
    """COCO's object keypoint similarity of every pair, over the parts both have, with the
    scale ``area`` (A,) of the first set (at least ``MIN_AREA``); 0 where no part is shared."""
    d2 = ((a_xy[:, None] - b_xy[None]) ** 2).sum(axis=-1)  # (A, B, 18)
    scale = 2 * np.maximum(area, MIN_AREA)[:, None, None] * _VARIANCES
    both = a_present[:, None] & b_present[None]
    shared = both.sum(axis=-1)
    return (np.exp(-d2 / scale) * both).sum(axis=-1) / np.maximum(shared, 1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of (A, 4) and (B, 4) boxes."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=-1)
    union = box_areas(a)[:, None] + box_areas(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
