"""Geometric augmentation of a training sample, as the original C++ data transformer did it.

The original ``rmpe_dataset_server`` (the Caffe CPM data transformer) turned one HDF5 sample into a
``crop_size`` square in these steps, in this order; this module reproduces each one:

1. **joints**: COCO's 17 keypoints become the 18 CMU parts (``skeleton.COCO_TO_CMU``); the neck is
   the mid-point of the shoulders. A joint is *labelled* (drawn in the labels) when it is annotated
   (visible or occluded) and lies inside the original image; the neck is labelled when both
   shoulders are. This flag never changes afterwards: a labelled joint that leaves the crop is
   still drawn (the part of its Gaussian or limb that falls on the grid).
2. **scale** by ``target_dist / scale_provided * multiplier`` (bicubic resize of image and mask;
   joints multiplied by the scale, so they sit ``(scale - 1) / 2`` pixels off OpenCV's pixel-centre
   convention, as in the original).
3. **rotate** by ``degree`` about the image centre, the canvas enlarged to the rotated bounding
   box (``cv::RotatedRect::boundingRect``); border 128 for the image, 255 (keep) for the mask.
   That box keeps both end pixels, so even unrotated the canvas is one pixel wider and taller
   and picture and joints move by half a pixel (+0.5, +0.5).
4. **crop** ``crop_size`` around the main person's centre (``objpos``) moved by an integer offset;
   outside the image the crop holds 128 (image) and 255 (mask: padding is trained as background).
5. **flip** (after the crop): ``x -> crop_size - 1 - x`` and left/right parts swapped
   (``skeleton.FLIP_PERMUTATION``).

Joint arithmetic is done in float32 like the original's ``cv::Point2f``. Two resampling methods
give the same geometry and the same joints: ``"steps"`` (default) resizes then rotates like the
original, whose wire samples it reproduces (PAFs bit for bit, heatmaps to 6e-8; 93-99 % of the
image bytes equal, the rest within 2 levels: OpenCV-version rounding);
``"affine"`` composes scale, rotation and crop into one ``cv2.warpAffine`` into the crop: one
bicubic pass instead of two, so the pixels differ by interpolation and by up to a pixel at the
picture's border, but it is faster (see ``benchmarks/dataset_server.py``).
The random draw (:func:`draw_augmentation`) is separate from the geometry (:func:`augment`), so a
test or a notebook can apply a chosen augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from rtpose.skeleton import (
    COCO_TO_CMU,
    FLIP_PERMUTATION,
    LEFT_SHOULDER,
    NECK,
    NUM_PARTS,
    RIGHT_SHOULDER,
)

Method = Literal["steps", "affine"]
PAD_VALUE = 128  # image fill outside the picture
MASK_PAD_VALUE = 255  # mask fill outside the picture: keep (COCO setting of the original)
_COCO_LEFT_SHOULDER = COCO_TO_CMU.index(LEFT_SHOULDER)
_COCO_RIGHT_SHOULDER = COCO_TO_CMU.index(RIGHT_SHOULDER)


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation and label parameters, with the original server's values as defaults."""

    crop_size: int = 368
    stride: int = 8
    target_dist: float = 0.6  # person height / crop height after scaling, at multiplier 1
    scale_prob: float = 1.0  # probability of a random multiplier (else 1)
    scale_min: float = 0.5
    scale_max: float = 1.1
    max_rotate_degree: float = 40.0
    center_perterb_max: float = 40.0  # crop centre offset, pixels, each axis (original spelling)
    flip_prob: float = 0.5
    sigma: float = 7.0  # heatmap Gaussian, crop pixels
    paf_thre: int = 1  # PAF half width, grid cells
    paf_average: bool = False  # average overlapping limbs (the original overwrote: last wins)
    method: Method = "steps"  # resampling, see the module docstring


DEFAULT_PARAMS = AugmentParams()


@dataclass(frozen=True)
class Augmentation:
    """One draw of the random augmentation."""

    scale_multiplier: float = 1.0
    degree: float = 0.0  # counter-clockwise on screen, as cv2.getRotationMatrix2D
    offset: tuple[int, int] = (0, 0)  # crop centre offset (x, y), pixels
    flip: bool = False


@dataclass(frozen=True)
class AugmentedSample:
    """A cropped sample: image (S, S, 3) BGR uint8, mask_miss (S, S) uint8 (255 = keep) and
    joints (P, 18, 3) float32: x, y in crop pixels and 1.0 where labelled; person 0 is the main
    person, the others follow in the sample's order."""

    image: np.ndarray
    mask_miss: np.ndarray
    joints: np.ndarray


def draw_augmentation(rng: np.random.Generator, params: AugmentParams) -> Augmentation:
    """Draw scale multiplier, rotation, crop offset and flip, in the original's order."""
    multiplier = 1.0
    if rng.random() <= params.scale_prob:
        multiplier = float(rng.uniform(params.scale_min, params.scale_max))
    degree = float(rng.uniform(-1.0, 1.0) * params.max_rotate_degree)
    offset = tuple(int(v) for v in rng.uniform(-1.0, 1.0, 2) * params.center_perterb_max)
    return Augmentation(multiplier, degree, offset, bool(rng.random() < params.flip_prob))


def cmu_joints(coco_joints: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """COCO joints (P, 17, 3) (visibility 1 visible, 0 occluded, 2 not labelled) -> CMU (P, 18, 3).

    Column 2 of the result is 1.0 for a labelled joint inside the image, else 0.0. The neck is the
    mid-point of the shoulders, labelled when both are.
    """
    coco = np.asarray(coco_joints, np.float32).reshape(-1, 17, 3)
    h, w = image_hw
    x, y = coco[..., 0], coco[..., 1]
    inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    labelled = (coco[..., 2] != 2) & inside
    out = np.zeros((coco.shape[0], NUM_PARTS, 3), np.float32)
    out[:, list(COCO_TO_CMU), :2] = coco[..., :2]
    out[:, list(COCO_TO_CMU), 2] = labelled
    shoulders = coco[:, [_COCO_LEFT_SHOULDER, _COCO_RIGHT_SHOULDER]]
    out[:, NECK, :2] = (shoulders[:, 0, :2] + shoulders[:, 1, :2]) * np.float32(0.5)
    out[:, NECK, 2] = labelled[:, _COCO_LEFT_SHOULDER] & labelled[:, _COCO_RIGHT_SHOULDER]
    return out


@dataclass(frozen=True)
class _Geometry:
    """One augmentation's maps: ``image`` (3x3) takes source pixels straight into the crop."""

    image: np.ndarray
    scale: np.float32
    rotation: np.ndarray  # 2x3, on the scaled image, canvas-adjusted
    canvas_wh: tuple[int, int]
    crop_origin: tuple[int, int]  # top-left of the crop on the rotated canvas


def _geometry(
    image_hw: tuple[int, int], objpos: np.ndarray, scale_provided: float, aug: Augmentation,
    params: AugmentParams,
) -> _Geometry:
    h, w = image_hw
    scale = np.float32(params.target_dist) / np.float32(scale_provided)
    scale = np.float32(scale * np.float32(aug.scale_multiplier))
    sw, sh = int(np.rint(w * float(scale))), int(np.rint(h * float(scale)))
    # rotation about the scaled image's centre, onto the rotated bounding box
    center = (sw / 2.0, sh / 2.0)
    degree = float(np.float32(aug.degree))
    rot = cv2.getRotationMatrix2D(center, degree, 1.0)
    corners = cv2.boxPoints((center, (float(sw), float(sh)), degree))
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    canvas_wh = (int(x1 - x0 + 1), int(y1 - y0 + 1))
    rot[0, 2] += canvas_wh[0] / 2.0 - center[0]
    rot[1, 2] += canvas_wh[1] / 2.0 - center[1]
    # crop centre: the main person's centre after scale and rotation, plus the offset, rounded
    pos = (objpos.astype(np.float32) * scale).astype(np.float64)
    pos = (rot[:, :2] @ pos + rot[:, 2]).astype(np.float32)
    cx, cy = np.rint(pos + np.asarray(aug.offset, np.float32)).astype(int)
    half = params.crop_size // 2
    crop_origin = (int(cx - half), int(cy - half))

    def lift(m: np.ndarray) -> np.ndarray:
        return np.vstack([m, [0.0, 0.0, 1.0]])

    after_scale = np.array([[1.0, 0.0, -crop_origin[0]], [0.0, 1.0, -crop_origin[1]], [0, 0, 1]])
    after_scale = after_scale @ lift(rot)
    if aug.flip:
        flip = np.array([[-1.0, 0.0, params.crop_size - 1.0], [0.0, 1.0, 0.0], [0, 0, 1]])
        after_scale = flip @ after_scale
    s = float(scale)
    # cv2.resize maps pixel centres: x -> s * x + (s - 1) / 2
    image_scale = np.array([[s, 0.0, 0.5 * (s - 1.0)], [0.0, s, 0.5 * (s - 1.0)], [0, 0, 1]])
    return _Geometry(after_scale @ image_scale, scale, rot, canvas_wh, crop_origin)


def _transform_joints(
    joints: np.ndarray, geo: _Geometry, aug: Augmentation, crop: int
) -> np.ndarray:
    """Move joints (P, 18, 3) like the original: float32 points, one step at a time."""
    xy = joints[..., :2].astype(np.float32) * geo.scale
    xy = (xy.astype(np.float64) @ geo.rotation[:, :2].T + geo.rotation[:, 2]).astype(np.float32)
    xy = xy - np.asarray(geo.crop_origin, np.float32)
    out = joints.astype(np.float32, copy=True)
    out[..., :2] = xy
    if aug.flip:
        out[..., 0] = np.float32(crop - 1) - out[..., 0]
        out = out[:, list(FLIP_PERMUTATION)]
    return out


def _crop(img: np.ndarray, origin: tuple[int, int], size: int, fill: int) -> np.ndarray:
    """The ``size`` square at ``origin`` of ``img``, ``fill`` where it leaves the image."""
    out = np.full((size, size, *img.shape[2:]), fill, img.dtype)
    x0, y0 = origin
    h, w = img.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def _warp_steps(img: np.ndarray, geo: _Geometry, crop: int, flip: bool, fill: int) -> np.ndarray:
    """Resize, rotate onto the enlarged canvas, crop and flip, as the original did.

    Only the canvas up to the crop's bottom-right corner is rotated: ``warpAffine`` computes each
    output pixel from its own position, so these pixels equal those of the whole canvas.
    """
    s = float(geo.scale)
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    x0, y0 = geo.crop_origin
    width = min(max(x0 + crop, 1), geo.canvas_wh[0])
    height = min(max(y0 + crop, 1), geo.canvas_wh[1])
    img = cv2.warpAffine(
        img, geo.rotation, (width, height), flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(fill, fill, fill),
    )
    img = _crop(img, geo.crop_origin, crop, fill)
    return img[:, ::-1].copy() if flip else img


def _warp_affine(img: np.ndarray, geo: _Geometry, crop: int, fill: int) -> np.ndarray:
    return cv2.warpAffine(
        img, geo.image[:2], (crop, crop), flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(fill, fill, fill),
    )


def augment(
    image: np.ndarray,
    mask_miss: np.ndarray,
    joints: np.ndarray,
    objpos: np.ndarray,
    scale_provided: float,
    aug: Augmentation,
    params: AugmentParams = DEFAULT_PARAMS,
) -> AugmentedSample:
    """Scale, rotate, crop and flip one sample.

    ``image`` (H, W, 3) BGR uint8, ``mask_miss`` (H, W) uint8, ``joints`` (P, 18, 3) CMU joints in
    image pixels (:func:`cmu_joints`), ``objpos`` (2,) the main person's centre (x, y) and
    ``scale_provided`` its height / 368.
    """
    geo = _geometry(image.shape[:2], np.asarray(objpos), scale_provided, aug, params)
    crop = params.crop_size
    if params.method == "steps":
        def warp(img: np.ndarray, fill: int) -> np.ndarray:
            return _warp_steps(img, geo, crop, aug.flip, fill)
    elif params.method == "affine":
        def warp(img: np.ndarray, fill: int) -> np.ndarray:
            return _warp_affine(img, geo, crop, fill)
    else:
        raise ValueError(f"unknown augmentation method {params.method!r}")
    if mask_miss.min() == MASK_PAD_VALUE:  # nothing masked: the result is all "keep" anyway
        out_mask = np.full((crop, crop), MASK_PAD_VALUE, np.uint8)
    else:
        out_mask = warp(mask_miss, MASK_PAD_VALUE)
    out_joints = _transform_joints(joints, geo, aug, crop)
    return AugmentedSample(warp(image, PAD_VALUE), out_mask, out_joints)
