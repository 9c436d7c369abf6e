"""rtpose.controlnet against controlnet_aux 0.0.10 itself, on the same random weights saved as the
real ``.pth`` files (``tests/controlnet_oracle.py``): the networks' maps (Keras and OpenVINO fp32),
the keypoints on real images, the drawn pictures pixel for pixel and the web UIs' pose JSON."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the oracle needs torch (pip install torch)")
pytest.importorskip("skimage", reason="controlnet_aux's hand.py needs scikit-image")
pytest.importorskip("matplotlib", reason="controlnet_aux's drawing needs matplotlib")
from controlnet_oracle import load_open_pose, random_pth  # noqa: E402

try:
    load_open_pose()
except ImportError as e:
    pytest.skip(f"controlnet_aux's open_pose ({e}): pip install --no-deps controlnet-aux==0.0.10",
                allow_module_level=True)

from rtpose import controlnet  # noqa: E402

RESOLUTION = 128  # detect_resolution: the oracle's Python grouping is slow on random maps


@pytest.fixture(scope="module")
def open_pose():
    return load_open_pose()


@pytest.fixture(scope="module")
def pth(tmp_path_factory, open_pose):
    folder = tmp_path_factory.mktemp("annotators")
    random_pth(folder)
    return folder


@pytest.fixture(scope="module")
def oracle(open_pose, pth):
    torch.set_num_threads(2)
    return open_pose.OpenposeDetector(open_pose.Body(str(pth / "body_pose_model.pth")),
                                      open_pose.Hand(str(pth / "hand_pose_model.pth")),
                                      open_pose.Face(str(pth / "facenet.pth")))


@pytest.fixture(scope="module")
def ours(pth):
    return controlnet.OpenposeDetector.from_pretrained(pth, runtime="keras",
                                                       weights_dir=pth / "converted")


def _image(shared_data, name):
    path = shared_data / ("sample_images/ski.jpg" if name == "ski" else f"coco_mini/val2017/{name}")
    return controlnet.resize_image(cv2.imread(str(path))[:, :, ::-1], RESOLUTION)


IMAGES = ["ski", "000000000139.jpg", "000000000802.jpg"]


def _same_poses(mine, theirs):
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert [k is None for k in a.body.keypoints] == [k is None for k in b.body.keypoints]
        assert [(k.x, k.y) for k in a.body.keypoints if k] == \
            [(k.x, k.y) for k in b.body.keypoints if k]
        assert a.body.total_score == pytest.approx(b.body.total_score, abs=1e-4)
        assert a.body.total_parts == b.body.total_parts
        for name in ("left_hand", "right_hand", "face"):
            mine_k, theirs_k = getattr(a, name), getattr(b, name)
            assert (mine_k is None) == (theirs_k is None), name
            if mine_k is not None:
                assert [(k.x, k.y) for k in mine_k] == [(k.x, k.y) for k in theirs_k], name


@pytest.mark.parametrize("name", IMAGES)
def test_body_keypoints_and_drawing(shared_data, oracle, ours, open_pose, name):
    image = _image(shared_data, name)
    theirs = oracle.detect_poses(image)
    mine = ours.detect_poses(image)
    assert theirs, "the random weights find no one: the test would prove nothing"
    _same_poses(mine, theirs)
    height, width = image.shape[:2]
    expected = open_pose.draw_poses(theirs, height, width, True, False, False)
    assert np.array_equal(controlnet.draw_poses(theirs, height, width, True, False, False),
                          expected)
    assert np.array_equal(np.asarray(ours(image, RESOLUTION, RESOLUTION, output_type="np")),
                          np.asarray(oracle(image, RESOLUTION, RESOLUTION, output_type="np")))


def test_hands_face_keypoints_drawing_and_json(shared_data, oracle, ours, open_pose):
    image = _image(shared_data, "ski")
    theirs = oracle.detect_poses(image, include_hand=True, include_face=True)
    mine = ours.detect_poses(image, include_hand=True, include_face=True)
    assert any(p.face for p in theirs) and any(p.left_hand or p.right_hand for p in theirs)
    _same_poses(mine, theirs)
    height, width = image.shape[:2]
    for processor, flags in controlnet.PROCESSORS.items():
        body, hand, face = (flags[f"include_{k}"] for k in ("body", "hand", "face"))
        expected = open_pose.draw_poses(theirs, height, width, body, hand, face)
        drawn = controlnet.draw_poses(mine, height, width, body, hand, face)
        assert np.array_equal(drawn, expected), processor
    data = controlnet.encode_poses_as_dict(mine, height, width)
    assert data == _webui_json(theirs, height, width)
    assert np.array_equal(controlnet.draw_pose_dict(data), drawn)


def _webui_json(poses, height, width):
    """sd-webui-controlnet's pose JSON of controlnet_aux's poses, as the web UI writes it."""
    def flat(keypoints):
        if not keypoints:
            return None
        return [v for k in keypoints
                for v in ([float(k.x), float(k.y), 1.0] if k is not None else [0.0, 0.0, 0.0])]
    return {"people": [{"pose_keypoints_2d": flat(p.body.keypoints), "face_keypoints_2d": flat(p.face),
                        "hand_left_keypoints_2d": flat(p.left_hand),
                        "hand_right_keypoints_2d": flat(p.right_hand)} for p in poses],
            "canvas_height": height, "canvas_width": width}
