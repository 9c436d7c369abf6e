"""COCO keypoint evaluation: run a pose pipeline over a COCO split and score it with pycocotools.

Conventions (those that reproduce the original 2017 evaluation's AP on coco_mini, see README):
keypoints at the integer peak pixels (offset 0), the person score is the original's total score,
and the evaluation covers every image of the annotation file (people found or not).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtpose.errors import RtposeError

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


@dataclass(frozen=True)
class KeypointStats:
    """The ten numbers of ``COCOeval(iouType="keypoints").stats``, plus pycocotools' table."""

    values: tuple[float, ...]
    table: str = ""

    def __getitem__(self, name: str) -> float:
        return self.values[STAT_NAMES.index(name)]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STAT_NAMES, self.values, strict=True))


@dataclass
class EvaluationRun:
    """Results of running a pipeline over a split: COCO result dicts and per-image timings."""

    results: list[dict] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)

    def mean_timing(self, key: str) -> float:
        return float(np.mean([t.get(key, 0.0) for t in self.timings])) if self.timings else 0.0


def load_coco(annotations: str | Path):
    """Load a COCO keypoint annotation file quietly; a missing or broken file is an RtposeError."""
    from pycocotools.coco import COCO

    path = Path(annotations)
    if not path.is_file():
        raise RtposeError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError) as e:
        raise RtposeError(f"not a COCO annotation file: {path} ({e})") from e


def score_keypoints(coco_gt, results: list[dict] | str | Path,
                    image_ids: Sequence[int] | None = None) -> KeypointStats:
    """Score COCO keypoint results with pycocotools' ``COCOeval``.

    ``results`` is a list of result dicts or a path to a results JSON. ``image_ids`` defaults to
    every image of the ground truth, so images where nothing was found count as misses.
    """
    from pycocotools.cocoeval import COCOeval

    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise RtposeError(f"results file not found: {path}")
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RtposeError(f"results file is not JSON: {path} ({e})") from e
    if not isinstance(results, list):
        raise RtposeError("COCO results must be a list of detections")
    ids = sorted(coco_gt.getImgIds()) if image_ids is None else list(image_ids)
    if not results:
        return KeypointStats(values=(0.0,) * len(STAT_NAMES), table="no detections")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    table = "\n".join(line for line in out.getvalue().splitlines() if "Average" in line)
    return KeypointStats(values=tuple(float(v) for v in ev.stats), table=table)


def run_pipeline(pipeline, coco_gt, images_dir: str | Path, limit: int | None = None,
                 offset: float = 0.0, score: str = "total", progress: bool = True) -> EvaluationRun:
    """Run ``pipeline.run(image)`` (an ``rtpose.pipeline.PosePipeline``) on the images of
    ``coco_gt`` in image-id order and collect COCO results and per-stage timings (seconds)."""
    images_dir = Path(images_dir)
    ids = sorted(coco_gt.getImgIds())[:limit]
    run = EvaluationRun()
    for image_id in tqdm(ids, desc="images", unit="img", disable=not progress):
        info = coco_gt.loadImgs(image_id)[0]
        path = images_dir / info["file_name"]
        image = cv2.imread(str(path))
        if image is None:
            raise RtposeError(f"cannot read image {path}")
        result = pipeline.run(image)
        t = result.timings
        run.results.extend(result.people.to_coco(image_id, offset=offset, score=score))
        run.image_ids.append(image_id)
        run.timings.append({"network": t.network_s, "maps": t.maps_s,
                            "peaks": t.peaks_s, "association": t.association_s,
                            "postprocess": t.postprocess_s, "total": t.total_s})
    return run
