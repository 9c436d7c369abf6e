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


class _TorchBody:
    """The oracle's own torch body network as an rtpose ``Network``: rtpose's steps after the
    network, given the very same maps."""

    stride = 8

    def __init__(self, model):
        self.model = model

    def __call__(self, batch):
        tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) / 256 - 0.5)
        with torch.no_grad():
            paf, heat = self.model(tensor)
        return heat.numpy().transpose(0, 2, 3, 1), paf.numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def ours_on_torch(oracle):
    return controlnet.OpenposeDetector(_TorchBody(oracle.body_estimation.model))


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
def test_body_keypoints_and_drawing(shared_data, oracle, ours, ours_on_torch, open_pose, name):
    """The same people from the same maps; on ski.jpg also from rtpose's own network (Keras).
    Random maps hold many values near the thresholds, where the network's rounding (maps equal
    to 1e-5) can add or drop a limb: the other images take the oracle's network."""
    image = _image(shared_data, name)
    theirs = oracle.detect_poses(image)
    assert theirs, "the random weights find no one: the test would prove nothing"
    _same_poses(ours_on_torch.detect_poses(image), theirs)
    if name == "ski":
        _same_poses(ours.detect_poses(image), theirs)
    height, width = image.shape[:2]
    expected = open_pose.draw_poses(theirs, height, width, True, False, False)
    assert np.array_equal(controlnet.draw_poses(theirs, height, width, True, False, False),
                          expected)
    assert np.array_equal(ours_on_torch(image, RESOLUTION, RESOLUTION, output_type="np"),
                          oracle(image, RESOLUTION, RESOLUTION, output_type="np"))


def test_face_keypoints_drawing_and_json(shared_data, oracle, ours, open_pose):
    image = _image(shared_data, "000000000802.jpg")  # four faces: the oracle's face net is slow
    theirs = oracle.detect_poses(image, include_face=True)
    mine = ours.detect_poses(image, include_face=True)
    assert any(p.face for p in theirs)
    _same_poses(mine, theirs)
    height, width = image.shape[:2]
    for body in (True, False):  # openpose_face, openpose_faceonly
        assert np.array_equal(controlnet.draw_poses(mine, height, width, body, False, True),
                              open_pose.draw_poses(theirs, height, width, body, False, True))
    data = controlnet.encode_poses_as_dict(mine, height, width)
    assert data == _webui_json(theirs, height, width)
    assert np.array_equal(controlnet.draw_pose_dict(data),
                          open_pose.draw_poses(theirs, height, width))


def test_hand_keypoints_on_a_crop(shared_data, oracle, ours):
    """The hand network and its peaks on a crop of a real image, batched with another crop
    (the oracle's hand network at four scales up to 736 px is slow: one crop is compared)."""
    from rtpose import wholebody

    image = cv2.imread(str(shared_data / "sample_images/ski.jpg"))
    boxes = np.array([[0, 0, 300, 150, 48], [0, 1, 420, 200, 33]])
    maps = wholebody.hand_maps(image, boxes, ours.hand_estimation)
    _, _, x, y, side = boxes[0]
    theirs = oracle.hand_estimation(image[y:y + side, x:x + side])
    mine = wholebody.hand_peaks(maps[0], (side, side))
    assert (mine[:, 2] != 0).sum() > 10 and (theirs != 0).any()
    assert np.array_equal(mine[:, :2].astype(int), theirs)


def test_boxes_are_controlnet_auxs(open_pose):
    """Hand and face boxes of random bodies, parts missing at random, against
    controlnet_aux's handDetect and faceDetect."""
    from rtpose import wholebody

    rng = np.random.default_rng(3)
    height, width = 300, 400
    keypoints = np.zeros((200, 18, 3))
    keypoints[..., 0] = rng.integers(0, width, (200, 18))
    keypoints[..., 1] = rng.integers(0, height, (200, 18))
    keypoints[..., 2] = rng.uniform(0.2, 1, (200, 18)) * (rng.uniform(size=(200, 18)) < 0.8)
    image = np.zeros((height, width, 3), np.uint8)
    hands, faces = wholebody.hand_boxes(keypoints, (height, width)), \
        wholebody.face_boxes(keypoints, (height, width))
    for person, kp in enumerate(keypoints):
        body = open_pose.BodyResult([open_pose.Keypoint(x, y) if c > 0 else None for x, y, c in kp],
                                    0.0, 0)
        expected = [(x, y, w, left) for x, y, w, left in open_pose.util.handDetect(body, image)]
        mine = [(x, y, w, side == 0) for p, side, x, y, w in hands.tolist() if p == person]
        assert mine == expected
        face = open_pose.util.faceDetect(body, image)
        mine_face = [tuple(b) for p, *b in faces.tolist() if p == person]
        assert mine_face == ([face] if face is not None else [])


def test_hand_drawing_and_json(open_pose):
    """Every processor's drawing of poses with hands (float32, some at -1 as controlnet_aux
    leaves parts it did not find), and the pose JSON written and read back."""
    rng = np.random.default_rng(4)
    height, width = 256, 320

    def hand():
        xy = rng.uniform(0, 1, (21, 2)).astype(np.float32)
        xy[rng.uniform(size=21) < 0.2] = np.float32(-1) / np.float32(width)
        return [controlnet.Keypoint(x, y) for x, y in xy]

    poses = [controlnet.PoseResult(
        controlnet.BodyResult([controlnet.Keypoint(*rng.uniform(0, 1, 2)) if rng.uniform() < 0.8
                               else None for _ in range(18)], 10.0, 12),
        hand(), hand() if i else None, hand()[:15]) for i in range(3)]
    for processor, flags in controlnet.PROCESSORS.items():
        body, with_hand, face = (flags[f"include_{k}"] for k in ("body", "hand", "face"))
        expected = open_pose.draw_poses(poses, height, width, body, with_hand, face)
        drawn = controlnet.draw_poses(poses, height, width, body, with_hand, face)
        assert np.array_equal(drawn, expected), processor
        assert expected.any()
    data = controlnet.encode_poses_as_dict(poses, height, width)
    assert data == _webui_json(poses, height, width)
    assert np.array_equal(controlnet.draw_pose_dict(data),
                          open_pose.draw_poses(poses, height, width))


def _webui_json(poses, height, width):
    """sd-webui-controlnet's pose JSON of controlnet_aux's poses, as the web UI writes it."""
    def flat(keypoints):
        if not keypoints:
            return None
        return [v for k in keypoints
                for v in ([float(k.x), float(k.y), 1.0] if k is not None else [0.0, 0.0, 0.0])]
    return {"people": [{"pose_keypoints_2d": flat(p.body.keypoints),
                        "face_keypoints_2d": flat(p.face),
                        "hand_left_keypoints_2d": flat(p.left_hand),
                        "hand_right_keypoints_2d": flat(p.right_hand)} for p in poses],
            "canvas_height": height, "canvas_width": width}


@pytest.mark.parametrize("runtime", ["keras", "openvino"])
def test_maps_equal_the_torch_networks(pth, oracle, runtime, tmp_path):
    """Body, hand and face maps of the converted weights equal torch's to 1e-4."""
    from rtpose.models import load_model
    from rtpose.runtime import make_network
    from rtpose.runtime.part_runtime import part_network

    if runtime == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra: pip install -e .[openvino]")
    weights = {name: controlnet._converted(pth / file, name, pth / "converted")
               for name, file in controlnet.PTH_FILES.items()}
    rng = np.random.default_rng(5)
    batch = rng.uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) / 256 - 0.5)
    model, arch = load_model("cmu", weights["body"])
    heat, paf = make_network(model, arch, runtime, weights["body"])(batch)
    with torch.no_grad():
        torch_paf, torch_heat = oracle.body_estimation.model(tensor)
        torch_hand = oracle.hand_estimation.model(tensor)
        torch_face = oracle.face_estimation.model(tensor)[-1]
    # controlnet_aux's body model ends its heatmaps with a ReLU (rtpose.controlnet.body_maps)
    for mine, theirs in ((np.maximum(heat, 0), torch_heat), (paf, torch_paf),
                         (part_network("hand", weights["hand"], runtime)(batch), torch_hand),
                         (part_network("face", weights["face"], runtime)(batch), torch_face)):
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        assert mine.shape == theirs.shape
        assert np.abs(theirs).max() > 0.1  # maps of some size: the comparison means something
        np.testing.assert_allclose(mine, theirs, atol=1e-4)
