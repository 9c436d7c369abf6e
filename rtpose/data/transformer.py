"""One training sample as the original server sent it: augmented image, mask and labels.

``transform`` is the whole of the C++ ``DataTransformer::Transform``: augment (:mod:`augment`),
shrink the missing-people mask to the label grid (bicubic, 1/stride) and scale it to 0..1 in
float32 like the original, draw the labels (:mod:`labels`) and multiply them by that mask. The
output is the wire's three arrays, channel-first: image (3, S, S) uint8 BGR, mask (h, w) float64,
label (57, h, w) float64 = 38 PAF channels then 19 heatmaps (18 parts, background).
"""

from __future__ import annotations

import cv2
import numpy as np

from rtpose.coco.metadata import Sample
from rtpose.data.augment import (
    DEFAULT_PARAMS,
    Augmentation,
    AugmentParams,
    augment,
    cmu_joints,
    draw_augmentation,
)
from rtpose.data.labels import encode_labels


def sample_joints(sample: Sample) -> np.ndarray:
    """All people's CMU joints (P, 18, 3) in image pixels, the main person first.

    "Inside the image" is judged on the metadata's image size, as the original did.
    """
    meta = sample.meta
    coco = np.concatenate([meta.joints[None], meta.joints_other])
    return cmu_joints(coco, (meta.img_height, meta.img_width))


def transform_with(
    sample: Sample, aug: Augmentation, params: AugmentParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one chosen augmentation; returns image (3, S, S), mask (h, w), label (57, h, w)."""
    out = augment(
        sample.image, sample.mask_miss, sample_joints(sample), np.asarray(sample.meta.objpos),
        float(sample.meta.scale_provided), aug, params,
    )
    f = 1.0 / params.stride
    mask = cv2.resize(out.mask_miss, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    mask = (mask.astype(np.float32) / np.float32(255)).astype(np.float64)
    heat, paf = encode_labels(
        out.joints, mask.shape, params.stride, params.sigma, params.paf_thre, params.paf_average
    )
    label = np.concatenate([paf, heat], axis=2).transpose(2, 0, 1) * mask
    return np.ascontiguousarray(out.image.transpose(2, 0, 1)), mask, label


def transform(
    sample: Sample, rng: np.random.Generator, params: AugmentParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a random augmentation and apply it: image (3, S, S), mask (h, w), label (57, h, w)."""
    return transform_with(sample, draw_augmentation(rng, params), params)
