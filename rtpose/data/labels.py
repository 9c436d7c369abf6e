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
* Overlapping limbs of several people: the original meant to average them, but its counter never
  grows, so the person written last (the main person first, then the others in order) wins; the
  wire samples only hold unit vectors. ``paf_average=True`` averages instead.

Arithmetic follows the original's float32 points and float64 maps, so the labels of a wire sample
are reproduced to the last bits. Maps are channel-last, the package's convention:
heatmaps ``(h, w, 19)``, PAFs ``(h, w, 38)``.
"""

from __future__ import annotations

import numpy as np

from rtpose.skeleton import LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS

_EXPONENT_LIMIT = 4.6052  # ln(100): Gaussians stop at 1 % of their peak


def _round_half_away(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def encode_heatmaps(
    joints: np.ndarray, grid_hw: tuple[int, int], stride: int = 8, sigma: float = 7.0
) -> np.ndarray:
    """Heatmaps (h, w, 19) float64 of joints (P, 18, 3): x, y in crop pixels, 1 where labelled."""
    h, w = grid_hw
    joints = np.asarray(joints, np.float32).reshape(-1, NUM_PARTS, 3)
    start = np.float32(stride / 2.0 - 0.5)
    gx = start + np.arange(w, dtype=np.float32) * np.float32(stride)
    gy = start + np.arange(h, dtype=np.float32) * np.float32(stride)
    dx = gx[None, None, :] - joints[..., 0, None]  # (P, 18, w)
    dy = gy[None, None, :] - joints[..., 1, None]  # (P, 18, h)
    d2 = (dx * dx)[:, :, None, :] + (dy * dy)[:, :, :, None]  # (P, 18, h, w) float32
    exponent = d2.astype(np.float64) / 2.0 / sigma / sigma
    gauss = np.where(exponent > _EXPONENT_LIMIT, 0.0, np.exp(-exponent))
    gauss *= joints[..., 2, None, None] > 0
    heat = np.zeros((NUM_HEATMAPS, h, w))
    heat[:NUM_PARTS] = np.minimum(gauss.sum(0), 1.0)
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
    gx = np.arange(w, dtype=np.float32)
    gy = np.arange(h, dtype=np.float32)
    pafs = np.zeros((NUM_PAFS, h, w))
    for i, (a, b) in enumerate(LIMBS):
        both = (joints[:, a, 2] > 0) & (joints[:, b, 2] > 0)
        ends_a = joints[both, a, :2] * np.float32(1.0 / stride)  # (P, 2) grid units
        ends_b = joints[both, b, :2] * np.float32(1.0 / stride)
        vec = ends_b - ends_a
        norm = np.sqrt(vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1])
        keep = norm >= 1e-8
        ends_a, ends_b, vec, norm = ends_a[keep], ends_b[keep], vec[keep], norm[keep]
        if len(vec) == 0:
            continue
        unit = vec / norm[:, None]
        lo = np.maximum(_round_half_away(np.minimum(ends_a, ends_b) - np.float32(thre)), 0)
        hi = np.minimum(_round_half_away(np.maximum(ends_a, ends_b) + np.float32(thre)), [w, h])
        in_x = (gx >= lo[:, 0, None]) & (gx < hi[:, 0, None])  # (P, w)
        in_y = (gy >= lo[:, 1, None]) & (gy < hi[:, 1, None])  # (P, h)
        ba_x = gx[None, None, :] - ends_a[:, 0, None, None]
        ba_y = gy[None, :, None] - ends_a[:, 1, None, None]
        dist = np.abs(ba_x * unit[:, 1, None, None] - ba_y * unit[:, 0, None, None])
        on = (dist <= thre) & in_y[:, :, None] & in_x[:, None, :]  # (P, h, w)
        hit = on.any(0)
        if average:
            count = np.maximum(on.sum(0), 1)
            field = np.einsum("phw,pc->chw", on.astype(np.float64), unit.astype(np.float64))
            field /= count
        else:
            last = len(on) - 1 - np.argmax(on[::-1], axis=0)  # the person written last wins
            field = unit.astype(np.float64)[last].transpose(2, 0, 1)
        pafs[2 * i:2 * i + 2] = np.where(hit, field, 0.0)
    return pafs.transpose(1, 2, 0)


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
