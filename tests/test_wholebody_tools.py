"""Hands and face beyond demo_image: the store's ``hand`` and ``face`` entries (``rtpose models``,
``rtpose fetch hand --from``), ``rtpose.load(..., hands=True, face=True)`` on ski.jpg, and
``--hands`` / ``--face`` on demo_camera.py, extract_poses.py and evaluate_coco.py, with random
weights in the networks' real names and shapes (``test_wholebody._random_state``).

For speed, the hand network runs at one of its four scales (184 px) and the face at 184 px
(``small_parts``): the same code and the same outputs' shapes, a tenth of the network time."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_wholebody import _random_state
from weight_files import contiguous, write_pth

import rtpose
from rtpose import cli, store, wholebody
from rtpose.convert import cmu_source
from rtpose.convert.state_dict import convert_pth
from rtpose.errors import ModelNotFoundError
from rtpose.models import PART_NETWORKS
from rtpose.tools.common import pipeline_from_args

SKI = "sample_images/ski.jpg"


def small_parts_pipeline(args, threads: int | None = None):
    """``pipeline_from_args`` with the hand network at one scale and the face network at 184 px
    (see the module docstring), for extract_poses's spawned workers."""
    wholebody.HAND_SCALES, wholebody.FACE_INPUT = (0.5,), 184
    return pipeline_from_args(args, threads)


@pytest.fixture(scope="module")
def part_files(tmp_path_factory):
    """The hand and face networks' ``.pth`` files, random, in their real names and shapes."""
    folder = tmp_path_factory.mktemp("pth")
    return {network: write_pth(folder / PART_NETWORKS[network].pth,
                               *contiguous(_random_state(network)))
            for network in PART_NETWORKS}


@pytest.fixture(scope="module")
def body_weights():
    path = store.locate("mobilenet_thin")
    if path is None:
        pytest.skip("no MobileNet-thin weights: run the README's set-up command")
    return path


@pytest.fixture(scope="module")
def part_store(part_files, tmp_path_factory):
    """A store holding the converted hand and face weights."""
    home = tmp_path_factory.mktemp("store")
    for network, pth in part_files.items():
        convert_pth(pth, home / f"{network}.weights.h5", network=network, progress=False)
    return home


@pytest.fixture
def parts_env(part_store, monkeypatch):
    """The store of ``part_store``, no checkout to search, the small part networks."""
    monkeypatch.setenv(store.HOME_ENV, str(part_store))
    monkeypatch.setattr(store, "checkout_root", lambda: None)
    monkeypatch.setattr(wholebody, "HAND_SCALES", (0.5,))
    monkeypatch.setattr(wholebody, "FACE_INPUT", 184)
    return part_store


@pytest.fixture
def crop(repo_root, tmp_path):
    """Two of ski.jpg's people (left), as an image file."""
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), cv2.imread(str(repo_root / SKI))[200:, :280])
    return path


def test_store_lists_and_fetches_hand_and_face(part_files, tmp_path, monkeypatch, capsys):
    home = tmp_path / "store"
    monkeypatch.setenv(store.HOME_ENV, str(home))
    monkeypatch.setattr(store, "checkout_root", lambda: None)
    assert store.get("hand").checkout == ("model/keras/hand.weights.h5",)
    assert store.get("face").checkout == ("model/keras/face.weights.h5",)
    cli.main(["models"])
    listing = capsys.readouterr().out
    assert f"not present: `rtpose fetch hand` writes {home / 'hand.weights.h5'}" in listing
    assert "lllyasviel/Annotators facenet.pth" in listing
    # The random file is not the pinned one: refused in one line, nothing written.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fetch", "hand", "--from", str(part_files["hand"])])
    assert str(exit_info.value.code).startswith(f"error: {part_files['hand']} has ")
    assert "\n" not in str(exit_info.value.code) and not (home / "hand.weights.h5").exists()
    # Pinned to the random files, as if they were the real ones.
    for network, pth in part_files.items():
        monkeypatch.setitem(cmu_source._PART_FILES, network, cmu_source.PinnedFile(
            pth.name, pth.stat().st_size, cmu_source.sha256(pth)))
    for network in ("hand", "face"):
        cli.main(["fetch", network, "--from", str(part_files[network])])
        assert capsys.readouterr().out.strip() == f"{network}: {home / network}.weights.h5"
        assert store.locate(network) == home / f"{network}.weights.h5"
    cli.main(["models"])
    listing = capsys.readouterr().out
    assert str(home / "hand.weights.h5") in listing
    assert store.describe("face")["sha256"] in listing


def test_load_with_hands_and_face_on_ski(parts_env, body_weights, repo_root):
    model = rtpose.load(body_weights, scales=(1.0,), hands=True, face=True)
    ski = str(repo_root / SKI)
    people = model(ski)
    n = len(people)
    assert n == 5 and people.hands.shape == (n, 2, 21, 3) and people.face.shape == (n, 70, 3)
    # The people's hands and face are those of rtpose.wholebody on the same body keypoints.
    image = rtpose.read_image(ski)
    found = wholebody.detect_hands_face(image, people.keypoints, model.pipeline.hand_network,
                                        model.pipeline.face_network)
    np.testing.assert_array_equal(people.hands, found.hands)
    np.testing.assert_array_equal(people.face, found.face)
    assert (people.hands[..., 2] > 0).any() and (people.face[..., 2] > 0).any()
    # Keypoints lie in their boxes; people without a box have none.
    for person, side, x, y, s in found.hand_boxes:
        points = people.hands[person, side][people.hands[person, side, :, 2] > 0]
        assert ((points[:, :2] >= [x, y]) & (points[:, :2] < [x + s, y + s])).all()
    boxed = set(map(tuple, found.hand_boxes[:, :2].tolist()))
    for person in range(n):
        for side in range(2):
            if (person, side) not in boxed:
                assert not people.hands[person, side].any()
    # Drawn: the body alone differs from the body with hands and face.
    body_only = people.with_hands_face(None, None)
    assert (model.draw(ski, people) != model.draw(ski, body_only)).any()
    plain = rtpose.load(body_weights, scales=(1.0,))
    assert plain(ski).hands is None


def test_load_without_the_weights_is_one_line(body_weights, tmp_path, monkeypatch):
    monkeypatch.setenv(store.HOME_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr(store, "checkout_root", lambda: None)
    for flags, network in (({"hands": True}, "hand"), ({"face": True}, "face")):
        with pytest.raises(ModelNotFoundError) as error:
            rtpose.load(body_weights, scales=(1.0,), **flags)
        message = str(error.value)
        assert "\n" not in message and f"rtpose fetch {network}" in message
        assert f"bash model/get_cmu_model.sh --{'hands' if network == 'hand' else 'face'}" \
            in message


def _has_parts(person: dict) -> bool:
    return (len(person["hand_left_keypoints_2d"]) == 63
            and len(person["hand_right_keypoints_2d"]) == 63
            and len(person["face_keypoints_2d"]) == 210)


def test_demo_camera_hands_and_face_in_the_json_lines(parts_env, body_weights, crop, tmp_path):
    from rtpose.tools import demo_camera

    video = tmp_path / "two.avi"
    image = cv2.imread(str(crop))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             image.shape[1::-1])
    for _ in range(2):
        writer.write(image)
    writer.release()
    out = tmp_path / "out.jsonl"
    demo_camera.main(["--video", str(video), "--no-display", "--json", str(out), "--output",
                      str(tmp_path / "out.mp4"), "--model", str(body_weights), "--hands",
                      "--face", "--in-flight", "1"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["people"]
    assert all(_has_parts(person) for line in lines for person in line["people"])
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_extract_poses_hands_and_face(parts_env, body_weights, crop, tmp_path, monkeypatch):
    from rtpose.tools import extract_poses

    monkeypatch.setattr(extract_poses, "pipeline_from_args", small_parts_pipeline)
    for form in ("openpose", "jsonl"):
        out = tmp_path / form
        extract_poses.main([str(crop), "--output", str(out), "--format", form, "--model",
                            str(body_weights), "--scales", "1.0", "--hands", "--face",
                            "--no-progress"])
        written = next(p for p in out.iterdir() if p.name.startswith("two"))
        text = written.read_text().splitlines()[0]
        people = json.loads(text)["people"]
        assert people and all(_has_parts(person) for person in people)
        assert any(any(person["hand_left_keypoints_2d"] + person["hand_right_keypoints_2d"])
                   for person in people)
        manifest = (out / "manifest.jsonl").read_text()
        assert '"hands": true' in manifest and '"face": true' in manifest


def test_evaluate_coco_hands_and_face_in_the_results(parts_env, body_weights, shared_data,
                                                     tmp_path, capsys):
    pytest.importorskip("pycocotools", reason="evaluate_coco needs the eval extra: "
                        "pip install -e .[eval]")
    from rtpose.tools import evaluate_coco

    root = shared_data / "coco_eval" / "mmpose_coco4"
    common = ["--annotations", str(root / "test_coco.json"), "--images", str(root), "--model",
              str(body_weights), "--scales", "1.0", "--limit", "1"]
    plain, whole = tmp_path / "plain.json", tmp_path / "whole.json"
    evaluate_coco.main([*common, "--output", str(plain)])
    table = capsys.readouterr().out.splitlines()[1:-1]
    evaluate_coco.main([*common, "--output", str(whole), "--hands", "--face"])
    assert capsys.readouterr().out.splitlines()[1:-1] == table  # the body's AP unchanged
    plain_results, whole_results = (json.loads(p.read_text()) for p in (plain, whole))
    assert [r["keypoints"] for r in whole_results] == [r["keypoints"] for r in plain_results]
    assert whole_results and all(_has_parts(r) for r in whole_results)


def test_precision_and_calibration_reach_the_hand_and_face_networks(monkeypatch, tmp_path):
    """The tools' --precision and --calibration go to the part networks (int8 included); a
    body on onnx gets them on OpenVINO at fp32."""
    import argparse

    from rtpose.runtime import part_runtime
    from rtpose.wholebody import part_networks_from_args

    calls = []
    monkeypatch.setattr(part_runtime, "part_network", lambda *a: calls.append(a) or a[0])
    args = argparse.Namespace(hands=True, face=True, runtime="openvino", precision="int8",
                              calibration=tmp_path, verbose=False)
    assert part_networks_from_args(args, threads=2) == ("hand", "face")
    assert calls == [(name, None, "openvino", "int8", 2, tmp_path) for name in ("hand", "face")]
    calls.clear()
    args.runtime, args.precision, args.face = "onnx", "fp32", False
    assert part_networks_from_args(args) == ("hand", None)
    assert calls == [("hand", None, "openvino", "fp32", None, tmp_path)]


def test_controlnet_command_on_an_image_and_a_folder(parts_env, body_weights, repo_root,
                                                     tmp_path, capsys):
    """``rtpose controlnet``: the picture and the web UIs' JSON of openpose_full (the picture is
    the JSON drawn again); over a folder, one of each per image; the fast decoder's people are
    the faithful one's, a pixel or two apart; a missing image is one line."""
    from rtpose.controlnet import decode_pose_dict, draw_pose_dict

    ski = str(repo_root / SKI)
    outputs = {}
    for decoder in ("faithful", "fast"):
        png, pose = tmp_path / f"{decoder}.png", tmp_path / f"{decoder}.json"
        cli.main(["controlnet", ski, "--processor", "openpose_full", "-o", str(png), "--json",
                  str(pose), "--model", str(body_weights), "--decoder", decoder])
        data = json.loads(pose.read_text())
        picture = cv2.imread(str(png))[:, :, ::-1]
        assert (data["canvas_height"], data["canvas_width"]) == picture.shape[:2] == (512, 512)
        assert len(data["people"]) == 5
        assert all(len(p["pose_keypoints_2d"]) == 54 and len(p["hand_left_keypoints_2d"] or [])
                   in (0, 63) and len(p["face_keypoints_2d"] or []) % 3 == 0
                   for p in data["people"])
        assert any(p["hand_left_keypoints_2d"] or p["hand_right_keypoints_2d"]
                   for p in data["people"])
        np.testing.assert_array_equal(draw_pose_dict(data), picture)
        outputs[decoder] = decode_pose_dict(data)[0]
    def points(pose):
        return np.array([(k.x, k.y) if k is not None else (np.nan, np.nan)
                         for k in pose.body.keypoints]) * 512

    fast = np.stack([points(pose) for pose in outputs["fast"]])  # (5, 18, 2)
    shifts = []
    for pose in outputs["faithful"]:  # each person's nearest in the fast decoder's people
        distances = np.hypot(*(fast - points(pose)).transpose(2, 0, 1))  # (5, 18)
        shifts += list(distances[np.nanargmin(np.nanmean(distances, axis=1))])
    shifts = np.array(shifts)[~np.isnan(shifts)]
    assert len(shifts) > 40 and np.mean(shifts) < 3
    assert "1 image(s), openpose_full" in capsys.readouterr().out

    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(folder / name), cv2.imread(ski)[:, :400])
    cli.main(["controlnet", str(folder), "-o", str(tmp_path / "poses"), "--json",
              str(tmp_path / "poses"), "--model", str(body_weights)])
    assert sorted(p.name for p in (tmp_path / "poses").iterdir()) == [
        "a.json", "a.png", "b.json", "b.png"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["controlnet", str(tmp_path / "missing.jpg"), "--model", str(body_weights)])
    assert "missing.jpg: no such image or folder" in str(exit_info.value.code)
    assert "\n" not in str(exit_info.value.code)
    from rtpose.controlnet import OpenposeDetector
    from rtpose.errors import RtposeError

    with pytest.raises(RtposeError, match="unknown decoder 'lowres'; choose one of fast, faithful"):
        OpenposeDetector(None, decoder="lowres")
