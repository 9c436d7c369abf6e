"""Part Affinity Field grouping: heatmaps and PAFs in, people out (Cao et al. 2017, section 2.4).

Pure numpy/scipy, no I/O, no drawing, no Keras. The algorithm and its order of operations are the
original demo's, so it returns the original's people exactly:

1. ``find_peaks``: local maxima of each part's Gaussian-smoothed heatmap.
2. ``score_limb`` / ``connect_limb``: every pair of peaks of a limb's two parts is scored by the
   PAF sampled along the segment joining them; pairs are then matched greedily, best first.
3. ``group_peaks``: limbs are visited in ``skeleton.DECODE_ORDER`` and their connections merged
   into people, which are finally filtered by part count and mean score.

Maps are in the original image's frame: heatmaps (H, W, 19) (18 parts + background), PAFs
(H, W, 38) (limb i: channel 2i = x, 2i+1 = y). Peak coordinates are integer pixels (x, y).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.people import People
from rtpose.skeleton import DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS, PAF_CHANNELS

PEAK_SIGMA = 3.0  # Gaussian smoothing of the heatmaps before peak finding, in pixels
MAX_SAMPLES_PER_BLOCK = 1 << 20  # PAF samples scored at once (bounds the memory of score_limb)


def find_peaks(heatmaps: np.ndarray, thre1: float = CMU_GROUPING.thre1) -> list[np.ndarray]:
    """Heatmap peaks of the 18 parts.

    ``heatmaps``: (H, W, >=18), image frame. A pixel is a peak of part p when its smoothed value
    (``gaussian_filter``, sigma 3) exceeds ``thre1`` and is >= its 4 neighbours (neighbours
    outside the image count as 0). Returns per part an (n, 3) float64 array of x, y and the
    unsmoothed heatmap value, in row-major order (y, then x). Peak ids, as used by
    ``group_peaks``, count through the parts in order: part 0's peaks first.
    """
    peaks = []
    for part in range(NUM_PARTS):
        heat = np.asarray(heatmaps[:, :, part], dtype=np.float64)
        smooth = gaussian_filter(heat, sigma=PEAK_SIGMA)
        # Pad with zeros so that border pixels compare against 0 outside the image.
        padded = np.pad(smooth, 1)
        is_peak = (
            (smooth > thre1)
            & (smooth >= padded[:-2, 1:-1])  # up
            & (smooth >= padded[2:, 1:-1])  # down
            & (smooth >= padded[1:-1, :-2])  # left
            & (smooth >= padded[1:-1, 2:])  # right
        )
        ys, xs = np.nonzero(is_peak)
        peaks.append(np.stack([xs, ys, heat[ys, xs]], axis=1).astype(np.float64))
    return peaks


def score_limb(
    peaks_a: np.ndarray,
    peaks_b: np.ndarray,
    paf_x: np.ndarray,
    paf_y: np.ndarray,
    image_height: int,
    params: GroupingParams = CMU_GROUPING,
) -> tuple[np.ndarray, np.ndarray]:
    """PAF scores of all (nA, nB) candidate connections of one limb, by broadcasting.

    ``peaks_a``, ``peaks_b``: (nA, 3), (nB, 3) peaks (x, y, score) of the limb's parts.
    ``paf_x``, ``paf_y``: (H, W) the limb's PAF components. Returns ``score`` (nA, nB): the
    mean projection of the PAF on the unit vector A→B over ``mid_num`` samples, plus a penalty
    ``min(0.5 * H / length - 1, 0)`` on limbs longer than half the image height; and
    ``accepted`` (nA, nB) bool: more than 80 % of the samples exceed ``thre2``, the score is
    positive and the two peaks are distinct pixels.
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
    flat = (np.rint(ys) * paf_x.shape[1] + np.rint(xs)).astype(np.intp)

    # Projection of the PAF on the limb direction at each sample: (nA, nB, mid_num).
    along = np.take(paf_x, flat) * ux[..., None] + np.take(paf_y, flat) * uy[..., None]

    # Mean over the samples (cumsum adds in order, like the original's Python sum) plus the
    # length prior.
    with np.errstate(divide="ignore"):
        prior = np.minimum(0.5 * image_height / norm - 1, 0)
    score = np.cumsum(along, axis=-1)[..., -1] / params.mid_num + prior

    enough = np.count_nonzero(along > params.thre2, axis=-1) > 0.8 * params.mid_num
    accepted = distinct & enough & (score > 0)
    return score, accepted


def connect_limb(
    peaks_a: np.ndarray,
    peaks_b: np.ndarray,
    paf_x: np.ndarray,
    paf_y: np.ndarray,
    image_height: int,
    params: GroupingParams = CMU_GROUPING,
) -> np.ndarray:
    """Greedy matching of one limb's candidates: (n, 3) rows of i (into A), j (into B), score.

    Accepted candidates are taken best score first (ties in (i, j) row-major order) when
    neither peak is used yet, until min(nA, nB) connections are made.
    """
    if len(peaks_a) == 0 or len(peaks_b) == 0:
        return np.zeros((0, 3))
    paf_x, paf_y = np.ascontiguousarray(paf_x), np.ascontiguousarray(paf_y)
    # Score blocks of A's peaks, so that noisy maps with thousands of peaks stay in memory.
    rows = max(1, MAX_SAMPLES_PER_BLOCK // (len(peaks_b) * params.mid_num))
    blocks = [
        score_limb(peaks_a[r : r + rows], peaks_b, paf_x, paf_y, image_height, params)
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
    pafs: np.ndarray,
    params: GroupingParams = CMU_GROUPING,
) -> People:
    """Assemble people from the peaks of ``find_peaks`` and the PAFs (H, W, 38)."""
    image_height = pafs.shape[0]
    offsets = np.cumsum([0] + [len(p) for p in peaks])  # global id of each part's first peak
    all_peaks = np.concatenate([np.reshape(p, (-1, 3)) for p in peaks])  # (total, 3)
    peak_score = all_peaks[:, 2]

    # People under construction: peak id per part (-1 = none), total score, part count.
    parts = np.full((0, NUM_PARTS), -1, dtype=np.int64)
    scores: list[float] = []
    counts: list[int] = []

    for position, limb in enumerate(DECODE_ORDER):
        part_a, part_b = LIMBS[limb]
        channel_x, channel_y = PAF_CHANNELS[limb]
        paf_x, paf_y = pafs[:, :, channel_x], pafs[:, :, channel_y]
        connections = connect_limb(peaks[part_a], peaks[part_b], paf_x, paf_y, image_height, params)
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
    drop = (part_counts < params.min_parts) | (totals / part_counts < params.min_mean_score)
    keep = ~drop
    parts = parts[keep]

    keypoints = np.where((parts >= 0)[..., None], all_peaks[np.maximum(parts, 0)], 0.0)
    return People(keypoints.reshape(-1, NUM_PARTS, 3), totals[keep], part_counts[keep])


def group_people(
    heatmaps: np.ndarray, pafs: np.ndarray, params: GroupingParams = CMU_GROUPING
) -> People:
    """People from heatmaps (H, W, 19) and PAFs (H, W, 38) in the image frame."""
    return group_peaks(find_peaks(heatmaps, params.thre1), pafs, params)
