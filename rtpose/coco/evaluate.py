"""COCO keypoint evaluation: run a pose pipeline over a COCO split and score it with pycocotools.

Conventions (those that reproduce the original 2017 evaluation's AP on coco_mini, see
docs/evaluation.md): keypoints at the integer peak pixels (offset 0), the person score is the
original's total score, and the evaluation covers every image of the annotation file (people
found or not).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtpose.errors import RtposeError
from rtpose.stream.images import MAX_IMAGE_PIXELS, check_input_file, read_image

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


def load_coco(annotations: str | Path, keypoints: bool = False):
    """Load a COCO annotation file quietly.

    A missing file, or one that is not COCO annotations (an object with lists ``images``,
    ``annotations`` and ``categories``, every annotation on a listed image), is an
    ``RtposeError``; with ``keypoints`` the file must also hold person keypoints as the
    evaluation needs them (see :func:`keypoint_problem`).
    """
    from pycocotools.coco import COCO

    path = Path(annotations)
    if not path.is_file():
        raise RtposeError(f"annotation file not found: {path}")
    kind = "COCO keypoint" if keypoints else "COCO"
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise RtposeError(f"not a {kind} annotation file: {path} (not JSON: {e})") from e
    problem = annotation_problem(data) or (keypoint_problem(data) if keypoints else None)
    if problem:
        raise RtposeError(f"not a {kind} annotation file: {path} ({problem})")
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (ValueError, KeyError, TypeError) as e:
        raise RtposeError(f"not a {kind} annotation file: {path} ({type(e).__name__}: {e})") from e
    return coco


def annotation_problem(data: object) -> str | None:
    """What keeps ``data`` (a parsed JSON) from being COCO annotations, or None."""
    if not isinstance(data, dict):
        return "the top level is not an object"
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            return f"no '{key}' list"
    for key in ("images", "categories"):
        for i, item in enumerate(data[key]):
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                return f"{key}[{i}] has no integer id"
    image_ids = {image["id"] for image in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in image_ids:
            return f"annotations[{i}] is not on an image of 'images'"
    return None


def keypoint_categories(data: dict) -> dict[int, int]:
    """Keypoint count per category id, for the categories that list keypoints."""
    return {c["id"]: len(c["keypoints"]) for c in data["categories"]
            if isinstance(c.get("keypoints"), list) and c["keypoints"]}


def keypoint_problem(data: dict) -> str | None:
    """What keeps COCO annotations ``data`` from being keypoint annotations that ``COCOeval``
    can score (a category with keypoints; per annotation its keypoints, ``num_keypoints``,
    ``bbox``, ``area``, ``iscrowd``), or None."""
    categories = keypoint_categories(data)
    if not categories:
        return "no category lists keypoints"
    for i, ann in enumerate(data["annotations"]):
        count = categories.get(ann.get("category_id"))
        if count is None:
            return f"annotations[{i}] is not in a keypoint category"
        missing = [k for k in ("keypoints", "num_keypoints", "bbox", "area", "iscrowd")
                   if k not in ann]
        if missing:
            return f"annotations[{i}] has no {', '.join(missing)}"
        if not isinstance(ann["keypoints"], list) or len(ann["keypoints"]) != 3 * count:
            return f"annotations[{i}] does not hold {count} keypoints (x, y, visibility)"
    return None


def results_problem(coco_gt, results: list) -> str | None:
    """What keeps ``results`` from being COCO keypoint results on ``coco_gt``, or None: each
    an object with an ``image_id`` of the ground truth, a keypoint ``category_id``, its
    ``keypoints`` as 3 numbers per keypoint, and a finite ``score``."""
    categories = keypoint_categories(coco_gt.dataset)
    image_ids = set(coco_gt.getImgIds())
    for i, result in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(result, dict):
            return f"{where} is not an object"
        if result.get("image_id") not in image_ids:
            return (f"{where} has image_id {result.get('image_id')!r}, which is not an image of "
                    "the annotation file")
        count = categories.get(result.get("category_id"))
        if count is None:
            return (f"{where} has category_id {result.get('category_id')!r}, not one of the "
                    f"keypoint categories {sorted(categories)}")
        values = result.get("keypoints")
        if (not isinstance(values, list) or len(values) != 3 * count
                or not all(_is_number(v) for v in values)):
            n = len(values) if isinstance(values, list) else 0
            return f"{where} has {n} keypoint values, not {3 * count} numbers ({count} x, y, score)"
        if "score" not in result:
            return f"{where} has no score"
        if not _is_number(result["score"]):
            return f"{where} has score {result['score']!r}, not a number"
    return None


def _is_number(value: object) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def score_keypoints(coco_gt, results: list[dict] | str | Path,
                    image_ids: Sequence[int] | None = None) -> KeypointStats:
    """Score COCO keypoint results with pycocotools' ``COCOeval``.

    ``results`` is a list of result dicts or a path to a results JSON. ``image_ids`` defaults to
    every image of the ground truth, so images where nothing was found count as misses.
    Ground truth that is not keypoint annotations, or results that do not fit it, are an
    ``RtposeError`` naming the first bad entry.
    """
    from pycocotools.cocoeval import COCOeval

    problem = keypoint_problem(coco_gt.dataset)
    if problem:
        raise RtposeError(f"the ground truth is not COCO keypoint annotations ({problem})")
    source = "results"
    if isinstance(results, (str, Path)):
        path = source = Path(results)
        if not path.is_file():
            raise RtposeError(f"results file not found: {path}")
        try:
            results = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as e:
            raise RtposeError(f"results file is not JSON: {path} ({e})") from e
    if not isinstance(results, list):
        raise RtposeError(f"{source}: COCO results must be a list of detections")
    problem = results_problem(coco_gt, results)
    if problem:
        raise RtposeError(f"{source}: {problem}")
    ids = evaluated_ids(coco_gt) if image_ids is None else list(image_ids)
    check_people(coco_gt, ids, "the ground truth")
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


def evaluated_ids(coco_gt, limit: int | None = None) -> list[int]:
    """The ids of the images evaluated: all of ``coco_gt``'s (or its first ``limit``), sorted."""
    return sorted(coco_gt.getImgIds())[:limit]


def check_people(coco_gt, ids: Sequence[int], source: str | Path) -> None:
    """``RtposeError`` unless the images ``ids`` of ``coco_gt`` hold at least one person with
    keypoints (not a crowd): without one, COCO's AP is undefined (pycocotools prints -1)."""
    people = [ann for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=list(ids)))
              if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0)]
    if not people:
        raise RtposeError(f"{source}: no person with keypoints on the {len(ids)} image"
                          f"{'s' if len(ids) != 1 else ''} evaluated, so there is nothing to "
                          "score (COCO's AP would be undefined)")


def check_images(coco_gt, images_dir: str | Path, ids: Sequence[int]) -> None:
    """``RtposeError`` naming the first of the images ``ids`` that is missing or unreadable in
    ``images_dir`` and how many are, checked before any work."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise RtposeError(f"no folder {images_dir}")
    paths = [images_dir / info["file_name"] for info in coco_gt.loadImgs(list(ids))]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise RtposeError(f"{len(missing)} of the {len(paths)} images are missing from "
                          f"{images_dir}, e.g. {missing[0].name}")
    for path in paths:
        check_input_file(path, "image")


def run_pipeline(pipeline, coco_gt, images_dir: str | Path, limit: int | None = None,
                 offset: float = 0.0, score: str = "total", progress: bool = True,
                 max_image_pixels: int | None = MAX_IMAGE_PIXELS) -> EvaluationRun:
    """Run ``pipeline.run(image)`` (an ``rtpose.pipeline.PosePipeline``) on the images of
    ``coco_gt`` in image-id order and collect COCO results and per-stage timings (seconds)."""
    return run_pipelines([pipeline], coco_gt, images_dir, limit, offset, score, progress,
                         max_image_pixels)[0]


def run_pipelines(pipelines: Sequence, coco_gt, images_dir: str | Path, limit: int | None = None,
                  offset: float = 0.0, score: str = "total", progress: bool = True,
                  max_image_pixels: int | None = MAX_IMAGE_PIXELS) -> list[EvaluationRun]:
    """``run_pipeline`` for several pipelines at once, one run each: every image goes through
    each pipeline in turn, so that a change of machine load affects their timings alike.
    Images larger than ``max_image_pixels`` are refused (``rtpose.stream.images.read_image``)."""
    images_dir = Path(images_dir)
    runs = [EvaluationRun() for _ in pipelines]
    for image_id in tqdm(evaluated_ids(coco_gt, limit), desc="images", unit="img",
                         disable=not progress):
        info = coco_gt.loadImgs(image_id)[0]
        image = read_image(images_dir / info["file_name"], max_pixels=max_image_pixels)
        for pipeline, run in zip(pipelines, runs, strict=True):
            result = pipeline.run(image)
            t = result.timings
            run.results.extend(result.people.to_coco(image_id, offset=offset, score=score))
            run.image_ids.append(image_id)
            run.timings.append({"network": t.network_s, "maps": t.maps_s,
                                "peaks": t.peaks_s, "association": t.association_s,
                                "postprocess": t.postprocess_s, "total": t.total_s})
    return runs
