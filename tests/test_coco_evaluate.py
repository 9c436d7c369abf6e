"""COCO keypoint scoring reproduces pycocotools' published numbers on known fixtures; pipelines
run over a split one at a time or in turn give the same results."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from helpers import FunctionNetwork, person_network
from pycocotools.cocoeval import COCOeval

from rtpose.coco.evaluate import (
    STAT_NAMES,
    load_coco,
    run_pipeline,
    run_pipelines,
    score_keypoints,
)
from rtpose.config import InferenceParams
from rtpose.errors import RtposeError
from rtpose.pipeline import PosePipeline


def _expected_stats(path):
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("[AP,"))
    return [float(v) for v in lines[start + 1:start + 1 + len(STAT_NAMES)]]


def test_scorer_reproduces_expected_stats_exactly(shared_data):
    root = shared_data / "coco_eval" / "faster_coco_eval_keypoints"
    gt = load_coco(root / "gt_dataset.json")
    stats = score_keypoints(gt, root / "dt_dataset.json")
    assert list(stats.values) == _expected_stats(root / "EXPECTED_STATS.txt")
    assert stats["AP"] == pytest.approx(0.50488, abs=1e-5)
    assert "Average Precision" in stats.table


def test_scorer_accepts_result_lists_and_restricts_to_given_images(shared_data):
    root = shared_data / "coco_eval" / "mmpose_coco4"
    gt = load_coco(root / "test_coco.json")
    preds = json.loads((root / "example_coco_preds.json").read_text())
    all_images = score_keypoints(gt, preds)
    first = sorted(gt.getImgIds())[0]
    only_first = score_keypoints(gt, [p for p in preds if p["image_id"] == first], [first])
    # The same numbers as pycocotools' own evaluation restricted to that image.
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes([p for p in preds if p["image_id"] == first]),
                              "keypoints")
        evaluation.params.imgIds = [first]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert only_first.values == tuple(float(v) for v in evaluation.stats)
    assert only_first.values != all_images.values


def test_the_ground_truth_itself_scores_one(shared_data):
    gt = load_coco(shared_data / "coco_eval" / "mmpose_coco4" / "test_coco.json")
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0}
               for a in gt.loadAnns(gt.getAnnIds(iscrowd=False)) if a["num_keypoints"] > 0]
    stats = score_keypoints(gt, perfect)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_no_detections_scores_zero(shared_data):
    gt = load_coco(shared_data / "coco_eval" / "mmpose_coco4" / "test_coco.json")
    assert score_keypoints(gt, []).values == (0.0,) * len(STAT_NAMES)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(RtposeError, match="not found"):
        load_coco(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(RtposeError):
        load_coco(broken)


def test_pipelines_run_in_turn_on_each_image_with_the_results_of_one_at_a_time(shared_data):
    root = shared_data / "coco_eval" / "mmpose_coco4"
    gt = load_coco(root / "test_coco.json")
    calls = []

    def pipeline(name: str, scales: tuple[float, ...]) -> PosePipeline:
        def network(batch):
            calls.append(name)
            return person_network(batch)
        return PosePipeline(FunctionNetwork(network), InferenceParams(boxsize=184, scales=scales))

    one, two = pipeline("one", (1.0,)), pipeline("two", (0.5, 1.0))
    together = run_pipelines([one, two], gt, root, progress=False)
    assert calls == ["one", "two", "two"] * 4  # image by image, every pipeline in turn
    for pipe, run in zip((one, two), together, strict=True):
        alone = run_pipeline(pipe, gt, root, progress=False)
        assert run.image_ids == alone.image_ids == sorted(gt.getImgIds())
        assert run.results == alone.results and len(run.timings) == 4
    assert together[0].results != together[1].results
