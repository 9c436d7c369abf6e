"""Per-image loss masks from COCO person annotations, and their PNG files.

``mask_miss`` is 255 where the training loss counts and 0 on people annotated without keypoints
and on crowd regions (the network must not be punished for seeing people there); ``mask_all`` is
255 on every annotated person and crowd. Both are uint8 (H, W) of the image's size.

A crowd region counts only where no non-crowd person listed before it (in annotation order) lies,
as in the original ``generate_masks.py``; unlike the original, any number of crowds is allowed
(their contributions are united).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO
from tqdm import tqdm

from rtpose.errors import RtposeError
from rtpose.files import atomic_path, remove_stale_temporaries


def annotation_masks(coco: COCO, annotations: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """The binary masks of ``annotations`` as bool ``(N, H, W)`` (``shape`` is (H, W))."""
    masks = np.zeros((len(annotations), *shape), dtype=bool)
    for k, ann in enumerate(annotations):
        mask = coco.annToMask(ann)
        if mask.shape != shape:
            raise RtposeError(
                f"annotation {ann.get('id')} of image {ann['image_id']} decodes to "
                f"{mask.shape}, but the image is {shape}"
            )
        masks[k] = mask.astype(bool)
    return masks


def combine_masks(
    masks: np.ndarray, is_crowd: np.ndarray, num_keypoints: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(mask_miss, mask_all)`` as uint8 0/255 from per-annotation bool masks ``(N, H, W)``.

    ``is_crowd`` and ``num_keypoints`` are ``(N,)`` in annotation order.
    """
    if masks.shape[0] == 0:
        shape = masks.shape[1:]
        return np.full(shape, 255, np.uint8), np.zeros(shape, np.uint8)
    is_crowd = np.asarray(is_crowd, bool)
    people = masks & ~is_crowd[:, None, None]
    # covered[k]: union of the people listed up to k (a crowd's own slot adds nothing)
    covered = np.logical_or.accumulate(people, axis=0)
    crowds = (masks & is_crowd[:, None, None] & ~covered).any(axis=0)
    unlabelled = (people & (np.asarray(num_keypoints) <= 0)[:, None, None]).any(axis=0)
    mask_all = covered[-1] | crowds
    mask_miss = ~(unlabelled | crowds)
    return mask_miss.astype(np.uint8) * 255, mask_all.astype(np.uint8) * 255


def image_masks(coco: COCO, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mask_miss, mask_all)`` of one image, uint8 (H, W), 0 or 255."""
    info = coco.imgs[image_id]
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
    masks = annotation_masks(coco, annotations, (info["height"], info["width"]))
    is_crowd = np.array([ann.get("iscrowd", 0) for ann in annotations], bool)
    num_keypoints = np.array([ann.get("num_keypoints", 0) for ann in annotations], int)
    return combine_masks(masks, is_crowd, num_keypoints)


def mask_paths(masks_dir: Path, image_id: int) -> tuple[Path, Path]:
    """The original's file names: ``mask_miss_%012d.png`` and ``mask_all_%012d.png``."""
    return (
        Path(masks_dir) / f"mask_miss_{image_id:012d}.png",
        Path(masks_dir) / f"mask_all_{image_id:012d}.png",
    )


def read_masks(masks_dir: Path, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(mask_miss, mask_all)`` of one image written by :func:`write_masks`."""
    masks = []
    for path in mask_paths(masks_dir, image_id):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise RtposeError(f"mask {path} is missing or unreadable; run generate_masks.py first")
        masks.append(mask)
    return masks[0], masks[1]


def write_masks(
    coco: COCO,
    images_dir: Path,
    masks_dir: Path,
    image_ids: Iterable[int] | None = None,
    force: bool = False,
    progress: bool = True,
) -> int:
    """Write the mask PNGs of every image (or of ``image_ids``); returns how many were written.

    Images whose two masks exist already are skipped unless ``force``. Each image file must
    exist in ``images_dir`` (its COCO ``file_name``); it is not decoded. Every PNG is written
    under a temporary name and renamed, so an interrupted run leaves no truncated mask that a
    later run would skip as done.
    """
    masks_dir = Path(masks_dir)
    masks_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(masks_dir)
    ids = list(coco.imgs) if image_ids is None else list(image_ids)
    written = 0
    for image_id in tqdm(ids, desc=f"masks -> {masks_dir}", unit="img", disable=not progress):
        image_path = Path(images_dir) / coco.imgs[image_id]["file_name"]
        if not image_path.is_file():
            raise RtposeError(f"image {image_path} of image id {image_id} is missing")
        miss_path, all_path = mask_paths(masks_dir, image_id)
        if not force and miss_path.is_file() and all_path.is_file():
            continue
        mask_miss, mask_all = image_masks(coco, image_id)
        for path, mask in ((miss_path, mask_miss), (all_path, mask_all)):
            with atomic_path(path) as tmp:
                if not cv2.imwrite(str(tmp), mask):
                    raise RtposeError(f"cannot write {path}")
        written += 1
    return written
