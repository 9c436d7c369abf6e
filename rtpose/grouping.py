"""Part Affinity Field grouping: heatmaps and PAFs in, people out (Cao et al. 2017, section 2.4).

Pure numpy, scipy and OpenCV: no I/O, no drawing, no Keras. The algorithm and its order of
operations are the original demo's, so it returns the original's people exactly:

1. ``find_peaks``: local maxima of each part's Gaussian-smoothed heatmap.
2. ``score_limb`` / ``connect_limb``: every pair of peaks of a limb's two parts is scored by the
   PAF sampled along the segment joining them; pairs are then matched greedily, best first.
3. ``group_peaks``: limbs are visited in ``skeleton.DECODE_ORDER`` and their connections merged
   into people, which are finally filtered by part count and mean score.

Maps are in the original image's frame: heatmaps (H, W, 19) (18 parts + background), PAFs
(H, W, 38) (limb i: channel 2i = x, 2i+1 = y). Peak coordinates are integer pixels (x, y).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.people import People
from rtpose.skeleton import DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS, PAF_CHANNELS

PEAK_SIGMA = 3.0  # Gaussian smoothing of the heatmaps before peak finding, in pixels
SMOOTH_RADIUS = int(4 * PEAK_SIGMA + 0.5)  # its kernel radius (scipy's default truncate=4)
MAX_LABELS = (1 << 16) - 1  # connected groups that 16-bit labels can count
MAX_SAMPLES_PER_BLOCK = 1 << 20  # PAF samples scored at once (bounds the memory of score_limb)


class PafSampler(Protocol):
    """PAF values computed on demand instead of read from a dense (H, W, 38) array:
    ``sampler(ys, xs, limb)`` returns limb ``limb``'s x and y components at the integer pixels
    (ys, xs) (arrays of one shape); ``height`` is the image height (e.g.
    ``rtpose.fast_decode.LowResPafs``)."""

    height: int

    def __call__(self, ys: np.ndarray, xs: np.ndarray,
                 limb: int) -> tuple[np.ndarray, np.ndarray]: ...


def find_peaks(heatmaps: np.ndarray, thre1: float = CMU_GROUPING.thre1) -> list[np.ndarray]:
    """Heatmap peaks of the 18 parts.

    ``heatmaps``: (H, W, >=18), image frame. A pixel is a peak of part p when its smoothed value
    (``gaussian_filter``, sigma 3) exceeds ``thre1`` and is >= its 4 neighbours (neighbours
    outside the image count as 0). Returns per part an (n, 3) float64 array of x, y and the
    unsmoothed heatmap value, in row-major order (y, then x). Peak ids, as used by
    ``group_peaks``, count through the parts in order: part 0's peaks first.

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

    peaks = []
    for part in range(NUM_PARTS):
        heat = parts[:, :, part]
        found = [_peaks_in(heat, box, thre1) for box in _regions_above(above[part])]
        index = np.unique(np.concatenate([np.zeros(0, np.intp), *found]))  # row-major order
        ys, xs = np.divmod(index, width)
        peaks.append(np.stack([xs, ys, heat[ys, xs]], axis=1).astype(np.float64))
    return peaks


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


def _peaks_in(heat: np.ndarray, box: tuple[int, int, int, int], thre1: float) -> np.ndarray:
    """Flat indices (y * W + x) of the peaks of ``heat`` (H, W) inside ``box`` (y0, y1, x0, x1).

    The crop filtered reaches ``SMOOTH_RADIUS`` beyond the box and its 1-pixel ring of
    neighbours, so the smoothed values there are exact; beyond the image the neighbours are 0.
    """
    height, width = heat.shape
    y0, y1, x0, x1 = box
    reach = SMOOTH_RADIUS + 1
    cy0, cy1 = max(y0 - reach, 0), min(y1 + reach, height)
    cx0, cx1 = max(x0 - reach, 0), min(x1 + reach, width)
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
    return (ys + y0) * width + (xs + x0)


def score_limb(
    peaks_a: np.ndarray,
    peaks_b: np.ndarray,
    pafs: np.ndarray | PafSampler,
    limb: int,
    params: GroupingParams = CMU_GROUPING,
) -> tuple[np.ndarray, np.ndarray]:
    """PAF scores of all (nA, nB) candidate connections of limb ``limb``, by broadcasting.

    ``peaks_a``, ``peaks_b``: (nA, 3), (nB, 3) peaks (x, y, score) of the limb's parts
    ``LIMBS[limb]``; ``pafs``: (H, W, 38), limb i: channel 2i = x, 2i+1 = y, or a
    ``PafSampler``.

    Returns ``score`` (nA, nB): the mean projection of the PAF on the unit vector A→B over
    ``mid_num`` samples, plus a penalty ``min(0.5 * H / length - 1, 0)`` on limbs longer than
    half the image height; and ``accepted`` (nA, nB) bool: more than 80 % of the samples
    exceed ``thre2``, the score is positive and the two peaks are distinct pixels.
    """
    # Segment vectors A_i -> B_j and their unit vectors: (nA, nB).
    ax, ay = peaks_a[:, 0, None], peaks_a[:, 1, None]
    bx, by = peaks_b[None, :, 0], peaks_b[None, :, 1]
    vx, vy = bx - ax, by - ay
    norm = np.sqrt(vx * vx + vy * vy)
    distinct = norm > 0
    safe_norm = np.where(distinct, norm, 1.0)
    ux, uy = vx / safe_norm, vy / safe_norm

    # mid_num sample points from A to B, computed like np.linspace (k * step + start, end point
    # exact) so that they round to the original's pixels: (nA, nB, mid_num).
    k = np.arange(params.mid_num, dtype=np.float64)
    xs = k * (vx / (params.mid_num - 1))[..., None] + ax[..., None]
    ys = k * (vy / (params.mid_num - 1))[..., None] + ay[..., None]
    xs[..., -1] = bx
    ys[..., -1] = by

    # Projection of the PAF on the limb direction at each sample: (nA, nB, mid_num). A dense
    # PAF array is read through its flat view, without copying the limb's channels.
    if callable(pafs):
        height = pafs.height
        paf_x, paf_y = pafs(np.rint(ys).astype(np.intp), np.rint(xs).astype(np.intp), limb)
        along = paf_x * ux[..., None] + paf_y * uy[..., None]
    else:
        height, width, channels = pafs.shape
        flat_pafs = np.ascontiguousarray(pafs).reshape(-1)
        index = (np.rint(ys) * width + np.rint(xs)).astype(np.intp) * channels
        channel_x, channel_y = PAF_CHANNELS[limb]
        along = (np.take(flat_pafs, index + channel_x) * ux[..., None]
                 + np.take(flat_pafs, index + channel_y) * uy[..., None])

    # Mean over the samples (cumsum adds in order, like the original's Python sum) plus the
    # length prior.
    with np.errstate(divide="ignore"):
        prior = np.minimum(0.5 * height / norm - 1, 0)
    score = np.cumsum(along, axis=-1)[..., -1] / params.mid_num + prior

    enough = np.count_nonzero(along > params.thre2, axis=-1) > 0.8 * params.mid_num
    accepted = distinct & enough & (score > 0)
    return score, accepted


def connect_limb(
    peaks_a: np.ndarray,
    peaks_b: np.ndarray,
    pafs: np.ndarray | PafSampler,
    limb: int,
    params: GroupingParams = CMU_GROUPING,
) -> np.ndarray:
    """Greedy matching of limb ``limb``'s candidates (arguments as ``score_limb``): (n, 3) rows
    of i (into A), j (into B), score.

    Accepted candidates are taken best score first (ties in (i, j) row-major order) when
    neither peak is used yet, until min(nA, nB) connections are made.
    """
    if len(peaks_a) == 0 or len(peaks_b) == 0:
        return np.zeros((0, 3))
    # Score blocks of A's peaks, so that noisy maps with thousands of peaks stay in memory.
    rows = max(1, MAX_SAMPLES_PER_BLOCK // (len(peaks_b) * params.mid_num))
    blocks = [
        score_limb(peaks_a[r : r + rows], peaks_b, pafs, limb, params)
        for r in range(0, len(peaks_a), rows)
    ]
    score = np.concatenate([block[0] for block in blocks])
    accepted = np.concatenate([block[1] for block in blocks])
    cand_i, cand_j = np.nonzero(accepted)
    cand_score = score[cand_i, cand_j]
    order = np.argsort(-cand_score, kind="stable")

    limit = min(len(peaks_a), len(peaks_b))
    used_a: set[int] = set()
    used_b: set[int] = set()
    connections = []
    for c in order:
        i, j = int(cand_i[c]), int(cand_j[c])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        connections.append((i, j, cand_score[c]))
        if len(connections) >= limit:
            break
    return np.array(connections, dtype=np.float64).reshape(-1, 3)


def group_peaks(
    peaks: list[np.ndarray],
    pafs: np.ndarray | PafSampler,
    params: GroupingParams = CMU_GROUPING,
) -> People:
    """Assemble people from the peaks of ``find_peaks`` and the PAFs (H, W, 38) (or a
    ``PafSampler`` of them)."""
    if not callable(pafs):
        pafs = np.ascontiguousarray(pafs)
    offsets = np.cumsum([0] + [len(p) for p in peaks])  # global id of each part's first peak
    all_peaks = np.concatenate([np.reshape(p, (-1, 3)) for p in peaks])  # (total, 3)
    peak_score = all_peaks[:, 2]

    # People under construction: peak id per part (-1 = none), total score, part count.
    parts = np.full((0, NUM_PARTS), -1, dtype=np.int64)
    scores: list[float] = []
    counts: list[int] = []

    for position, limb in enumerate(DECODE_ORDER):
        part_a, part_b = LIMBS[limb]
        connections = connect_limb(peaks[part_a], peaks[part_b], pafs, limb, params)
        for i, j, s in connections:
            a = offsets[part_a] + int(i)
            b = offsets[part_b] + int(j)
            # People holding this connection's A or B peak, in list order. The original had room
            # for two and crashed on a third; the first two are used.
            found = np.nonzero((parts[:, part_a] == a) | (parts[:, part_b] == b))[0][:2]
            if len(found) == 1:
                p = found[0]
                if parts[p, part_b] != b:
                    parts[p, part_b] = b
                    counts[p] += 1
                    scores[p] += peak_score[b] + s
            elif len(found) == 2:
                p, q = found
                if not np.any((parts[p] >= 0) & (parts[q] >= 0)):
                    # Disjoint: merge q into p.
                    parts[p] = np.where(parts[p] >= 0, parts[p], parts[q])
                    counts[p] += counts[q]
                    scores[p] += scores[q]
                    scores[p] += s
                    parts = np.delete(parts, q, axis=0)
                    del counts[q], scores[q]
                else:
                    # Overlapping: like one found, but the original set B unconditionally.
                    parts[p, part_b] = b
                    counts[p] += 1
                    scores[p] += peak_score[b] + s
            elif position < NUM_TREE_LIMBS:
                row = np.full((1, NUM_PARTS), -1, dtype=np.int64)
                row[0, part_a], row[0, part_b] = a, b
                parts = np.vstack([parts, row])
                counts.append(2)
                scores.append(peak_score[a] + peak_score[b] + s)

    totals = np.array(scores, dtype=np.float64)
    part_counts = np.array(counts, dtype=np.int64)
    # Counts start at 2, so the mean is always defined.
    keep = ~((part_counts < params.min_parts) | (totals / part_counts < params.min_mean_score))
    parts = parts[keep]

    keypoints = np.where((parts >= 0)[..., None], all_peaks[np.maximum(parts, 0)], 0.0)
    return People(keypoints.reshape(-1, NUM_PARTS, 3), totals[keep], part_counts[keep])


def group_people(
    heatmaps: np.ndarray, pafs: np.ndarray, params: GroupingParams = CMU_GROUPING
) -> People:
    """People from heatmaps (H, W, 19) and PAFs (H, W, 38) in the image frame."""
    return group_peaks(find_peaks(heatmaps, params.thre1), pafs, params)
