"""Heatmap peaks in the image frame: the original's local maxima of each part's smoothed heatmap.

``find_peaks`` works on full-size heatmaps (H, W, >=18) averaged over the scales (the faithful
decoder); ``rtpose.decode.lowres.find_peaks_lowres`` finds the same peaks from the network's
low-resolution outputs. Peaks are per part an (n, 3) float64 array of x, y (integer pixels, see
``rtpose.geometry``) and the unsmoothed averaged heatmap's value, in row-major order.
"""

from __future__ import annotations

import cv2
import numpy as np

from rtpose.config import CMU_GROUPING
from rtpose.skeleton import NUM_PARTS

PEAK_SIGMA = 3.0  # Gaussian smoothing of the heatmaps before peak finding, in pixels
SMOOTH_RADIUS = int(4 * PEAK_SIGMA + 0.5)  # its kernel radius (scipy's default truncate=4)
MAX_LABELS = (1 << 16) - 1  # connected groups that 16-bit labels can count


def find_peaks(heatmaps: np.ndarray, thre1: float = CMU_GROUPING.thre1) -> list[np.ndarray]:
    """Heatmap peaks of the 18 parts: ``peaks_and_patches``' peaks."""
    return peaks_and_patches(heatmaps, thre1)[0]


def peaks_and_patches(
    heatmaps: np.ndarray, thre1: float = CMU_GROUPING.thre1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Heatmap peaks of the 18 parts, and the smoothed map around each.

    ``heatmaps``: (H, W, >=18), image frame. A pixel is a peak of part p when its smoothed value
    (``gaussian_filter``, sigma 3) exceeds ``thre1`` and is >= its 4 neighbours (neighbours
    outside the image count as 0). Returns per part an (n, 3) float64 array of x, y and the
    unsmoothed heatmap value, in row-major order (y, then x). Peak ids, as used by
    ``group_peaks``, count through the parts in order: part 0's peaks first. The patches: per
    part (n, 3, 3) float64, the smoothed map on each peak's 3 x 3 pixels (0 outside the image),
    for ``subpixel``.

    The smoothed map is a weighted mean over a window of radius r = ``SMOOTH_RADIUS``, so it
    can exceed ``thre1`` only within r of a pixel above ``thre1`` (less a margin for rounding).
    Only those regions are smoothed, each in a crop wide enough that the result there equals
    the whole image's bit for bit; the whole image is smoothed when that saves nothing.
    """
    parts = np.asarray(heatmaps[:, :, :NUM_PARTS], dtype=np.float64)
    height, width = parts.shape[:2]
    extent = max(float(parts.max(initial=0.0)), -float(parts.min(initial=0.0)))
    margin = 1e-9 * (1.0 + abs(thre1) + extent)  # far above the rounding of the weighted mean
    above = np.moveaxis(parts > thre1 - margin, 2, 0).astype(np.uint8)  # (18, H, W)

    peaks, patches = [], []
    for part in range(NUM_PARTS):
        heat = parts[:, :, part]
        found = [_peaks_in(heat, box, thre1) for box in _regions_above(above[part])]
        index = np.concatenate([np.zeros(0, np.intp), *(i for i, _ in found)])
        around = np.concatenate([np.zeros((0, 3, 3)), *(p for _, p in found)])
        index, first = np.unique(index, return_index=True)  # row-major order
        ys, xs = np.divmod(index, width)
        peaks.append(np.stack([xs, ys, heat[ys, xs]], axis=1).astype(np.float64))
        patches.append(around[first])
    return peaks, patches


def _regions_above(above: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) that hold every pixel within ``SMOOTH_RADIUS`` of a nonzero pixel
    of ``above`` (H, W): one per connected group, or the whole image when the crops that
    ``_peaks_in`` would filter add up to more than the image."""
    r = SMOOTH_RADIUS
    height, width = above.shape
    whole = [(0, height, 0, width)]
    if cv2.countNonZero(above) > MAX_LABELS:
        return whole
    _, _, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8, ltype=cv2.CV_16U)
    boxes = [
        (max(y - r, 0), min(y + h + r, height), max(x - r, 0), min(x + w + r, width))
        for x, y, w, h, _ in stats[1:]
    ]
    crop_area = sum((y1 - y0 + 2 * r + 2) * (x1 - x0 + 2 * r + 2) for y0, y1, x0, x1 in boxes)
    return boxes if crop_area < height * width else whole


def _peaks_in(heat: np.ndarray, box: tuple[int, int, int, int],
              thre1: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (y * W + x) of the peaks of ``heat`` (H, W) inside ``box`` (y0, y1, x0, x1),
    and the (n, 3, 3) smoothed values around them.

    The crop filtered reaches ``SMOOTH_RADIUS`` beyond the box and its 1-pixel ring of
    neighbours, so the smoothed values there are exact; beyond the image the neighbours are 0.
    """
    height, width = heat.shape
    y0, y1, x0, x1 = box
    reach = SMOOTH_RADIUS + 1
    cy0, cy1 = max(y0 - reach, 0), min(y1 + reach, height)
    cx0, cx1 = max(x0 - reach, 0), min(x1 + reach, width)
    from scipy.ndimage import gaussian_filter  # the faithful decoder only: a slow import

    smooth = np.pad(gaussian_filter(heat[cy0:cy1, cx0:cx1], sigma=PEAK_SIGMA), 1)
    # The box and its neighbours shifted by one pixel, in the padded crop's coordinates.
    top, left, h, w = y0 - cy0 + 1, x0 - cx0 + 1, y1 - y0, x1 - x0
    center = smooth[top : top + h, left : left + w]
    is_peak = (
        (center > thre1)
        & (center >= smooth[top - 1 : top - 1 + h, left : left + w])  # up
        & (center >= smooth[top + 1 : top + 1 + h, left : left + w])  # down
        & (center >= smooth[top : top + h, left - 1 : left - 1 + w])  # left
        & (center >= smooth[top : top + h, left + 1 : left + 1 + w])  # right
    )
    ys, xs = np.nonzero(is_peak)
    rows = ys + top + np.arange(-1, 2)[:, None, None]  # (3, 1, n)
    columns = xs + left + np.arange(-1, 2)[:, None]  # (3, n)
    return (ys + y0) * width + (xs + x0), smooth[rows, columns].transpose(2, 0, 1)


def gaussian_smooth(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """scipy's ``gaussian_filter1d(values, PEAK_SIGMA, axis, mode="reflect", truncate=4)``, bit
    for bit, in float64, without importing scipy (half a second): the same kernel, the input
    mirrored about its edges (repeatedly, if shorter than the kernel's radius), and the same
    operations in the same order as scipy's symmetric-kernel loop (centre term first, then the
    outermost pair of taps inwards)."""
    r = SMOOTH_RADIUS
    taps = np.arange(-r, r + 1)
    kernel = np.exp(-0.5 / (PEAK_SIGMA * PEAK_SIGMA) * taps**2)
    kernel = kernel / kernel.sum()
    lines = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    n = lines.shape[0]
    padded = np.pad(lines, [(r, r)] + [(0, 0)] * (lines.ndim - 1), mode="symmetric")
    smooth = padded[r : r + n] * kernel[r]
    for j in range(r, 0, -1):
        smooth += (padded[r - j : r - j + n] + padded[r + j : r + j + n]) * kernel[r - j]
    return np.moveaxis(smooth, 0, axis)


def subpixel(peaks: list[np.ndarray], patches: list[np.ndarray],
             image_hw: tuple[int, int]) -> list[np.ndarray]:
    """Per part (n, 2) sub-pixel x, y of the peaks (``rtpose.geometry``'s pixel convention):
    on each axis the vertex of the parabola through the smoothed map at the peak and its two
    neighbours (``patches``, from ``peaks_and_patches``), within half a pixel of the peak. A
    peak on the image's edge keeps its pixel along that axis."""
    height, width = image_hw
    refined = []
    for p, patch in zip(peaks, patches, strict=True):
        dx = _vertex(patch[:, 1, 0], patch[:, 1, 1], patch[:, 1, 2])
        dy = _vertex(patch[:, 0, 1], patch[:, 1, 1], patch[:, 2, 1])
        x, y = p[:, 0], p[:, 1]
        refined.append(np.stack([
            np.where((x > 0) & (x < width - 1), x + dx, x),
            np.where((y > 0) & (y < height - 1), y + dy, y)], axis=1))
    return refined


def _vertex(before: np.ndarray, center: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Offset of the vertex of the parabola through (-1, before), (0, center), (1, after): in
    -0.5 .. 0.5 when ``center`` is the largest; 0 where the parabola is not concave."""
    curvature = before - 2 * center + after
    concave = curvature < 0
    offset = 0.5 * (before - after) / np.where(concave, curvature, -1.0)
    return np.clip(np.where(concave, offset, 0.0), -0.5, 0.5)
