"""Heatmaps and PAFs on synthetic people, and the original server's label conventions."""

from __future__ import annotations

import numpy as np
import pytest

from rtpose.data.labels import encode_heatmaps, encode_labels, encode_pafs
from rtpose.data.wire import decode_message
from rtpose.skeleton import LIMBS, NUM_PARTS

GRID = (46, 46)
STRIDE, SIGMA = 8, 7.0


def cell_centre(g: float) -> float:
    """Crop pixel of heatmap cell ``g``."""
    return STRIDE / 2 - 0.5 + STRIDE * g


def people(*joint_dicts: dict[int, tuple[float, float]]) -> np.ndarray:
    """(P, 18, 3) joints with the given parts labelled at (x, y)."""
    joints = np.zeros((len(joint_dicts), NUM_PARTS, 3), np.float32)
    for p, parts in enumerate(joint_dicts):
        for part, xy in parts.items():
            joints[p, part] = (*xy, 1)
    return joints


def limb_index(a: int, b: int) -> int:
    return LIMBS.index((a, b))


def test_heatmap_peak_sits_on_the_joint_cell_with_sigma_7():
    heat = encode_heatmaps(people({0: (cell_centre(20), cell_centre(11))}), GRID)
    assert heat.shape == (46, 46, 19)
    assert np.unravel_index(heat[..., 0].argmax(), GRID) == (11, 20)
    assert heat[11, 20, 0] == 1.0
    # value exp(-d^2 / (2 sigma^2)) at the cell centres, d in crop pixels
    np.testing.assert_allclose(heat[11, 21, 0], np.exp(-64 / 98), rtol=1e-6)
    np.testing.assert_allclose(heat[12, 21, 0], np.exp(-128 / 98), rtol=1e-6)
    np.testing.assert_allclose(heat[13, 20, 0], np.exp(-256 / 98), rtol=1e-6)
    # cut where the exponent exceeds ln(100): 2 cells diagonally (5.2), 3 cells away (5.9)
    assert heat[13, 22, 0] == 0 and heat[11, 23, 0] == 0 and heat[11, 17, 0] == 0
    assert heat[..., 1:NUM_PARTS].max() == 0


def test_heatmap_between_cells_and_background():
    heat = encode_heatmaps(people({4: (100.0, 200.0)}, {4: (300.25, 50.5)}), GRID)
    for x, y in ((100.0, 200.0), (300.25, 50.5)):
        gy, gx = round((y - 3.5) / 8), round((x - 3.5) / 8)
        d2 = (cell_centre(gx) - x) ** 2 + (cell_centre(gy) - y) ** 2
        np.testing.assert_allclose(heat[gy, gx, 4], np.exp(-d2 / 98), rtol=1e-6)
    np.testing.assert_allclose(heat[..., 18], np.maximum(1 - heat[..., :18].max(-1), 0), atol=1e-7)
    assert heat[..., 18].min() < 0.2 and heat[0, 0, 18] == 1


def test_overlapping_people_add_up_and_clip_at_one():
    x, y = cell_centre(10), cell_centre(10)
    single = encode_heatmaps(people({3: (x, y)}), GRID)[..., 3]
    double = encode_heatmaps(people({3: (x, y)}, {3: (x + 8, y)}), GRID)[..., 3]
    # the original sums the Gaussians (it does not take the maximum), then clips at 1
    np.testing.assert_allclose(double[10, 9], single[10, 9] + single[10, 10 - 2], rtol=1e-6)
    assert double[10, 10] == 1 and double[10, 11] == 1
    assert double.max() == 1


def test_unlabelled_joints_draw_nothing():
    joints = people({0: (100, 100), 1: (150, 100)})
    joints[0, :, 2] = 0
    heat, paf = encode_labels(joints, GRID)
    assert heat[..., :18].max() == 0 and paf.max() == 0 and heat[..., 18].min() == 1


def test_paf_of_a_horizontal_limb_is_a_unit_vector_along_it():
    # neck -> right hip (limb 0) from grid (10, 20) to (30, 20), in crop pixels x 8
    paf = encode_pafs(people({1: (80.0, 160.0), 8: (240.0, 160.0)}), GRID)
    assert paf.shape == (46, 46, 38)
    px, py = paf[..., 0], paf[..., 1]
    on = px != 0
    # cells within 1 of the line, inside the box widened by 1, upper edges excluded as in the
    # original: x 9..30 and y 19..20 (so a horizontal limb is 2 cells thick, not 3)
    rows, cols = np.nonzero(on)
    assert set(rows) == {19, 20}
    assert cols.min() == 9 and cols.max() == 30
    np.testing.assert_array_equal(px[on], 1.0)
    assert np.all(py == 0)
    assert np.all(paf[..., 2:] == 0)


def test_paf_of_a_diagonal_limb_is_unit_length_and_thin():
    a, b = np.array([60.0, 60.0]), np.array([260.0, 210.0])  # direction (0.8, 0.6)
    paf = encode_pafs(people({2: tuple(a), 3: tuple(b)}), GRID)
    i = limb_index(2, 3)
    vx, vy = paf[..., 2 * i], paf[..., 2 * i + 1]
    on = (vx != 0) | (vy != 0)
    assert on.sum() > 40
    np.testing.assert_allclose(vx[on], 0.8, rtol=1e-6)
    np.testing.assert_allclose(vy[on], 0.6, rtol=1e-6)
    gy, gx = np.mgrid[0:46, 0:46]
    ga = a / 8
    dist = np.abs((gx - ga[0]) * 0.6 - (gy - ga[1]) * 0.8)
    assert dist[on].max() <= 1 + 1e-6
    # inside the box and closer than 1 means set (the grid has no half-cell offset for PAFs);
    # box: round(7.5 - 1) = 7 (half away from zero) .. round(32.5 + 1) = 34, y 7 .. 27
    inside_box = (gx >= 7) & (gx < 34) & (gy >= 7) & (gy < 27)
    np.testing.assert_array_equal(on, inside_box & (dist <= 1))


def test_overlapping_limbs_last_person_wins_or_average():
    first = {1: (80.0, 160.0), 8: (240.0, 160.0)}  # along +x
    second = {1: (160.0, 80.0), 8: (160.0, 240.0)}  # along +y, crossing the first at (20, 20)
    paf = encode_pafs(people(first, second), GRID)
    np.testing.assert_array_equal(paf[20, 20, :2], [0.0, 1.0])  # the later person overwrites
    np.testing.assert_array_equal(paf[20, 12, :2], [1.0, 0.0])
    averaged = encode_pafs(people(first, second), GRID, average=True)
    np.testing.assert_allclose(averaged[20, 20, :2], [0.5, 0.5])
    np.testing.assert_array_equal(averaged[20, 12, :2], [1.0, 0.0])


def test_coincident_or_far_away_limb_ends_draw_nothing():
    paf = encode_pafs(people({1: (100.0, 100.0), 8: (100.0, 100.0)}), GRID)
    assert paf.max() == 0
    paf = encode_pafs(people({1: (-400.0, -80.0), 8: (-100.0, -80.0)}), GRID)
    assert paf.max() == 0


def test_joints_outside_the_crop_still_draw_their_share():
    heat, paf = encode_labels(people({5: (-10.0, 100.0), 6: (60.0, 100.0)}), GRID)
    assert 0 < heat[12, 0, 5] < 0.5  # the Gaussian's tail reaches the grid
    i = limb_index(5, 6)
    assert paf[12, 0, 2 * i] == 1.0  # the limb starts outside and crosses into the crop


# --- the original C++ server's labels ------------------------------------------------------------


@pytest.fixture(scope="module")
def wire_samples(shared_data):
    keys = ("raw_frame0_header", "raw_frame1_image", "raw_frame2_mask", "raw_frame3_label")
    with np.load(shared_data / "original_formats" / "rmpe_wire_first3.npz") as npz:
        frames = [npz[k] for k in keys]
    return [decode_message([f[i].tobytes() for f in frames]) for i in range(len(frames[0]))]


def test_wire_background_is_one_minus_max_part_times_mask(wire_samples):
    for _, mask, label in wire_samples:
        parts, background = label[38:56], label[56]
        keep = mask > 0
        unmasked = np.where(keep, parts / np.where(keep, mask, 1), 0)
        want = np.maximum(1 - unmasked.max(0), 0) * mask
        np.testing.assert_allclose(background, want, atol=1e-7)
        ours = encode_heatmaps(np.zeros((0, 18, 3)), GRID)[..., 18] * mask
        np.testing.assert_array_equal(ours[parts.max(0) == 0], background[parts.max(0) == 0])


def test_wire_labels_are_masked(wire_samples):
    masked_somewhere = False
    for _, mask, label in wire_samples:
        assert np.all(label[:, mask == 0] == 0)
        masked_somewhere |= bool((mask == 0).any())
    assert masked_somewhere


def test_wire_pafs_are_unit_vectors_never_averaged(wire_samples):
    for _, mask, label in wire_samples:
        pafs = label[:38].reshape(19, 2, 46, 46)
        norm = np.hypot(pafs[:, 0], pafs[:, 1])
        full = mask[None] == 1
        np.testing.assert_allclose(norm[full & (norm > 0)], 1.0, rtol=1e-6)


def test_wire_heatmaps_are_sigma_7_gaussians_on_the_stride_grid(wire_samples):
    """Fit each unclipped peak: the log of a Gaussian sampled every 8 px has second difference
    -64 / sigma^2 along each axis; every value is at least 1 % of the peak."""
    fitted = []
    for _, mask, label in wire_samples:
        parts = label[38:56]
        assert parts[(parts > 0) & (mask[None] == 1)].min() >= np.exp(-4.6052) - 1e-9
        for channel in parts:
            y, x = np.unravel_index(channel.argmax(), channel.shape)
            if not 0.5 < channel[y, x] < 1 or not (1 <= y < 45 and 1 <= x < 45):
                continue
            window = channel[y - 1:y + 2, x - 1:x + 2]
            if np.any(window <= 0) or np.any(mask[y - 1:y + 2, x - 1:x + 2] != 1):
                continue
            log = np.log(window)
            for second in (log[1, 0] + log[1, 2] - 2 * log[1, 1],
                           log[0, 1] + log[2, 1] - 2 * log[1, 1]):
                fitted.append(np.sqrt(-64 / second))
    assert len(fitted) >= 40
    np.testing.assert_allclose(fitted, SIGMA, atol=1e-5)
