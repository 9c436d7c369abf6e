"""int8 calibration data: training images prepared as the pipeline feeds the network.

``CalibrationImages(folder, stride)`` is the set of batches the openvino runtime's int8
quantisation (``rtpose.runtime.openvino.quantize``) calibrates on, read only when iterated
(a fresh cached int8 IR reads none): the JPEG images of ``folder`` at scale 1, float32
``(1, H, W, 3)`` BGR 0..255 each. The default folder, ``DEFAULT_CALIBRATION``, is COCO
**train2017** as ``dataset/get_dataset.sh`` places it; a validation folder is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.paths import REPO_ROOT
from rtpose.runtime.openvino.network import OpenVinoError

DEFAULT_CALIBRATION = REPO_ROOT / "dataset" / "train2017"
CALIBRATION_IMAGES = 300  # at most this many calibration images (coco_mini has 80)


@dataclass(frozen=True)
class CalibrationImages:
    """The images of ``folder`` (at most ``limit``) as calibration batches for a network of
    ``stride``; ``calibration_batches`` reads them at each iteration."""

    folder: Path
    stride: int
    limit: int = CALIBRATION_IMAGES

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(calibration_batches(self.folder, self.stride, self.limit))


def calibration_batches(folder: str | Path, stride: int,
                        limit: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """The JPEG images of ``folder`` (sorted by name, at most ``limit``) as the pipeline feeds
    them at scale 1: resized to 368 high (bicubic), padded to multiples of ``stride``; float32
    ``(1, H, W, 3)`` each. Refuses a validation folder (``val*``)."""
    from rtpose.config import CMU_INFERENCE
    from rtpose.geometry import prepare_input
    from rtpose.stream.images import read_image

    folder = Path(folder)
    if folder.name.lower().startswith("val"):
        raise OpenVinoError(f"{folder}: calibrating on validation images would bias their "
                            f"evaluation; use training images (e.g. coco_mini/train2017)")
    files = sorted(folder.glob("*.jpg"))[:limit]
    if not files:
        raise OpenVinoError(f"int8 calibration needs training images and {folder} holds no "
                            f".jpg; give a folder of COCO train2017 images with --calibration")
    batches = []
    for file in files:
        image = read_image(file)  # through bytes, its size checked from its header first
        padded, _ = prepare_input(image, CMU_INFERENCE.boxsize / image.shape[0], stride)
        batches.append(padded[np.newaxis].astype(np.float32))
    return batches
