"""Augmentation geometry and the whole transformer, down to the original C++ server's samples."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtpose.coco.metadata import Sample, SampleMeta
from rtpose.data.augment import (
    Augmentation,
    AugmentParams,
    augment,
    cmu_joints,
    draw_augmentation,
)
from rtpose.data.transformer import sample_joints, transform, transform_with
from rtpose.data.wire import decode_message
from rtpose.skeleton import COCO_KEYPOINTS, FLIP_PERMUTATION, LIMBS, NECK, PARTS

CROP, STRIDE = 368, 8


def coco_index(name: str) -> int:
    return COCO_KEYPOINTS.index(name)


def make_sample(
    image: np.ndarray,
    joints: dict[str, tuple[float, float, int]],
    objpos: tuple[float, float],
    scale_provided: float = 0.6,  # target_dist: scale 1 at multiplier 1
    mask_miss: np.ndarray | None = None,
    others: list[dict[str, tuple[float, float, int]]] = (),
) -> Sample:
    """A sample with COCO joints given by name as (x, y, visibility code); the rest unlabelled."""

    def coco(named):
        out = np.zeros((17, 3), np.float32)
        out[:, 2] = 2
        for name, value in named.items():
            out[coco_index(name)] = value
        return out

    h, w = image.shape[:2]
    meta = SampleMeta(
        dataset="COCO", img_height=h, img_width=w, is_validation=False,
        num_other_people=len(others), people_index=0, annolist_index=0, write_count=0,
        total_write_count=1, objpos=np.array(objpos), scale_provided=scale_provided,
        joints=coco(joints), objpos_other=np.zeros((len(others), 2)),
        scale_provided_other=np.full(len(others), 0.5),
        joints_other=np.array([coco(o) for o in others]).reshape(-1, 17, 3),
    )
    if mask_miss is None:
        mask_miss = np.full((h, w), 255, np.uint8)
    return Sample(image, mask_miss, np.zeros((h, w), np.uint8), meta)


def noise_image(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def cell_centre(g: int) -> float:
    return STRIDE / 2 - 0.5 + STRIDE * g


def test_cmu_joints_neck_and_visibility_rules():
    coco = np.zeros((3, 17, 3), np.float32)
    coco[..., 2] = 2  # unlabelled
    ls, rs, nose = coco_index("left_shoulder"), coco_index("right_shoulder"), coco_index("nose")
    coco[0, ls], coco[0, rs] = (10, 20, 1), (30, 40, 0)  # visible + occluded: neck labelled
    coco[0, nose] = (5, 5, 0)
    coco[1, ls], coco[1, rs] = (10, 20, 1), (0, 0, 2)  # one shoulder unlabelled
    coco[2, ls], coco[2, rs] = (10, 20, 1), (120, 40, 1)  # one shoulder outside the image
    joints = cmu_joints(coco, (100, 100))
    assert joints.shape == (3, 18, 3)
    np.testing.assert_array_equal(joints[0, NECK], [20, 30, 1])
    np.testing.assert_array_equal(joints[0, PARTS.index("nose")], [5, 5, 1])  # occluded counts
    assert joints[1, NECK, 2] == 0 and joints[2, NECK, 2] == 0
    assert joints[2, PARTS.index("left_shoulder"), 2] == 1
    assert joints[2, PARTS.index("right_shoulder"), 2] == 0  # x 120 >= width 100
    assert joints[:, PARTS.index("left_ankle"), 2].sum() == 0


def test_fixed_augmentation_keeps_pixels_and_puts_heatmap_peaks_on_joints():
    image = cv2.GaussianBlur(noise_image(), (0, 0), 4)
    objpos = (200.0, 150.0)
    origin = np.array([200 - CROP // 2, 150 - CROP // 2])  # crop's top-left on the image
    # even unrotated, the original's rotation canvas is one pixel wider and taller than the
    # picture (cv::RotatedRect::boundingRect keeps both end pixels): everything moves +0.5 px
    cells = {"nose": (20, 20), "left_shoulder": (24, 26), "right_shoulder": (16, 26)}
    named = {
        n: (*(np.array([cell_centre(g) for g in c]) + origin - 0.5), 1) for n, c in cells.items()
    }
    mask = np.full(image.shape[:2], 255, np.uint8)
    mask[:60, :] = 0  # a missing person across the top
    sample = make_sample(image, named, objpos, mask_miss=mask)
    img, grid_mask, label = transform_with(sample, Augmentation())
    assert img.shape == (3, CROP, CROP) and img.dtype == np.uint8
    assert grid_mask.shape == (46, 46) and label.shape == (57, 46, 46)
    # no scale, rotation or flip: the crop is the image window (half a pixel on), 128 outside
    x0, y0 = origin
    window = img.transpose(1, 2, 0).astype(int)
    inner = window[-y0 + 2:-y0 + 298, 2:-2] - image[2:-2, x0 + 2:x0 + CROP - 2]
    assert np.abs(inner).mean() < 1.0
    assert np.all(window[:-y0 - 1] == 128) and np.all(window[-y0 + 301:] == 128)
    heat = label[38:]
    for name, (gx, gy) in cells.items():
        channel = heat[PARTS.index(name)]
        assert np.unravel_index(channel.argmax(), channel.shape) == (gy, gx)
        assert channel[gy, gx] == pytest.approx(1.0)
    neck = heat[NECK]
    assert np.unravel_index(neck.argmax(), neck.shape) == (26, 20)  # mid-shoulder
    # the mask: 0 on the missing person (image rows 0-59 = crop rows 34-93 = grid rows 5-10),
    # 1 on the rest of the picture and on the padding; the labels are zero where it is 0
    assert np.all(grid_mask[5:11] == 0)
    assert np.all(grid_mask[:3] == 1) and np.all(grid_mask[13:] == 1)
    assert np.all(label[:, grid_mask == 0] == 0)
    keep = grid_mask == 1
    np.testing.assert_allclose(label[56, keep], np.maximum(1 - heat[:18].max(0), 0)[keep])
    assert label[56, keep].min() < 0.1  # the background dips at the joints


def test_flip_mirrors_the_image_and_swaps_left_and_right():
    image = noise_image(seed=1)
    named = {
        "left_shoulder": (230, 120, 1), "left_elbow": (250, 170, 1),
        "right_shoulder": (170, 125, 1), "right_elbow": (150, 175, 0), "nose": (200, 90, 1),
    }
    sample = make_sample(image, named, (200.0, 150.0))
    base = transform_with(sample, Augmentation(offset=(5, -3)))
    flipped = transform_with(sample, Augmentation(offset=(5, -3), flip=True))
    np.testing.assert_array_equal(flipped[0], base[0][:, :, ::-1])
    heat, heat_flipped = base[2][38:56], flipped[2][38:56]
    for part in range(18):
        np.testing.assert_allclose(
            heat_flipped[FLIP_PERMUTATION[part]], heat[part][:, ::-1], atol=1e-6
        )
    assert heat[PARTS.index("left_elbow")].max() > 0.9
    # PAFs: the mirrored limb points the mirrored way (x negated) on average
    paf, paf_flipped = base[2][:38], flipped[2][:38]
    for i, (a, b) in enumerate(LIMBS):
        j = LIMBS.index((FLIP_PERMUTATION[a], FLIP_PERMUTATION[b]))
        on, on_flipped = paf[2 * i] != 0, paf_flipped[2 * j] != 0
        assert on.sum() == pytest.approx(on_flipped.sum(), rel=0.3)
        if on.any():
            np.testing.assert_allclose(paf_flipped[2 * j][on_flipped].mean(),
                                       -paf[2 * i][on].mean(), atol=1e-6)
            np.testing.assert_allclose(paf_flipped[2 * j + 1][on_flipped].mean(),
                                       paf[2 * i + 1][on].mean(), atol=1e-6)


def dot_image(points: np.ndarray, h: int = 320, w: int = 420) -> np.ndarray:
    """Grey image with a bright Gaussian dot (sigma 3 px) at each (x, y)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 40.0)
    for x, y in points:
        img += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0**2))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def dot_centre(img: np.ndarray, x: float, y: float, r: int = 16) -> np.ndarray:
    """Intensity-weighted centre of the dot near (x, y)."""
    x0, y0 = int(round(x)) - r, int(round(y)) - r
    patch = img[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1, 0].astype(float) - 40
    patch = np.clip(patch, 0, None)
    yy, xx = np.mgrid[0:2 * r + 1, 0:2 * r + 1]
    return np.array([(patch * xx).sum() / patch.sum() + x0, (patch * yy).sum() / patch.sum() + y0])


@pytest.mark.parametrize("method", ["steps", "affine"])
@pytest.mark.parametrize("flip", [False, True])
def test_scale_rotation_crop_move_pixels_with_the_joints(method, flip):
    points = np.array([[150.0, 100.0], [260.0, 130.0], [210.0, 230.0]])  # nose, neck, r. shoulder
    joints = np.zeros((1, 18, 3), np.float32)
    joints[0, :3, :2], joints[0, :3, 2] = points, 1
    params = AugmentParams(method=method)
    aug = Augmentation(scale_multiplier=1.5, degree=25.0, offset=(7, -5), flip=flip)
    out = augment(dot_image(points), np.full((320, 420), 255, np.uint8), joints,
                  np.array([210.0, 160.0]), 0.6, aug, params)
    scale = 1.5
    for k in range(3):
        part = FLIP_PERMUTATION[k] if flip else k  # a flip swaps left and right parts
        assert out.joints[0, part, 2] == 1
        found = dot_centre(out.image, *out.joints[0, part, :2])
        # the original scales joints by x * s while OpenCV resizes pixel centres,
        # (x + 0.5) * s - 0.5: joints sit (s - 1) / 2 pixels up-left of the picture
        # (turned by the rotation, mirrored by the flip)
        rot = np.deg2rad(25.0)
        turn = np.array([[np.cos(rot), np.sin(rot)], [-np.sin(rot), np.cos(rot)]])
        shift = turn @ np.full(2, (scale - 1) / 2) * [-1.0 if flip else 1.0, 1.0]
        np.testing.assert_allclose(found, out.joints[0, part, :2] + shift, atol=0.1)
    assert out.image.shape == (CROP, CROP, 3) and out.mask_miss.shape == (CROP, CROP)


def test_outside_the_picture_is_grey_and_kept():
    image = noise_image(120, 160, seed=2)
    mask = np.zeros((120, 160), np.uint8)  # everything masked on the picture
    sample = make_sample(image, {"nose": (80, 60, 1)}, (80.0, 60.0), mask_miss=mask)
    img, grid_mask, label = transform_with(sample, Augmentation(degree=30.0))
    corner = img[:, :40, :40]
    assert np.all(corner == 128)
    assert grid_mask[0, 0] == 1 and grid_mask[23, 23] == 0
    assert label[56, 0, 0] == 1  # padding is trained as background


def test_draw_augmentation_ranges_and_seed():
    params = AugmentParams()
    draws = [draw_augmentation(np.random.default_rng(s), params) for s in range(300)]
    mult = np.array([d.scale_multiplier for d in draws])
    deg = np.array([d.degree for d in draws])
    offsets = np.array([d.offset for d in draws])
    assert 0.5 <= mult.min() and mult.max() <= 1.1 and mult.std() > 0.1
    assert -40 <= deg.min() and deg.max() <= 40 and deg.std() > 15
    assert np.abs(offsets).max() <= 40 and offsets.dtype.kind == "i"
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65
    fixed = AugmentParams(scale_prob=0, max_rotate_degree=0, center_perterb_max=0, flip_prob=0)
    assert draw_augmentation(np.random.default_rng(0), fixed) == Augmentation()
    sample = make_sample(noise_image(), {"nose": (200, 150, 1)}, (200.0, 150.0))
    a = transform(sample, np.random.default_rng(7), params)
    b = transform(sample, np.random.default_rng(7), params)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_affine_and_steps_share_geometry():
    image = cv2.GaussianBlur(noise_image(seed=3), (0, 0), 6)
    named = {"nose": (200, 150, 1), "left_wrist": (260, 200, 1)}
    sample = make_sample(image, named, (200.0, 150.0), scale_provided=0.5)
    aug = Augmentation(scale_multiplier=0.9, degree=-12.0, offset=(3, 9), flip=True)
    steps = transform_with(sample, aug, AugmentParams(method="steps"))
    affine = transform_with(sample, aug, AugmentParams(method="affine"))
    np.testing.assert_array_equal(steps[2], affine[2])  # same joints, so the same labels
    inner = np.s_[:, 60:300, 60:300]
    assert np.abs(steps[0][inner].astype(int) - affine[0][inner]).mean() < 1.0


# --- the original C++ server's samples -----------------------------------------------------------

# The three samples of rmpe_wire_first3.npz come from coco_mini val2017 images (main person =
# the first person the HDF5 writer takes). Their random augmentation was recovered by fitting the
# heatmap peaks to the COCO keypoints (similarity transform; the crop offset came out an exact
# integer) and refining scale and angle on the heatmaps; no flip was drawn.
CPP_SAMPLES = [  # image id, scale multiplier, degree, crop offset
    (34417, 1.08565797, -1.38991342, (9, 9)),
    (136334, 0.81943393, 10.2809087, (-39, 2)),
    (350679, 0.55682588, -2.64701364, (-30, 39)),
]


def test_transformer_reproduces_the_cpp_server_samples(shared_data):
    from pycocotools.coco import COCO

    from rtpose.coco.masks import image_masks
    from rtpose.coco.selection import image_records

    coco_dir = shared_data / "coco_mini"
    coco = COCO(str(coco_dir / "annotations" / "person_keypoints_val2017.json"))
    records = {r.image_id: r for r in image_records(coco, coco_dir / "val2017", coco_dir)}
    keys = ("raw_frame0_header", "raw_frame1_image", "raw_frame2_mask", "raw_frame3_label")
    with np.load(shared_data / "original_formats" / "rmpe_wire_first3.npz") as npz:
        frames = [npz[k] for k in keys]
    for i, (image_id, multiplier, degree, offset) in enumerate(CPP_SAMPLES):
        want_image, want_mask, want_label = decode_message([f[i].tobytes() for f in frames])
        record = records[image_id]
        mask_miss, mask_all = image_masks(coco, image_id)
        sample = Sample(cv2.imread(str(record.image_path)), mask_miss, mask_all,
                        record.meta("COCO", True, 0, 1))
        assert len(sample_joints(sample)) == 1 + sample.meta.num_other_people
        image, mask, label = transform_with(sample, Augmentation(multiplier, degree, offset))
        # pixels: the same up to OpenCV-version rounding of the bicubic resampling
        diff = np.abs(image.astype(int) - want_image)
        assert diff.max() <= 2 and np.mean(diff == 0) > 0.9
        # mask: at most a few cells one level (1/255) apart
        assert np.abs(mask - want_mask).max() <= 1 / 255 + 1e-7
        assert np.sum(mask != want_mask) <= 3
        same = mask == want_mask
        # labels: PAFs bit for bit (last person wins, no averaging), heatmaps to float precision
        np.testing.assert_array_equal(label[:38], want_label[:38])
        np.testing.assert_allclose(label[38:, same], want_label[38:, same], atol=1e-6)
