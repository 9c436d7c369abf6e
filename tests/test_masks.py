"""Loss masks: coco_mini images against masks decoded independently, several crowds, the script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_api

from rtpose.coco.evaluate import load_coco
from rtpose.coco.masks import combine_masks, image_masks, mask_paths, write_masks
from rtpose.tools.generate_masks import main as generate_masks_main

# 433998 and 129648 hold a crowd (listed last); 211891 has 10 people without keypoints;
# 790 has people with keypoints only
IMAGES = (433998, 129648, 211891, 790)


@pytest.fixture(scope="module")
def coco_train(shared_data: Path):
    return load_coco(shared_data / "coco_mini/annotations/person_keypoints_train2017.json")


def decode_segmentation(ann: dict, height: int, width: int) -> np.ndarray:
    """bool (H, W) from polygons or an uncompressed RLE, through pycocotools' low-level API."""
    segm = ann["segmentation"]
    if isinstance(segm, list):
        rles = mask_api.frPyObjects(segm, height, width)
        return mask_api.decode(rles).any(axis=2)
    return mask_api.decode(mask_api.frPyObjects(segm, height, width)).astype(bool)


def expected_masks(anns: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The original algorithm, one annotation at a time (crowd minus the people seen so far)."""
    people = np.zeros((height, width), bool)
    unlabelled = np.zeros((height, width), bool)
    crowds = np.zeros((height, width), bool)
    for ann in anns:
        mask = decode_segmentation(ann, height, width)
        if ann["iscrowd"]:
            crowds |= mask & ~people
        else:
            people |= mask
            if ann["num_keypoints"] <= 0:
                unlabelled |= mask
    return ~(unlabelled | crowds), people | crowds


@pytest.mark.parametrize("image_id", IMAGES)
def test_coco_mini_masks_match_annotations(coco_train, image_id: int) -> None:
    info = coco_train.imgs[image_id]
    anns = coco_train.loadAnns(coco_train.getAnnIds(imgIds=image_id))
    want_miss, want_all = expected_masks(anns, info["height"], info["width"])
    mask_miss, mask_all = image_masks(coco_train, image_id)
    assert mask_miss.dtype == mask_all.dtype == np.uint8
    assert mask_miss.shape == (info["height"], info["width"])
    assert set(np.unique(mask_miss)) <= {0, 255} and set(np.unique(mask_all)) <= {0, 255}
    assert np.count_nonzero(mask_miss == 0) == np.count_nonzero(~want_miss)
    assert np.count_nonzero(mask_all) == np.count_nonzero(want_all)
    np.testing.assert_array_equal(mask_miss == 255, want_miss)
    np.testing.assert_array_equal(mask_all == 255, want_all)


def test_masks_cover_the_polygons(coco_train) -> None:
    """Without pycocotools: the polygons filled by OpenCV cover (almost) the same pixels."""
    image_id = 463557  # one person with keypoints, one without
    info = coco_train.imgs[image_id]
    everyone = np.zeros((info["height"], info["width"]), np.uint8)
    unlabelled = np.zeros_like(everyone)
    for ann in coco_train.loadAnns(coco_train.getAnnIds(imgIds=image_id)):
        for poly in ann["segmentation"]:
            points = [np.round(np.reshape(poly, (-1, 2))).astype(np.int32)]
            cv2.fillPoly(everyone, points, 255)
            if ann["num_keypoints"] == 0:
                cv2.fillPoly(unlabelled, points, 255)
    mask_miss, mask_all = image_masks(coco_train, image_id)
    for ours, filled in ((mask_all > 0, everyone > 0), (mask_miss == 0, unlabelled > 0)):
        assert filled.sum() > 900
        assert (ours & filled).sum() / (ours | filled).sum() > 0.8  # rasterisers differ on edges
    assert np.count_nonzero((mask_all > 0) != (everyone > 0)) < 0.03 * np.count_nonzero(everyone)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: column-major run lengths, starting with a run of zeros."""
    flat = mask.ravel(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = ([0] if flat[0] else []) + np.diff(bounds).tolist()
    return {"counts": counts, "size": list(mask.shape)}


def box(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture()
def two_crowds(shared_data: Path, tmp_path: Path) -> dict:
    """A real image with people A (3 keypoints), crowd 1, B (no keypoints), crowd 2, C (10
    keypoints), in that order; every region a rectangle given as RLE."""
    image = shared_data / "coco_mini/train2017/000000000790.jpg"
    height, width = cv2.imread(str(image)).shape[:2]
    shape = (height, width)
    regions = {
        "A": box(shape, 10, 10, 110, 210),
        "crowd1": box(shape, 60, 100, 300, 160),
        "B": box(shape, 250, 50, 330, 300),
        "crowd2": box(shape, 280, 200, 500, 260),
        "C": box(shape, 450, 150, 560, 400),
    }
    kinds = {"A": (0, 3), "crowd1": (1, 0), "B": (0, 0), "crowd2": (1, 0), "C": (0, 10)}
    anns = []
    for k, (name, region) in enumerate(regions.items()):
        crowd, num_keypoints = kinds[name]
        rle = uncompressed_rle(region)
        if not crowd:  # people as compressed RLE, as COCO allows
            rle = mask_api.frPyObjects(rle, height, width)
            rle["counts"] = rle["counts"].decode("ascii")
        ys, xs = np.nonzero(region)
        anns.append(
            {
                "id": k + 1,
                "image_id": 790,
                "category_id": 1,
                "iscrowd": crowd,
                "num_keypoints": num_keypoints,
                "keypoints": [0] * 51,
                "area": int(region.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)],
                "segmentation": rle,
            }
        )
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    shutil.copy(image, images_dir / image.name)
    data = {
        "images": [{"id": 790, "file_name": image.name, "height": height, "width": width}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    annotations = tmp_path / "two_crowds.json"
    annotations.write_text(json.dumps(data))
    return {"regions": regions, "annotations": annotations, "images": images_dir}


def test_two_crowds(two_crowds: dict) -> None:
    r = two_crowds["regions"]
    coco = load_coco(two_crowds["annotations"])
    crowd1 = r["crowd1"] & ~r["A"]  # only A precedes crowd 1
    crowd2 = r["crowd2"] & ~(r["A"] | r["B"])  # C comes later: its overlap stays masked
    assert (r["crowd2"] & r["C"]).any() and (r["crowd1"] & r["B"]).any()
    mask_miss, mask_all = image_masks(coco, 790)
    np.testing.assert_array_equal(mask_miss == 0, r["B"] | crowd1 | crowd2)
    np.testing.assert_array_equal(mask_all == 255, r["A"] | r["B"] | r["C"] | crowd1 | crowd2)


def test_no_annotations_masks_nothing() -> None:
    mask_miss, mask_all = combine_masks(np.zeros((0, 4, 5), bool), np.zeros(0), np.zeros(0))
    assert (mask_miss == 255).all() and (mask_all == 0).all() and mask_all.shape == (4, 5)


def test_write_masks_skips_done_images_unless_forced(two_crowds: dict, tmp_path: Path) -> None:
    masks_dir = tmp_path / "masks"
    argv = [
        "--annotations",
        str(two_crowds["annotations"]),
        "--images",
        str(two_crowds["images"]),
        "--masks-dir",
        str(masks_dir),
    ]
    generate_masks_main(argv)
    miss_path, all_path = mask_paths(masks_dir, 790)
    good = cv2.imread(str(miss_path), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(good, image_masks(load_coco(two_crowds["annotations"]), 790)[0])
    cv2.imwrite(str(miss_path), np.zeros_like(good))  # tamper: a skipped image stays tampered
    generate_masks_main(argv)
    assert not cv2.imread(str(miss_path), cv2.IMREAD_GRAYSCALE).any()
    all_path.unlink()  # half done counts as not done
    assert write_masks(load_coco(two_crowds["annotations"]), two_crowds["images"], masks_dir) == 1
    np.testing.assert_array_equal(cv2.imread(str(miss_path), cv2.IMREAD_GRAYSCALE), good)
    cv2.imwrite(str(miss_path), np.zeros_like(good))
    generate_masks_main([*argv, "--force"])
    np.testing.assert_array_equal(cv2.imread(str(miss_path), cv2.IMREAD_GRAYSCALE), good)


def test_missing_image_is_an_error(two_crowds: dict, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "no_images"
    empty.mkdir()
    argv = ["--annotations", str(two_crowds["annotations"]), "--images", str(empty)]
    with pytest.raises(SystemExit, match=r"error: image .*000000000790\.jpg .* missing"):
        generate_masks_main([*argv, "--masks-dir", str(tmp_path / "m")])


def run_script(repo_root: Path, *args: str, cwd: str = ".") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    return subprocess.run(
        [sys.executable, str(repo_root / "training" / "generate_masks.py"), *args],
        cwd=repo_root / cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("cwd", [".", "training"])
def test_script_help(repo_root: Path, cwd: str) -> None:
    result = run_script(repo_root, "--help", cwd=cwd)
    assert result.returncode == 0
    for flag in ("--mode", "--dataset-dir", "--annotations", "--images", "--masks-dir", "--force"):
        assert flag in result.stdout
    # the default dataset root is the repository's dataset/, wherever the script runs from
    assert str(repo_root / "dataset") in "".join(result.stdout.split())


def test_script_missing_annotations(repo_root: Path, tmp_path: Path) -> None:
    result = run_script(repo_root, "--mode", "val", "--dataset-dir", str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "person_keypoints_val2017.json" in lines[0]
    assert not (tmp_path / "valmask2017").exists()
