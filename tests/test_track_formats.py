"""extract_poses.py's tracked outputs and skeleton datasets, written and read back field by
field: person IDs in openpose/jsonl/npz, offline smoothing, kinetics (ST-GCN), pyskl (with the
17-part mapping and resume after kill -9) and csv.

The model is ``helpers.person_pipeline`` (one synthetic person per frame, its place set by the
frame's colour), as in tests/test_extract.py."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import person_pipeline
from test_extract import FAST, SIZE, make_video, run_ok

import rtpose.tools.extract_poses as tool
from rtpose.extract import load_corpus, load_poses, load_pyskl
from rtpose.extract.datasets import (
    COCO_FROM_OPENPOSE,
    CSV_HEADER,
    KINETICS_LABELS,
    PYSKL_CORPUS,
    DatasetOptions,
)
from rtpose.extract.inputs import Item
from rtpose.extract.run import KILL_AFTER_VARIABLE
from rtpose.extract.store import LocalStore
from rtpose.extract.writers import make_writers
from rtpose.people import People
from rtpose.skeleton import COCO_KEYPOINTS, PARTS

pytest.importorskip("scipy", reason="tracking needs scipy")
FRAMES = {"walk/a.mp4": 6, "run/b.mp4": 4}


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(tool, "pipeline_from_args", person_pipeline)


@pytest.fixture
def videos(tmp_path) -> Path:
    """Two labelled videos, ``walk/a.mp4`` and ``run/b.mp4``."""
    root = tmp_path / "videos"
    for seed, (name, frames) in enumerate(FRAMES.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(root / name, frames, seed=seed + 1)
    return root


def expected_people(path: Path) -> list[People]:
    """The model's people in every frame of a video (untracked)."""
    pipeline = person_pipeline(tool.build_parser().parse_args(["x", "--output", "o", *FAST]))
    capture = cv2.VideoCapture(str(path))
    people = []
    while (frame := capture.read())[0]:
        people.append(pipeline(frame[1]))
    return people


def test_the_17_part_layout_is_coco_order():
    assert [PARTS[p] for p in COCO_FROM_OPENPOSE] == list(COCO_KEYPOINTS)


def test_ids_in_openpose_jsonl_and_npz_and_smoothing(videos, tmp_path, fake_model):
    for format in ("openpose", "jsonl", "npz"):
        run_ok([str(videos), "--output", str(tmp_path / format), "--format", format, *FAST])
        for poses in load_corpus(tmp_path / format).values():
            assert all(p.person_ids.tolist() == [0] for p in poses.people)
    with np.load(tmp_path / "npz" / "walk" / "a.npz") as data:
        assert data["person_ids"].dtype == np.int64 and data["person_ids"].tolist() == [0] * 6
        assert "filled" not in data
    run_ok([str(videos), "--output", str(tmp_path / "plain"), "--format", "npz", "--no-track",
            *FAST])
    with np.load(tmp_path / "plain" / "walk" / "a.npz") as data:
        assert "person_ids" not in data
    run_ok([str(videos), "--output", str(tmp_path / "smooth"), "--format", "jsonl", "--smooth",
            "--sigma", "1", *FAST])
    raw, smooth = (load_poses(tmp_path / name / "walk" / "a.jsonl") for name in ("jsonl",
                                                                                   "smooth"))
    assert raw.frames.tolist() == smooth.frames.tolist()
    moved = [not np.allclose(a.keypoints, b.keypoints) for a, b in
             zip(raw.people, smooth.people, strict=True)]
    assert any(moved)


def test_kinetics(videos, tmp_path, fake_model):
    out = tmp_path / "out"
    run_ok([str(videos), "--output", str(out), "--format", "kinetics", *FAST])
    width, height = SIZE
    for name, frames in FRAMES.items():
        video = json.loads((out / name.replace(".mp4", ".json")).read_text())
        label = name.split("/")[0]
        assert video["label"] == label and video["label_index"] == ["run", "walk"].index(label)
        assert [f["frame_index"] for f in video["data"]] == list(range(1, frames + 1))
        for frame, want in zip(video["data"], expected_people(videos / name), strict=True):
            (skeleton,) = frame["skeleton"]
            assert len(skeleton["pose"]) == 36 and len(skeleton["score"]) == 18
            pose = np.reshape(skeleton["pose"], (18, 2))
            np.testing.assert_allclose(pose, want.xy[0] / [width, height], atol=5e-5)
            np.testing.assert_allclose(skeleton["score"], want.conf[0], atol=5e-5)
            assert skeleton["person_id"] == 0
    labels = json.loads((out / KINETICS_LABELS).read_text())
    assert labels == {"a": {"has_skeleton": True, "label": "walk", "label_index": 1},
                      "b": {"has_skeleton": True, "label": "run", "label_index": 0}}
    corpus = load_corpus(out)
    assert corpus["walk/a.mp4"].frames.tolist() == list(range(1, 7))
    for got, want in zip(corpus["walk/a.mp4"].people, expected_people(videos / "walk/a.mp4"),
                         strict=True):
        np.testing.assert_allclose(got.xy, want.xy, atol=0.01)
        assert got.person_ids.tolist() == [0]


def test_kinetics_missing_parts_labels_file_and_no_people(tmp_path):
    """A missing part is 0, 0 with score 0; ``--labels`` names the classes; a video without
    people has no skeleton."""
    labels = tmp_path / "labels.csv"
    labels.write_text("x,jump\ny,sit\n")
    options = DatasetOptions(classes=("jump", "sit"), labels=str(labels))
    store = LocalStore(tmp_path / "out")
    keypoints = np.zeros((1, 18, 3))
    keypoints[0, 1] = (80, 60, 0.5)
    people = People(keypoints, np.ones(1), np.ones(1, np.int64), np.array([3]))
    for stem, frames in (("x", [people, people]), ("y", [People.empty()])):
        item = Item(f"clips/{stem}.mp4", f"{stem}.mp4", "video")
        (writer,) = make_writers(store, item, "kinetics", False, 10.0, (160, 120), options)
        for index, frame_people in enumerate(frames):
            writer.write(index, 0.0, frame_people, None, None)
        writer.commit()
    x = json.loads((tmp_path / "out" / "x.json").read_text())
    assert (x["label"], x["label_index"]) == ("jump", 0)
    skeleton = x["data"][1]["skeleton"][0]
    assert skeleton["pose"][:4] == [0, 0, 0.5, 0.5] and skeleton["score"][:2] == [0, 0.5]
    y = json.loads((tmp_path / "out" / "y.json").read_text())
    assert (y["label"], y["label_index"], y["data"]) == ("sit", 1, [
        {"frame_index": 1, "skeleton": []}])


@pytest.mark.parametrize("layout", ["coco17", "openpose18"])
def test_pyskl(videos, tmp_path, fake_model, layout):
    out = tmp_path / "out"
    run_ok([str(videos), "--output", str(out), "--format", "pyskl", "--layout", layout, *FAST])
    with open(out / PYSKL_CORPUS, "rb") as file:
        corpus = pickle.load(file)
    assert set(corpus) == {"split", "annotations"}
    assert corpus["split"] == {"all": ["run/b", "walk/a"]}
    parts = list(COCO_FROM_OPENPOSE) if layout == "coco17" else list(range(18))
    for annotation in corpus["annotations"]:
        name = annotation["frame_dir"] + ".mp4"
        frames = FRAMES[name]
        assert set(annotation) == {"frame_dir", "total_frames", "img_shape", "original_shape",
                                   "label", "keypoint", "keypoint_score"}
        assert annotation["total_frames"] == frames
        assert annotation["img_shape"] == annotation["original_shape"] == (SIZE[1], SIZE[0])
        assert annotation["label"] == ["run", "walk"].index(name.split("/")[0])
        assert annotation["keypoint"].dtype == annotation["keypoint_score"].dtype == np.float16
        assert annotation["keypoint"].shape == (1, frames, len(parts), 2)
        assert annotation["keypoint_score"].shape == (1, frames, len(parts))
        want = np.array([p.keypoints[0] for p in expected_people(videos / name)])
        np.testing.assert_allclose(annotation["keypoint"][0], want[:, parts, :2], rtol=1e-3)
        np.testing.assert_allclose(annotation["keypoint_score"][0], want[:, parts, 2],
                                   atol=1e-3)
    poses = load_pyskl(out / PYSKL_CORPUS)["walk/a"]
    assert poses.frames.tolist() == list(range(6))
    assert all(p.person_ids.tolist() == [0] for p in poses.people)
    assert load_corpus(out)["walk/a.mp4"].frames.tolist() == list(range(6))


def test_pyskl_keeps_the_longest_tracks(tmp_path):
    """Three tracks: the two seen in the most frames are kept, longest first; an untracked
    video keeps each frame's best scored."""
    store = LocalStore(tmp_path)
    options = DatasetOptions(classes=("c",), max_persons=2, layout="openpose18")

    def frame(ids, scores):
        keypoints = np.ones((len(ids), 18, 3))
        keypoints[:, :, 0] = np.array(ids)[:, None] * 10
        return People(keypoints, np.array(scores, float), np.full(len(ids), 18), np.array(ids))

    frames = [frame([5, 6, 7], [1, 2, 3]), frame([5, 6], [1, 2]), frame([5], [1])]
    item = Item("c/v.mp4", "c/v.mp4", "video")
    (writer,) = make_writers(store, item, "pyskl", False, 10.0, (100, 100), options)
    for index, people in enumerate(frames):
        writer.write(index, 0.0, people, None, None)
    writer.commit()
    with open(tmp_path / "c" / "v.pkl", "rb") as file:
        keypoint = pickle.load(file)["keypoint"]
    assert keypoint.shape == (2, 3, 18, 2)
    assert keypoint[0, :, 0, 0].tolist() == [50, 50, 50]  # ID 5, in every frame
    assert keypoint[1, :, 0, 0].tolist() == [60, 60, 0]  # ID 6, then absent


def test_pyskl_resumes_after_kill_9(videos, tmp_path, repo_root):
    """The driver is killed (SIGKILL) right after it recorded its first video: no corpus
    pickle; the same command again does the other video and writes the whole pickle, as an
    uninterrupted run does."""
    driver = [sys.executable, str(repo_root / "tests" / "extract_driver.py"), str(videos),
              "--format", "pyskl", *FAST]
    env = {**__import__("os").environ, "PYTHONPATH": str(repo_root)}
    killed = subprocess.run([*driver, "--output", str(tmp_path / "out")], capture_output=True,
                            env={**env, KILL_AFTER_VARIABLE: "1:KILL"}, cwd=repo_root)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / PYSKL_CORPUS).exists()
    for output in ("out", "reference"):
        subprocess.run([*driver, "--output", str(tmp_path / output)], check=True, env=env,
                       cwd=repo_root, capture_output=True)
    resumed, reference = (pickle.loads((tmp_path / o / PYSKL_CORPUS).read_bytes())
                          for o in ("out", "reference"))
    assert resumed["split"] == reference["split"]
    for got, want in zip(resumed["annotations"], reference["annotations"], strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_array_equal(got["keypoint"], want["keypoint"])


def test_csv(videos, tmp_path, fake_model):
    out = tmp_path / "out"
    run_ok([str(videos), "--output", str(out), "--format", "csv", *FAST])
    lines = (out / "walk" / "a.csv").read_text().splitlines()
    assert lines[0].split(",") == list(CSV_HEADER)
    assert CSV_HEADER[:7] == ("input", "frame", "timestamp", "person_id", "nose_x", "nose_y",
                              "nose_score") and len(CSV_HEADER) == 4 + 18 * 3
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 6 and {row[0] for row in rows} == {"walk/a.mp4"}
    assert [int(row[1]) for row in rows] == list(range(6))
    assert [float(row[2]) for row in rows] == pytest.approx([i / 10 for i in range(6)])
    assert {row[3] for row in rows} == {"0"}
    want = expected_people(videos / "walk/a.mp4")
    np.testing.assert_allclose([[float(v) for v in row[4:]] for row in rows],
                               [p.keypoints[0].ravel() for p in want])
    poses = load_corpus(out)["walk/a.mp4"]
    assert poses.timestamps.tolist() == pytest.approx([i / 10 for i in range(6)])
    for got, expected in zip(poses.people, want, strict=True):
        np.testing.assert_array_equal(got.keypoints, expected.keypoints)
        assert got.person_ids.tolist() == [0]


def test_mmaction2_reads_the_pyskl_pickle(videos, tmp_path, fake_model):
    """mmaction2's own skeleton dataset and pose pipeline (the transforms of its ST-GCN and
    PoseC3D configs) read the corpus pickle: every video, its label, COCO's 17 joints."""
    pytest.importorskip("mmaction", reason="needs the mmaction2 extra (see .ci/run)")
    from mmaction.datasets import PoseDataset
    from mmaction.datasets.transforms import (
        FormatGCNInput,
        GenSkeFeat,
        PackActionInputs,
        PoseDecode,
        PreNormalize2D,
        UniformSampleFrames,
    )

    out = tmp_path / "out"
    run_ok([str(videos), "--output", str(out), "--format", "pyskl", *FAST])
    pipeline = [PreNormalize2D(), GenSkeFeat(dataset="coco", feats=["j"]),
                UniformSampleFrames(clip_len=4), PoseDecode(), FormatGCNInput(num_person=2),
                PackActionInputs()]
    dataset = PoseDataset(str(out / PYSKL_CORPUS), pipeline, split="all", test_mode=True)
    assert len(dataset) == 2
    for index, label in enumerate([0, 1]):  # run/b, walk/a
        sample = dataset[index]
        assert tuple(sample["inputs"].shape) == (1, 2, 4, 17, 3)
        assert sample["data_samples"].gt_label.tolist() == [label]
        joints = sample["inputs"][0, 0].numpy()
        assert np.isfinite(joints).all() and np.abs(joints[..., :2]).max() <= 1.0
        assert (joints[..., 2] > 0.9).mean() > 0.5  # the one person, found with high scores
