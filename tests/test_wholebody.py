"""OpenPose's hand and face networks and the whole body without torch: the networks' layers,
their ``.pth`` conversion (random weights in the real names and shapes), the fetch command, the
OpenVINO runtime against Keras, the boxes, People's JSON and the one line without weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from weight_files import contiguous, write_pth

from rtpose.convert.state_dict import PthArchitectureError, convert_pth, network_of_state
from rtpose.models import PART_NETWORKS
from rtpose.people import People
from rtpose.runtime.calibration import part_calibration_batches
from rtpose.wholebody import face_boxes, hand_boxes

RNG = np.random.default_rng(23)
# Sizes in bytes of the real files, for the float32 tensors of the networks.
PTH_BYTES = {"hand": 147_341_049, "face": 153_718_792}


def _random_state(network: str) -> dict[str, np.ndarray]:
    """Random weights keyed and shaped as OpenPose's prototxt of the network has its layers."""
    channels = PART_NETWORKS[network].channels
    convs, cin = [], 3
    backbone = [("conv1_1", 64), ("conv1_2", 64), ("conv2_1", 128), ("conv2_2", 128)]
    backbone += [(f"conv3_{i}", 256) for i in range(1, 5)]
    backbone += [(f"conv4_{i}", 512) for i in range(1, 5)]
    backbone += [("conv5_1", 512), ("conv5_2", 512), ("conv5_3_CPM", 128)]
    for name, cout in backbone:
        convs.append((name, cin, cout, 3))
        cin = cout
    convs += [("conv6_1_CPM", 128, 512, 1), ("conv6_2_CPM", 512, channels, 1)]
    for stage in range(2, 7):
        convs += [(f"Mconv1_stage{stage}", 128 + channels, 128, 7)]
        convs += [(f"Mconv{i}_stage{stage}", 128, 128, 7) for i in range(2, 6)]
        convs += [(f"Mconv6_stage{stage}", 128, 128, 1), (f"Mconv7_stage{stage}", 128, channels, 1)]
    state = {}
    for name, cin, cout, k in convs:
        state[f"{name}.weight"] = (RNG.standard_normal((cout, cin, k, k), dtype=np.float32)
                                   * np.float32(np.sqrt(2 / (cin * k * k))))
        state[f"{name}.bias"] = RNG.normal(0, 0.05, cout).astype("f4")
    return state


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    weights = {}
    for network in PART_NETWORKS:
        state = _random_state(network)
        pth = write_pth(folder / PART_NETWORKS[network].pth, *contiguous(state))
        weights[network] = convert_pth(pth, folder / f"{network}.weights.h5", network=network,
                                       progress=False)
    return weights


@pytest.mark.parametrize("network", ["hand", "face"])
def test_layers_and_sizes_are_the_real_files(network):
    state = _random_state(network)
    # The real .pth holds exactly these float32 tensors: its size less the zip's bookkeeping.
    tensor_bytes = sum(a.nbytes for a in state.values())
    assert 0 < PTH_BYTES[network] - tensor_bytes < 100_000
    assert network_of_state(state) == network
    assert len(state) == 2 * (15 + 2 + 5 * 7)  # backbone, stage 1, stages 2-6
    assert state["Mconv1_stage2.weight"].shape[1] == 128 + PART_NETWORKS[network].channels


def test_conversion_checks_every_name_and_shape(tmp_path):
    state = _random_state("hand")
    state["Mconv3_stage4.weight"] = state["Mconv3_stage4.weight"][:, :64]
    pth = write_pth(tmp_path / "hand.pth", *contiguous(state))
    with pytest.raises(PthArchitectureError, match="Mconv3_stage4.weight is"):
        convert_pth(pth, tmp_path / "hand.weights.h5", network="hand", progress=False)
    assert not (tmp_path / "hand.weights.h5").exists()


def test_converted_maps_keras_and_openvino(converted):
    pytest.importorskip("openvino", reason="the openvino runtime: pip install -e .[openvino]")
    from rtpose.runtime.openvino.cache import openvino_cache_path
    from rtpose.runtime.part_runtime import part_network

    batch = RNG.uniform(0, 255, (2, 64, 80, 3)).astype(np.float32)
    for network, weights in converted.items():
        keras_maps = part_network(network, weights, "keras")(batch)
        assert keras_maps.shape == (2, 8, 10, PART_NETWORKS[network].channels)
        assert np.abs(keras_maps).max() > 1e-3
        openvino_maps = part_network(network, weights, "openvino")(batch)
        np.testing.assert_allclose(openvino_maps, keras_maps, atol=1e-4)
        assert openvino_cache_path(weights).is_file()  # cached beside the weights
        again = part_network(network, weights, "openvino")(batch)
        np.testing.assert_array_equal(again, openvino_maps)


def test_fetch_command_converts_hand_and_face_files(converted, tmp_path):
    from rtpose.tools import get_cmu_model

    folder = converted["hand"].parent
    get_cmu_model.main(["--pth", str(folder / "hand_pose_model.pth"), "--pth",
                        str(folder / "facenet.pth"), "--no-verify", "--root", str(tmp_path)])
    for network in PART_NETWORKS:
        assert (tmp_path / PART_NETWORKS[network].weights).is_file()


def test_hand_and_face_boxes():
    keypoints = np.zeros((2, 18, 3))
    # Person 0: left arm shoulder (100, 100), elbow (100, 150), wrist (100, 200); nose and one eye.
    keypoints[0, [5, 6, 7], :] = [[100, 100, 1], [100, 150, 1], [100, 200, 1]]
    keypoints[0, 0], keypoints[0, 15] = [300, 50, 1], [310, 45, 1]
    # Person 1: a right arm too small for a box (< 20 px), no face.
    keypoints[1, [2, 3, 4], :] = [[10, 10, 1], [10, 14, 1], [10, 18, 1]]
    boxes = hand_boxes(keypoints, (480, 640))
    side = int(1.5 * 50)  # 1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|)
    centre_y = 200 + 0.33 * 50
    assert boxes.tolist() == [[0, 0, int(100 - 1.5 * 50 / 2), int(centre_y - 1.5 * 50 / 2), side]]
    assert face_boxes(keypoints, (480, 640)).tolist() == [[0, 270, 20, 60]]


def test_people_json_with_hands_and_face_and_without():
    body = np.zeros((1, 18, 3))
    body[0, 0] = [5, 6, 0.9]
    people = People(body, np.array([3.0]), np.array([3]))
    plain = people.to_openpose_json()
    assert set(plain["people"][0]) == {"pose_keypoints_2d", "score", "part_count"}
    hands, face = RNG.uniform(size=(1, 2, 21, 3)), RNG.uniform(size=(1, 70, 3))
    whole = people.with_hands_face(hands, face).to_openpose_json()
    person = whole["people"][0]
    assert len(person["hand_left_keypoints_2d"]) == len(person["hand_right_keypoints_2d"]) == 63
    assert len(person["face_keypoints_2d"]) == 210
    back = People.from_json(whole)
    np.testing.assert_array_equal(back.hands, hands)
    np.testing.assert_array_equal(back.face, face)
    assert People.from_json(plain).hands is None
    with pytest.raises(ValueError, match="hands must be"):
        People(body, np.array([3.0]), np.array([3]), hands=np.zeros((1, 21, 3)))


def test_hands_without_the_weights_is_one_line(repo_root, tmp_path):
    if (repo_root / PART_NETWORKS["hand"].weights).is_file():
        pytest.skip("the hand network's weights are in place")
    result = subprocess.run(
        [sys.executable, "demo_image.py", "--image", "sample_images/ski.jpg", "--hands",
         "--output", str(tmp_path / "out.png")],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bash model/get_cmu_model.sh --hands" in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_the_page_commands_are_accepted(repo_root, capsys, monkeypatch):
    """docs/whole-body.md's commands: their scripts exist and take the flags it gives them."""
    import runpy
    import shlex

    from test_readme import _commands

    commands = _commands((repo_root / "docs" / "whole-body.md").read_text())
    assert len(commands) >= 3
    monkeypatch.syspath_prepend(str(repo_root))
    for command in commands:
        words = shlex.split(command)
        if words[1] == "-m":
            words = [words[0], words[2].replace(".", "/") + ".py", *words[3:]]
        script = repo_root / words[1]
        assert script.is_file(), command
        if words[0] == "bash":
            continue
        main = runpy.run_path(str(script), run_name="docs_check")["main"]
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        accepted = capsys.readouterr().out
        assert all(w in accepted for w in words[2:] if w.startswith("--")), command


def _calibration_folder(shared_data, tmp_path, images: int, people: int | None = None):
    """The first ``images`` coco_mini train2017 images with people, and their annotations (the
    first ``people`` of them), in COCO's layout (``train2017/``,
    ``annotations/person_keypoints_train2017.json``)."""
    import json
    import shutil

    source = shared_data / "coco_mini"
    data = json.loads((source / "annotations/person_keypoints_train2017.json").read_text())
    with_people = {a["image_id"] for a in data["annotations"]}
    kept = sorted((i for i in data["images"] if i["id"] in with_people),
                  key=lambda i: i["file_name"])[:images]
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations").mkdir()
    for image in kept:
        shutil.copy(source / "train2017" / image["file_name"], tmp_path / "train2017")
    ids = {i["id"] for i in kept}
    annotations = [a for a in data["annotations"] if a["image_id"] in ids]
    data.update(images=kept, annotations=annotations[:people])
    (tmp_path / "annotations/person_keypoints_train2017.json").write_text(json.dumps(data))
    return tmp_path / "train2017"


def test_calibration_crops_are_hands_and_faces_of_annotated_people(shared_data, tmp_path):
    from rtpose.errors import RtposeError
    from rtpose.runtime.calibration import part_calibration_batches

    folder = _calibration_folder(shared_data, tmp_path, 6)
    hands = part_calibration_batches(folder, "hand")
    faces = part_calibration_batches(folder, "face", limit=2)
    assert len(hands) >= 4 and len(faces) == 2
    assert {b.shape for b in hands} == {(1, 368, 368, 3)}
    assert {b.shape for b in faces} == {(1, 384, 384, 3)}
    assert all(b.dtype == np.float32 and 10 < b.mean() < 245 and b.std() > 10 for b in hands)
    with pytest.raises(RtposeError, match="validation images"):
        part_calibration_batches(shared_data / "coco_mini/val2017", "hand")
    (tmp_path / "annotations/person_keypoints_train2017.json").unlink()
    with pytest.raises(RtposeError, match="needs the COCO keypoint annotations") as error:
        part_calibration_batches(folder, "face")
    assert "\n" not in str(error.value)


def test_int8_hand_network_calibrated_on_hand_crops(converted, shared_data, tmp_path):
    """int8: NNCF over the hand crops of annotated training images, the maps' convolutions in
    float; close to fp32's maps but not equal; cached beside the weights, then loaded without
    reading the calibration images again."""
    pytest.importorskip("nncf", reason="int8 needs NNCF: pip install -e .[openvino]")
    import shutil

    from rtpose.runtime.openvino.cache import openvino_cache_path
    from rtpose.runtime.openvino.network import read_info, read_ir
    from rtpose.runtime.part_runtime import part_network

    weights = Path(shutil.copy(converted["hand"], tmp_path / "hand.weights.h5"))
    folder = _calibration_folder(shared_data, tmp_path, 1, people=1)
    batch = np.concatenate(part_calibration_batches(shared_data / "coco_mini/train2017", "hand",
                                                    limit=12)[-2:])
    fp32 = part_network("hand", weights, "openvino", "fp32")(batch)
    int8 = part_network("hand", weights, "openvino", "int8", calibration=folder)(batch)
    error = np.abs(int8 - fp32).mean()
    assert 0 < error < 0.1 * np.abs(fp32).mean()
    model = read_ir(openvino_cache_path(weights, "int8"))
    info = read_info(model)
    assert (info["precision"], info["arch"], info["calibration"]) == ("int8", "cmu_hand",
                                                                       str(folder))
    assert int(info["calibration_images"]) >= 2
    types = [node.get_type_name() for node in model.get_ordered_ops()]
    assert types.count("FakeQuantize") >= 30
    shutil.rmtree(folder)  # a fresh cache reads no calibration images
    again = part_network("hand", weights, "openvino", "int8", calibration=folder)(batch)
    np.testing.assert_array_equal(again, int8)


NO_TENSORFLOW = """
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):  # as if TensorFlow were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
import numpy as np, os, rtpose
from rtpose.runtime.part_runtime import part_network

maps = part_network("face", sys.argv[1], "openvino")(np.load(sys.argv[2]))
np.save(sys.argv[3], maps)
print(json.dumps([os.environ["KERAS_BACKEND"], "tensorflow" in sys.modules]))
"""


@pytest.mark.slow
def test_part_network_converts_without_tensorflow(converted, tmp_path):
    """The inference install has no TensorFlow: the face network is then exported by Keras's
    own OpenVINO backend, with the maps of the TensorFlow-converted IR."""
    pytest.importorskip("openvino", reason="the openvino runtime: pip install -e .[openvino]")
    import json
    import os
    import shutil

    from rtpose.runtime.part_runtime import part_network

    weights = Path(shutil.copy(converted["face"], tmp_path / "face.weights.h5"))
    batch = RNG.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    np.save(tmp_path / "batch.npy", batch)
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(weights),
                          str(tmp_path / "batch.npy"), str(tmp_path / "maps.npy")],
                         cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == ["openvino", False]
    assert (tmp_path / "face.openvino.xml").is_file()
    reference = part_network("face", converted["face"], "openvino")(batch)
    np.testing.assert_allclose(np.load(tmp_path / "maps.npy"), reference, atol=1e-4)
