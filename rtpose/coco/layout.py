"""Where a COCO split's files live, and loading its annotation file with clear errors.

The default layout under ``dataset/`` is the original's (see ``dataset/README.md``)::

    annotations/person_keypoints_{mode}2017.json
    {mode}2017/%012d.jpg
    {mode}mask2017/mask_miss_%012d.png, mask_all_%012d.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pycocotools.coco import COCO

from rtpose.coco.evaluate import load_coco
from rtpose.errors import RtposeError

MODES = ("train", "val")


@dataclass(frozen=True)
class CocoSplit:
    """The annotation file, image folder and mask folder of one COCO split."""

    annotations: Path
    images: Path
    masks: Path

    @classmethod
    def from_dataset_dir(cls, dataset_dir: str | Path, mode: str) -> CocoSplit:
        """The original layout of split ``mode`` ("train" or "val") under ``dataset_dir``."""
        if mode not in MODES:
            raise RtposeError(f"unknown COCO split {mode!r}; expected one of {', '.join(MODES)}")
        root = Path(dataset_dir)
        return cls(
            annotations=root / "annotations" / f"person_keypoints_{mode}2017.json",
            images=root / f"{mode}2017",
            masks=root / f"{mode}mask2017",
        )

    def load(self) -> COCO:
        """The split's annotations as a pycocotools ``COCO`` index; missing file -> RtposeError."""
        return load_coco(self.annotations)
