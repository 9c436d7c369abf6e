"""The original HDF5 dataset: byte layout against the original's file, regeneration from coco_mini,
metadata against the JSON annotations, the validation split, the reader's errors, the scripts."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from rtpose.coco.evaluate import load_coco
from rtpose.coco.hdf5_dataset import HDF5Dataset, write_hdf5
from rtpose.coco.masks import mask_paths
from rtpose.coco.metadata import (
    Sample,
    SampleMeta,
    decode_sample,
    encode_sample,
    pack_meta,
    unpack_meta,
)
from rtpose.coco.selection import ImageRecord, image_records, select_people
from rtpose.errors import RtposeError
from rtpose.tools.generate_hdf5 import main as generate_hdf5_main
from rtpose.tools.generate_masks import main as generate_masks_main

ORIGINAL_VAL_SIZE = 10  # the original file was written with val_size = 10 (see test below)


@pytest.fixture(scope="module")
def original(shared_data: Path) -> Path:
    return shared_data / "original_formats" / "train_dataset_first3.h5"


@pytest.fixture(scope="module")
def coco_mini(shared_data: Path) -> Path:
    return shared_data / "coco_mini"


def split_args(coco_mini: Path, masks_root: Path, mode: str) -> list[str]:
    return [
        str(coco_mini / f"annotations/person_keypoints_{mode}2017.json"),
        str(coco_mini / f"{mode}2017"),
        str(masks_root / f"{mode}mask2017"),
    ]


@pytest.fixture(scope="module")
def built(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Masks and both HDF5 files of coco_mini (train then val), made by the scripts' mains."""
    out = tmp_path_factory.mktemp("coco_mini_h5")
    for mode in ("train", "val"):
        annotations, images, masks = split_args(coco_mini, out, mode)
        generate_masks_main(
            ["--annotations", annotations, "--images", images, "--masks-dir", masks]
        )
    generate_hdf5_main(
        ["--split", *split_args(coco_mini, out, "train")]
        + ["--split", *split_args(coco_mini, out, "val")]
        + ["--val-size", str(ORIGINAL_VAL_SIZE), "--output-dir", str(out)]
    )
    return out


# ---------------------------------------------------------------- the original's file


def test_original_file_layout(original: Path) -> None:
    with h5py.File(original, "r") as h5:
        assert list(h5.keys()) == ["datum"] and not h5.attrs.keys()
        group = h5["datum"]
        assert list(group.keys()) == ["0000000", "0000001", "0000002"]
        assert not group.attrs.keys()
        for name in group:
            item = group[name]
            assert item.dtype == np.uint8 and item.shape[0] == 6 and item.chunks is None
            assert not item.attrs.keys()


def test_decode_encode_original_is_byte_identical(original: Path) -> None:
    with h5py.File(original, "r") as h5:
        arrays = [h5["datum"][name][()] for name in sorted(h5["datum"])]
    for array in arrays:
        np.testing.assert_array_equal(encode_sample(decode_sample(array)), array)
    meta = decode_sample(arrays[0]).meta
    # sample 0: COCO image 790 (index 34 of coco_mini train), 422 x 640, three other people
    assert (meta.dataset, meta.img_height, meta.img_width) == ("COCO", 422, 640)
    assert (meta.num_other_people, meta.people_index, meta.annolist_index) == (3, 0, 34)
    assert [decode_sample(a).meta.write_count for a in arrays] == [0, 1, 2]
    assert not meta.is_validation


def test_regenerated_samples_equal_the_original(original: Path, built: Path, coco_mini) -> None:
    """Every byte equal, but total_write_count: the original wrote the other file's count."""
    with h5py.File(original, "r") as h5, HDF5Dataset(built / "train_dataset.h5") as ours:
        for index, name in enumerate(sorted(h5["datum"])):
            theirs, mine = h5["datum"][name][()], ours.raw(index)
            assert theirs.shape == mine.shape
            differ = np.argwhere(theirs != mine)
            assert {tuple(d) for d in differ} <= {(3, 2, b) for b in range(11, 15)}
            assert decode_sample(theirs).meta.total_write_count == ORIGINAL_VAL_SIZE
            assert decode_sample(mine).meta.total_write_count == len(ours)
        image = cv2.imread(str(coco_mini / "train2017/000000000790.jpg"))
        np.testing.assert_array_equal(ours[0].image, image)


# ---------------------------------------------------------------- against the annotations


def expected_samples(annotation_file: Path) -> list[dict]:
    """The original's selection written out on the raw JSON: one entry per usable image."""
    data = json.loads(annotation_file.read_text())
    by_image = defaultdict(list)
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    samples = []
    for index, info in enumerate(data["images"]):
        taken = []
        for ann in by_image[info["id"]]:
            x, y, w, h = ann["bbox"]
            center = np.array([x + w / 2, y + h / 2])
            close = [np.linalg.norm(center - c) < 0.3 * side for c, side, _ in taken]
            if ann["num_keypoints"] >= 5 and ann["area"] >= 1024 and not any(close):
                taken.append((center, max(w, h), ann))
        if taken:
            samples.append({"index": index, "info": info, "people": [t[2] for t in taken]})
    return samples


def person_fields(ann: dict) -> tuple[np.ndarray, float, np.ndarray]:
    x, y, w, h = ann["bbox"]
    kp = np.array(ann["keypoints"], np.float32).reshape(17, 3)
    kp[:, 2] = np.select([kp[:, 2] == 2, kp[:, 2] == 1], [1, 0], 2)
    return np.float32([x + w / 2, y + h / 2]), np.float32(h / 368), kp


def test_every_sample_matches_the_annotations(built: Path, coco_mini: Path) -> None:
    expected = []
    for mode in ("train", "val"):
        for sample in expected_samples(coco_mini / f"annotations/person_keypoints_{mode}2017.json"):
            expected.append({**sample, "mode": mode})
    with (
        HDF5Dataset(built / "val_dataset.h5") as val,
        HDF5Dataset(built / "train_dataset.h5") as tr,
    ):
        assert (len(val), len(tr)) == (ORIGINAL_VAL_SIZE, len(expected) - ORIGINAL_VAL_SIZE)
        files = [(val, k) for k in range(len(val))] + [(tr, k) for k in range(len(tr))]
        for want, (dataset, k) in zip(expected, files, strict=True):
            sample = dataset[k]
            meta, info = sample.meta, want["info"]
            assert meta.dataset == "COCO" and meta.is_validation == (dataset is val)
            assert (meta.img_height, meta.img_width) == (info["height"], info["width"])
            assert (meta.annolist_index, meta.people_index) == (want["index"], 0)
            assert (meta.write_count, meta.total_write_count) == (k, len(dataset))
            main, *others = [person_fields(ann) for ann in want["people"]]
            assert meta.num_other_people == len(others)
            np.testing.assert_array_equal(meta.objpos, main[0])
            assert np.float32(meta.scale_provided) == main[1]
            np.testing.assert_array_equal(meta.joints, main[2])
            for got, field in ((meta.objpos_other, 0), (meta.scale_provided_other, 1)):
                np.testing.assert_array_equal(
                    got, np.array([o[field] for o in others]).reshape(got.shape)
                )
            np.testing.assert_array_equal(
                meta.joints_other, np.array([o[2] for o in others]).reshape(-1, 17, 3)
            )
            image_path = coco_mini / f"{want['mode']}2017" / info["file_name"]
            np.testing.assert_array_equal(sample.image, cv2.imread(str(image_path)))
            miss_path, all_path = mask_paths(built / f"{want['mode']}mask2017", info["id"])
            np.testing.assert_array_equal(sample.mask_miss, cv2.imread(str(miss_path), 0))
            np.testing.assert_array_equal(sample.mask_all, cv2.imread(str(all_path), 0))


def test_val_size_splits_in_order(built: Path, coco_mini: Path, tmp_path: Path) -> None:
    coco = load_coco(coco_mini / "annotations/person_keypoints_train2017.json")
    records = list(image_records(coco, coco_mini / "train2017", built / "trainmask2017"))[:5]
    for val_size, n_val in ((0, 0), (2, 2), (100, 5)):
        train_path, val_path = tmp_path / f"t{val_size}.h5", tmp_path / f"v{val_size}.h5"
        assert write_hdf5(records, train_path, val_path, val_size, progress=False) == (
            5 - n_val,
            n_val,
        )
        with HDF5Dataset(val_path) as val, HDF5Dataset(train_path) as train:
            assert (len(val), len(train)) == (n_val, 5 - n_val)
            metas = [val[i].meta for i in range(n_val)] + [train[i].meta for i in range(len(train))]
        assert [m.annolist_index for m in metas] == [r.annolist_index for r in records]
        assert [m.is_validation for m in metas] == [True] * n_val + [False] * (5 - n_val)
        assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(RtposeError, match="val_size"):
        write_hdf5(records, tmp_path / "a.h5", tmp_path / "b.h5", -1, progress=False)


def test_narrow_image_is_padded_for_its_metadata(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (120, 40, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "narrow.png"), image)
    masks = np.full((120, 40), 255, np.uint8), np.zeros((120, 40), np.uint8)
    for path, mask in zip(mask_paths(tmp_path, 7), masks, strict=True):
        cv2.imwrite(str(path), mask)
    keypoints = [v for k in range(17) for v in (5 + k, 10 + 5 * k, 2)]
    ann = {"num_keypoints": 17, "area": 2000, "bbox": [2, 5, 30, 100], "keypoints": keypoints}
    record = ImageRecord(3, 7, 120, 40, tmp_path / "narrow.png", tmp_path, (*select_people([ann]),))
    write_hdf5([record], tmp_path / "train.h5", tmp_path / "val.h5", 0, progress=False)
    with HDF5Dataset(tmp_path / "train.h5") as dataset:
        sample = dataset[0]
    assert sample.image.shape == (120, 68, 3)
    np.testing.assert_array_equal(sample.image[:, :40], image)
    assert (sample.image[:, 40:] == 128).all() and (sample.mask_miss == 255).all()
    assert not sample.mask_all.any()
    assert (sample.meta.img_width, sample.meta.scale_provided) == (40, np.float32(100 / 368))
    np.testing.assert_array_equal(sample.meta.objpos, [17, 55])


# ---------------------------------------------------------------- metadata codec


def make_meta(n: int) -> SampleMeta:
    rng = np.random.default_rng(n)
    return SampleMeta(
        dataset="COCO",
        img_height=480,
        img_width=640,
        is_validation=True,
        num_other_people=n,
        people_index=0,
        annolist_index=118286,
        write_count=56000,
        total_write_count=56599,
        objpos=rng.uniform(0, 600, 2),
        scale_provided=1.25,
        joints=rng.uniform(0, 600, (17, 3)),
        objpos_other=rng.uniform(0, 600, (n, 2)),
        scale_provided_other=rng.uniform(0, 2, n),
        joints_other=rng.uniform(0, 600, (n, 17, 3)),
    )


@pytest.mark.parametrize("n", [0, 1, 20])
def test_pack_unpack_round_trip(n: int) -> None:
    meta = make_meta(n)
    packed = pack_meta(meta, 100)
    assert packed.shape == (8 + (4 * n + 1 if n else 0), 100)
    channel = np.zeros((200, 100), np.uint8)
    channel[: len(packed)] = packed
    assert unpack_meta(channel) == meta
    assert bytes(channel[0, :5]) == b"COCO\0" and channel[2, 1] == n
    assert np.frombuffer(channel[2, 11:15].tobytes(), "<f4")[0] == 56599
    np.testing.assert_array_equal(
        np.frombuffer(channel[7, :68].tobytes(), "<f4"), meta.joints[:, 2]
    )


def test_sample_without_mask_all_round_trips() -> None:
    image = np.random.default_rng(1).integers(0, 255, (50, 80, 3), np.uint8)
    sample = Sample(image, np.full((50, 80), 255, np.uint8), None, make_meta(2))
    array = encode_sample(sample)
    assert array.shape == (5, 50, 80)
    back = decode_sample(array)
    assert back.mask_all is None and back.meta == sample.meta
    np.testing.assert_array_equal(back.image, image)


def test_metadata_errors() -> None:
    with pytest.raises(RtposeError, match="joints_other"):
        dataclasses.replace(make_meta(2), joints_other=np.zeros((1, 17, 3)))
    with pytest.raises(RtposeError, match="bytes wide"):
        pack_meta(make_meta(0), 60)
    with pytest.raises(RtposeError, match="uint8"):
        decode_sample(np.zeros((6, 40, 80), np.float32))
    with pytest.raises(RtposeError, match="cannot hold"):
        channel = pack_meta(make_meta(0), 80)
        channel[2, 1] = 30  # claims 30 other people in 8 rows
        unpack_meta(channel)


# ---------------------------------------------------------------- reader errors


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(RtposeError, match="not found"):
        HDF5Dataset(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RtposeError, match="not a readable HDF5"):
        HDF5Dataset(tmp_path / "text.h5")
    with h5py.File(tmp_path / "nodatum.h5", "w") as h5:
        h5.create_group("data")
    with pytest.raises(RtposeError, match="no 'datum' group"):
        HDF5Dataset(tmp_path / "nodatum.h5")
    sample = encode_sample(
        Sample(np.zeros((40, 80, 3), np.uint8), *np.zeros((2, 40, 80), np.uint8), make_meta(0))
    )
    with h5py.File(tmp_path / "gap.h5", "w") as h5:
        h5["datum/0000000"] = sample
        h5["datum/0000002"] = sample
    with pytest.raises(RtposeError, match="dense"):
        HDF5Dataset(tmp_path / "gap.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as h5:
        h5["datum/0000000"] = sample
        h5["datum/0000001"] = sample.astype(np.float32)
        h5["datum/0000002"] = sample[:4]
    with HDF5Dataset(tmp_path / "bad.h5") as dataset:
        assert dataset.keys() == ["0000000", "0000001", "0000002"]
        assert dataset[0].meta == make_meta(0) and dataset[-3].meta == make_meta(0)
        with pytest.raises(RtposeError, match="not a uint8"):
            dataset[1]
        with pytest.raises(RtposeError, match="sample 2: a sample must be"):
            dataset[2]
        with pytest.raises(IndexError):
            dataset[3]


# ---------------------------------------------------------------- scripts


def run_script(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "training/generate_hdf5.py", *args],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_script_help(repo_root: Path) -> None:
    result = run_script(repo_root, "--help")
    assert result.returncode == 0
    for flag in ("--dataset-dir", "--modes", "--split", "--val-size", "--output-dir", "2645"):
        assert flag in result.stdout


def test_script_missing_annotations(repo_root: Path, tmp_path: Path) -> None:
    result = run_script(repo_root, "--dataset-dir", str(tmp_path), "--modes", "val")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "val2017.json" in lines[0]
    assert not list(tmp_path.glob("*.h5"))


def test_missing_masks_say_what_to_run(coco_mini: Path, tmp_path: Path) -> None:
    argv = ["--split", *split_args(coco_mini, tmp_path, "val"), "--output-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"error: masks of image \d+ not found.*generate_masks"):
        generate_hdf5_main(argv)
    assert not list(tmp_path.glob("*.h5"))
