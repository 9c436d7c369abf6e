"""int8 calibration data: training images prepared as the pipeline feeds the network.

``CalibrationImages(folder, stride)`` is the set of batches the openvino runtime's int8
quantisation (``rtpose.runtime.openvino.quantize``) calibrates the body network on, read only
when iterated (a fresh cached int8 IR reads none): the JPEG images of ``folder`` at scale 1,
float32 ``(1, H, W, 3)`` BGR 0..255 each. ``PartCalibration(folder, "hand" | "face")`` is the
hand or face network's: the crops ``rtpose.wholebody`` would cut around the people annotated in
``folder``'s COCO keypoint file (the boxes from their annotated keypoints), float32
``(1, 368, 368, 3)`` hands (blurred as the pipeline blurs them) or ``(1, 384, 384, 3)`` faces.
The default folder, ``DEFAULT_CALIBRATION``, is COCO **train2017** as ``dataset/get_dataset.sh``
places it (its annotations in ``../annotations/person_keypoints_train2017.json``); a
validation folder is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.errors import first_line
from rtpose.paths import REPO_ROOT
from rtpose.runtime.openvino.network import OpenVinoError

DEFAULT_CALIBRATION = REPO_ROOT / "dataset" / "train2017"
CALIBRATION_IMAGES = 300  # at most this many calibration images (coco_mini has 80)
CALIBRATION_CROPS = 120  # at most this many hand or face crops (coco_mini has 75 and 53)


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

    files = sorted(_training_folder(folder).glob("*.jpg"))[:limit]
    if not files:
        raise OpenVinoError(f"int8 calibration needs training images and {folder} holds no "
                            f".jpg; give a folder of COCO train2017 images with --calibration")
    batches = []
    for file in files:
        image = read_image(file)  # through bytes, its size checked from its header first
        padded, _ = prepare_input(image, CMU_INFERENCE.boxsize / image.shape[0], stride)
        batches.append(padded[np.newaxis].astype(np.float32))
    return batches


def _training_folder(folder: str | Path) -> Path:
    """``folder``, unless it is a validation folder (``val*``)."""
    folder = Path(folder)
    if folder.name.lower().startswith("val"):
        raise OpenVinoError(f"{folder}: calibrating on validation images would bias their "
                            f"evaluation; use training images (e.g. coco_mini/train2017)")
    return folder


@dataclass(frozen=True)
class PartCalibration:
    """The hand or face crops of ``folder`` (``network``: ``hand`` or ``face``; at most
    ``limit``) as calibration batches; ``part_calibration_batches`` reads them at each
    iteration. ``annotations``: the COCO keypoint file (default: ``annotations_of(folder)``)."""

    folder: Path
    network: str
    annotations: Path | None = None
    limit: int = CALIBRATION_CROPS

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(part_calibration_batches(self.folder, self.network, self.annotations,
                                             self.limit))


def annotations_of(folder: str | Path) -> Path:
    """COCO's place for the keypoint annotations of an image folder:
    ``<folder>/../annotations/person_keypoints_<folder name>.json``."""
    folder = Path(folder)
    return folder.parent / "annotations" / f"person_keypoints_{folder.name}.json"


def part_calibration_batches(folder: str | Path, network: str,
                             annotations: str | Path | None = None,
                             limit: int = CALIBRATION_CROPS) -> list[np.ndarray]:
    """The hand (``network="hand"``) or face crops of the people annotated in the images of
    ``folder`` (by file name, at most ``limit``), float32 ``(1, S, S, 3)`` each, as the pipeline
    feeds the network at scale 1 (``rtpose.wholebody``). Refuses a validation folder."""
    import json

    from rtpose import wholebody
    from rtpose.skeleton import COCO_TO_CMU, NUM_PARTS
    from rtpose.stream.images import read_image

    folder = _training_folder(folder)
    annotations = Path(annotations) if annotations is not None else annotations_of(folder)
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
        people: dict[int, list[list[float]]] = {}
        for annotation in data["annotations"]:
            people.setdefault(annotation["image_id"], []).append(annotation["keypoints"])
        images = sorted((image["file_name"], image["id"]) for image in data["images"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OpenVinoError(f"int8 {network} calibration needs the COCO keypoint annotations of "
                            f"{folder} ({annotations}): {first_line(e)}") from e
    batches: list[np.ndarray] = []
    for name, image_id in images:
        if len(batches) >= limit:
            break
        if image_id not in people or not (folder / name).is_file():
            continue
        image = read_image(folder / name)
        coco = np.asarray(people[image_id], np.float64).reshape(-1, 17, 3)
        keypoints = np.zeros((len(coco), NUM_PARTS, 3))
        keypoints[:, list(COCO_TO_CMU), :2] = coco[..., :2]
        keypoints[:, list(COCO_TO_CMU), 2] = coco[..., 2] > 0  # labelled, seen or not
        crops = wholebody.calibration_crops(image, keypoints, network)
        batches += [crop[np.newaxis] for crop in crops[:limit - len(batches)]]
    if not batches:
        raise OpenVinoError(f"int8 {network} calibration found no {network} in the annotated "
                            f"images of {folder}; give COCO train2017 with --calibration")
    return batches
