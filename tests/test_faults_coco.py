"""Faults of COCO evaluation (issue 15, cases 7 and 14): annotation and results files that do not
fit are one line, before any image is processed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import exit_message


@pytest.fixture(scope="module")
def coco4(shared_data: Path) -> Path:
    return shared_data / "coco_eval" / "mmpose_coco4"


@pytest.mark.parametrize(("content", "problem"), [
    ({"foo": 1}, "no 'images' list"),
    ([], "the top level is not an object"),
    ({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1, "name": "person"}]},
     "no category lists keypoints"),
    ({"images": [{"id": 1}], "annotations": [{"image_id": 2}], "categories": []},
     "annotations[0] is not on an image of 'images'"),
])
def test_annotation_file_that_is_not_coco_keypoints(content, problem: str, coco4: Path,
                                                    tmp_path: Path):
    """Case 7: checked before any image is processed or results file written."""
    import evaluate_coco

    path = tmp_path / "ann.json"
    path.write_text(json.dumps(content))
    out = tmp_path / "results.json"
    with pytest.raises(SystemExit) as excinfo:
        evaluate_coco.main(["--annotations", str(path), "--images", str(coco4),
                            "--output", str(out)])
    assert exit_message(excinfo) == (
        f"error: not a COCO keypoint annotation file: {path} ({problem})")
    assert not out.exists()


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda r: r.update(image_id=999),
     "has image_id 999, which is not an image of the annotation file"),
    (lambda r: r.update(keypoints=[1.0, 2.0, 1.0, 3.0]),
     "has 4 keypoint values, not 51 numbers (17 x, y, score)"),
    (lambda r: r.pop("score"), "has no score"),
    (lambda r: r.update(score="high"), "has score 'high', not a number"),
    (lambda r: r.update(category_id=2),
     "has category_id 2, not one of the keypoint categories [1]"),
], ids=["image_id", "4 keypoints", "no score", "text score", "category"])
def test_results_file_that_does_not_fit(edit, problem: str, coco4: Path, tmp_path: Path):
    """Case 14: a wrong image_id, 4 keypoints or no score: one line naming the entry."""
    import evaluate_coco

    results = json.loads((coco4 / "example_coco_preds.json").read_text())
    edit(results[5])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(SystemExit) as excinfo:
        evaluate_coco.main(["--annotations", str(coco4 / "test_coco.json"),
                            "--results", str(path)])
    assert exit_message(excinfo) == f"error: {path}: results[5] {problem}"
