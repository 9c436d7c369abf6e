"""OpenPose's hand and face networks and the whole body without torch: the networks' layers,
their ``.pth`` conversion (random weights in the real names and shapes), the fetch command, the
OpenVINO runtime against Keras, the boxes, People's JSON and the one line without weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from weight_files import contiguous, write_pth

from rtpose.convert.state_dict import PthArchitectureError, convert_pth, network_of_state
from rtpose.models import PART_NETWORKS
from rtpose.people import People
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
