"""Which COCO people and images become training samples (the original ``generate_hdf5.py`` rules).

Per image, annotations are visited in ``COCO.getAnnIds`` order. A person is taken when it has at
least 5 labelled keypoints, a segment area of at least 32 x 32 pixels, and its bbox centre is not
closer than 0.3 x max(bbox w, bbox h) of any person taken before it to that person's centre.
Every image with at least one taken person gives ONE sample: the first taken person is the main
person, the others follow in annotation order as "other people" (``people_index`` is always 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from rtpose.coco.metadata import NUM_COCO_JOINTS, SampleMeta

MIN_KEYPOINTS = 5
MIN_AREA = 32 * 32
MIN_CENTER_DISTANCE = 0.3  # times the max bbox side of an already taken person
SCALE_REFERENCE = 368.0  # scale_provided = bbox height / 368
# COCO visibility v (0 unlabelled, 1 occluded, 2 visible) -> the original's code
_VISIBILITY_CODE = np.array([2.0, 0.0, 1.0])


@dataclass(frozen=True)
class Person:
    """A taken person: bbox centre ``objpos`` (x, y), ``scale_provided`` and ``joints`` (17, 3)."""

    objpos: tuple[float, float]
    scale_provided: float
    joints: np.ndarray


@dataclass(frozen=True)
class ImageRecord:
    """One image that yields a sample: its place in the split and its taken people."""

    annolist_index: int  # index of the image in the split's ``COCO.imgs`` order
    image_id: int
    img_height: int
    img_width: int
    image_path: Path
    masks_dir: Path
    people: tuple[Person, ...]

    def meta(
        self, dataset: str, is_validation: bool, write_count: int, total_write_count: int
    ) -> SampleMeta:
        """The sample's metadata: the first person is the main one, the rest are others."""
        main, others = self.people[0], self.people[1:]
        return SampleMeta(
            dataset=dataset,
            img_height=self.img_height,
            img_width=self.img_width,
            is_validation=is_validation,
            num_other_people=len(others),
            people_index=0,
            annolist_index=self.annolist_index,
            write_count=write_count,
            total_write_count=total_write_count,
            objpos=np.array(main.objpos),
            scale_provided=main.scale_provided,
            joints=main.joints,
            objpos_other=np.array([p.objpos for p in others]).reshape(-1, 2),
            scale_provided_other=np.array([p.scale_provided for p in others]),
            joints_other=np.array([p.joints for p in others]).reshape(-1, NUM_COCO_JOINTS, 3),
        )


def coco_joints(keypoints: list[float]) -> np.ndarray:
    """(17, 3) float64 x, y, visibility (1 visible, 0 occluded, 2 unlabelled) from COCO's flat
    ``keypoints`` list (x, y, v per keypoint)."""
    joints = np.array(keypoints, dtype=np.float64).reshape(NUM_COCO_JOINTS, 3)
    joints[:, 2] = _VISIBILITY_CODE[joints[:, 2].astype(int)]
    return joints


def select_people(annotations: list[dict]) -> list[Person]:
    """The taken people of one image's annotations, in annotation order."""
    taken: list[Person] = []
    reach: list[float] = []  # MIN_CENTER_DISTANCE x max bbox side of each taken person
    for ann in annotations:
        if ann.get("num_keypoints", 0) < MIN_KEYPOINTS or ann["area"] < MIN_AREA:
            continue
        x, y, w, h = ann["bbox"]
        center = (x + w / 2, y + h / 2)
        too_close = any(
            np.sqrt((center[0] - p.objpos[0]) ** 2 + (center[1] - p.objpos[1]) ** 2) < r
            for p, r in zip(taken, reach, strict=True)
        )
        if too_close:
            continue
        taken.append(Person(center, h / SCALE_REFERENCE, coco_joints(ann["keypoints"])))
        reach.append(MIN_CENTER_DISTANCE * max(w, h))
    return taken


def image_records(coco: COCO, images_dir: Path, masks_dir: Path) -> Iterator[ImageRecord]:
    """The images of a split that yield a sample, in ``COCO.imgs`` order."""
    for index, (image_id, info) in enumerate(coco.imgs.items()):
        people = select_people(coco.loadAnns(coco.getAnnIds(imgIds=image_id)))
        if people:
            yield ImageRecord(
                annolist_index=index,
                image_id=image_id,
                img_height=info["height"],
                img_width=info["width"],
                image_path=Path(images_dir) / info["file_name"],
                masks_dir=Path(masks_dir),
                people=tuple(people),
            )
