"""The result type: accessors, OpenPose JSON round trip, COCO results."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from synthetic import make_people

from rtpose.errors import RtposeError
from rtpose.people import People
from rtpose.skeleton import COCO_KEYPOINTS, COCO_TO_CMU, NUM_PARTS, PARTS


def two_people() -> People:
    keypoints = make_people([[100, 80], [300, 90]], [200, 180])
    keypoints[:, :, 2] = np.linspace(0.5, 0.9, NUM_PARTS)
    keypoints[1, PARTS.index("left_ear")] = 0  # missing
    return People(keypoints, np.array([30.5, 22.25]), np.array([18, 17]))


def test_accessors():
    people = two_people()
    assert len(people) == 2
    assert people.xy.shape == (2, NUM_PARTS, 2) and people.conf.shape == (2, NUM_PARTS)
    assert people.present.sum() == 2 * NUM_PARTS - 1
    assert len(People.empty()) == 0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="keypoints"):
        People(np.zeros((1, 17, 3)), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="scores"):
        People(np.zeros((2, NUM_PARTS, 3)), np.zeros(1), np.zeros(2))


def test_openpose_json_round_trip():
    people = two_people()
    data = people.to_openpose_json()
    assert data["version"] == 1.3
    assert len(data["people"]) == 2
    first = data["people"][0]
    assert len(first["pose_keypoints_2d"]) == 3 * NUM_PARTS
    assert first["pose_keypoints_2d"][3:6] == people.keypoints[0, 1].tolist()  # neck x, y, c

    back = People.from_json(json.dumps(data))
    np.testing.assert_array_equal(back.keypoints, people.keypoints)
    np.testing.assert_array_equal(back.scores, people.scores)
    np.testing.assert_array_equal(back.part_counts, people.part_counts)

    empty = People.from_json(People.empty().to_openpose_json())
    assert len(empty) == 0


def test_from_json_rejects_other_json():
    with pytest.raises(RtposeError, match="OpenPose"):
        People.from_json({"people": [{"pose_keypoints_2d": [1, 2]}]})
    with pytest.raises(RtposeError, match="OpenPose"):
        People.from_json({"persons": []})
    with pytest.raises(RtposeError, match="OpenPose"):
        People.from_json("{not json")


def test_coco_results_order_and_options():
    people = two_people()
    results = people.to_coco(42)
    assert [r["image_id"] for r in results] == [42, 42]
    assert all(r["category_id"] == 1 for r in results)
    assert [r["score"] for r in results] == [30.5, 22.25]

    keypoints = np.array(results[1]["keypoints"]).reshape(17, 3)
    for k, name in enumerate(COCO_KEYPOINTS):
        part = PARTS.index(name)
        if name == "left_ear":
            assert keypoints[k].tolist() == [0, 0, 0]
        else:
            assert keypoints[k].tolist() == [*people.xy[1, part], 1]

    shifted = people.to_coco(42, offset=0.5, keypoint_flag="conf", score="mean")
    keypoints = np.array(shifted[0]["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(keypoints[:, :2], people.xy[0, COCO_TO_CMU] + 0.5)
    np.testing.assert_array_equal(keypoints[:, 2], people.conf[0, COCO_TO_CMU])
    assert shifted[0]["score"] == pytest.approx(30.5 / 18)
    assert people.to_coco(1, score="total_x_count")[1]["score"] == pytest.approx(22.25 * 17)

    # The mean part score, and the mean PAF score of the connections (the total less the
    # part scores, per connection: 17 for 18 parts, 16 for 17).
    part_sums = people.conf.sum(axis=1)
    assert [r["score"] for r in people.to_coco(1, score="parts")] == pytest.approx(
        [part_sums[0] / 18, part_sums[1] / 17])
    assert [r["score"] for r in people.to_coco(1, score="paf")] == pytest.approx(
        [(30.5 - part_sums[0]) / 17, (22.25 - part_sums[1]) / 16])
    assert People.empty().to_coco(1, score="paf") == []

    with pytest.raises(RtposeError, match="score rule"):
        people.to_coco(1, score="best")


def test_coco_results_score_perfectly_against_their_own_ground_truth():
    people = two_people()
    annotations = []
    for n, person in enumerate(people.to_coco(7)):
        xy = np.array(person["keypoints"]).reshape(17, 3)[:, :2]
        present = np.array(person["keypoints"][2::3]) > 0
        gt = np.zeros((17, 3))
        gt[present, :2] = xy[present]
        gt[present, 2] = 2
        x0, y0 = xy[present].min(axis=0)
        x1, y1 = xy[present].max(axis=0)
        annotations.append({
            "id": n + 1, "image_id": 7, "category_id": 1, "iscrowd": 0,
            "keypoints": gt.ravel().tolist(), "num_keypoints": int(present.sum()),
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
        })
    dataset = {
        "images": [{"id": 7, "width": 400, "height": 300}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS)}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(people.to_coco(7)), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
