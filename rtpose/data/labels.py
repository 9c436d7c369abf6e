"""Training labels: part heatmaps and part affinity fields on the stride grid.

The conventions are the original C++ server's (``rmpe_dataset_server``), checked against the
samples it sent (``original_formats/rmpe_wire_first3.npz``, see ``tests/test_labels.py``):

* Grid cell ``(gx, gy)`` of a heatmap stands for the crop pixel ``start + g * stride`` with
  ``start = stride / 2 - 0.5`` (3.5 at stride 8): the centre of the cell's stride x stride block.
* Heatmap of part ``k``: for each person whose part ``k`` is labelled at ``(x, y)`` (crop pixels),
  ``exp(-d^2 / (2 sigma^2))`` where the exponent is <= 4.6052 (ln 100; else 0), **summed** over
  people and clipped to 1 (the original adds, it does not take the maximum).
* Background (heatmap channel 18) = ``max(1 - max over the 18 parts, 0)``.
* PAF of limb ``i`` (``skeleton.LIMBS[i]``; channels ``2i`` = x, ``2i + 1`` = y): with both ends
  labelled, the limb's ends in grid units are ``joint / stride`` (no half-cell offset, unlike the
  heatmaps); the unit vector from part a to part b is set on every cell ``g`` of the limb's
  bounding box widened by ``thre`` (``round(min - thre) <= g < round(max + thre)``, clipped to
  the grid) whose distance to the limb's line is <= ``thre``. Ends closer than 1e-8 set nothing.
  The box excludes its upper edges, so a horizontal limb on a cell row is 2 cells thick, not 3.
* Overlapping limbs of several people: the original meant to average them, but its counter never
  grows, so the person written last (the main person first, then the others in order) wins; the
  wire samples only hold unit vectors. ``paf_average=True`` averages instead.

Arithmetic follows the original's float32 points and float64 maps: the wire samples' PAFs are
reproduced bit for bit and their heatmaps to 6e-8 (``tests/test_augment.py``). Maps are
channel-last, the package's convention: heatmaps ``(h, w, 19)``, PAFs ``(h, w, 38)``.
"""

from __future__ import annotations

import numpy as np

from rtpose.skeleton import LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS

_EXPONENT_LIMIT = 4.6052  # ln(100): Gaussians stop at 1 % of their peak
_LIMB_A = [a for a, _ in LIMBS]
_LIMB_B = [b for _, b in LIMBS]


def _round_half_away(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def encode_heatmaps(
    joints: np.ndarray, grid_hw: tuple[int, int], stride: int = 8, sigma: float = 7.0
) -> np.ndarray:
    """Heatmaps (h, w, 19) float64 of joints (P, 18, 3): x, y in crop pixels, 1 where labelled."""
    h, w = grid_hw
    joints = np.asarray(joints, np.float32).reshape(-1, NUM_PARTS, 3)
    person, part = np.nonzero(joints[..., 2] > 0)  # person-major: the original's summing order
    xy = joints[person, part, :2]
    # each Gaussian reaches sqrt(2 * 4.6052) sigma: a window of `span` cells around it suffices
    start = np.float32(stride / 2.0 - 0.5)
    reach = np.sqrt(2.0 * _EXPONENT_LIMIT) * sigma
    span = int(np.ceil(2.0 * reach / stride)) + 1
    first = np.floor((xy.astype(np.float64) - reach - start) / stride).astype(np.int64)
    cells = first[:, None, :] + np.arange(span)[None, :, None]  # (N, span, 2) grid x, y
    centres = start + (cells * stride).astype(np.float32)
    d = centres - xy[:, None, :]
    d2 = (d * d)[:, :, 1, None] + (d * d)[:, None, :, 0]  # (N, span y, span x) float32
    exponent = d2.astype(np.float64) / 2.0 / sigma / sigma
    inside = (cells >= 0) & (cells < np.array([w, h]))
    keep = (exponent <= _EXPONENT_LIMIT) & inside[:, :, 1, None] & inside[:, None, :, 0]
    index = (part[:, None, None] * h + cells[:, :, 1, None]) * w + cells[:, None, :, 0]
    total = np.bincount(index[keep], np.exp(-exponent[keep]), minlength=NUM_PARTS * h * w)
    heat = np.empty((NUM_HEATMAPS, h, w))
    heat[:NUM_PARTS] = np.minimum(total.reshape(NUM_PARTS, h, w), 1.0)
    peak = heat[:NUM_PARTS].max(0).astype(np.float32)  # the original keeps the maximum in float
    heat[NUM_PARTS] = np.maximum(1.0 - peak.astype(np.float64), 0.0)
    return heat.transpose(1, 2, 0)


def encode_pafs(
    joints: np.ndarray, grid_hw: tuple[int, int], stride: int = 8, thre: int = 1,
    average: bool = False,
) -> np.ndarray:
    """PAFs (h, w, 38) float64 of joints (P, 18, 3): x, y in crop pixels, 1 where labelled."""
    h, w = grid_hw
    joints = np.asarray(joints, np.float32).reshape(-1, NUM_PARTS, 3)
    # every (person, limb) with both ends labelled, person-major; its ends in grid units
    ends_a = joints[:, _LIMB_A, :2] * np.float32(1.0 / stride)
    ends_b = joints[:, _LIMB_B, :2] * np.float32(1.0 / stride)
    vec = ends_b - ends_a
    norm = np.sqrt(vec[..., 0] * vec[..., 0] + vec[..., 1] * vec[..., 1])
    valid = (joints[:, _LIMB_A, 2] > 0) & (joints[:, _LIMB_B, 2] > 0) & (norm >= 1e-8)
    person, limb = np.nonzero(valid)
    pafs = np.zeros((len(LIMBS), 2, h * w))
    if len(person) == 0:
        return pafs.reshape(NUM_PAFS, h, w).transpose(1, 2, 0)
    end_a, end_b = ends_a[person, limb], ends_b[person, limb]  # (M, 2)
    unit = vec[person, limb] / norm[person, limb, None]
    # the limb's box, widened by thre and clipped; cells are tested in a window of the largest box
    lo = np.maximum(_round_half_away(np.minimum(end_a, end_b) - np.float32(thre)), 0)
    hi = np.minimum(_round_half_away(np.maximum(end_a, end_b) + np.float32(thre)), [w, h])
    span_x, span_y = np.maximum((hi - lo).max(0), 0)
    cell_x = lo[:, 0, None] + np.arange(span_x)  # (M, span_x)
    cell_y = lo[:, 1, None] + np.arange(span_y)  # (M, span_y)
    ba_x = (cell_x.astype(np.float32) - end_a[:, 0, None])[:, None, :]
    ba_y = (cell_y.astype(np.float32) - end_a[:, 1, None])[:, :, None]
    dist = np.abs(ba_x * unit[:, 1, None, None] - ba_y * unit[:, 0, None, None])
    on = (dist <= thre) & (cell_y < hi[:, 1, None])[:, :, None] & (cell_x < hi[:, 0, None])[:, None]
    pair, iy, ix = np.nonzero(on)  # pairs ascending: person order within each limb
    cell = cell_y[pair, iy] * w + cell_x[pair, ix]
    slot = limb[pair] * (h * w) + cell
    value = unit[pair].astype(np.float64)
    flat = pafs.reshape(len(LIMBS), 2, h * w)
    if average:
        count = np.bincount(slot, minlength=len(LIMBS) * h * w).reshape(len(LIMBS), h * w)
        for c in range(2):
            total = np.bincount(slot, value[:, c], minlength=len(LIMBS) * h * w)
            flat[:, c] = total.reshape(len(LIMBS), h * w) / np.maximum(count, 1)
    else:
        # the person written last wins: keep each slot's last entry
        slots, first_reversed = np.unique(slot[::-1], return_index=True)
        winner = len(slot) - 1 - first_reversed
        flat[slots // (h * w), :, slots % (h * w)] = value[winner]
    return pafs.reshape(NUM_PAFS, h, w).transpose(1, 2, 0)


def encode_labels(
    joints: np.ndarray, grid_hw: tuple[int, int], stride: int = 8, sigma: float = 7.0,
    thre: int = 1, paf_average: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (h, w, 19) and PAFs (h, w, 38), float64, of joints (P, 18, 3) in crop pixels.

    Column 2 of ``joints`` is 1 where the joint is labelled; the order of people matters only
    where limbs overlap (the person last in order wins, as in the original).
    """
    return (
        encode_heatmaps(joints, grid_hw, stride, sigma),
        encode_pafs(joints, grid_hw, stride, thre, paf_average),
    )
