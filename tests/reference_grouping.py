"""Straightforward loop version of the original demo's grouping: the test oracle and the
benchmark baseline for ``rtpose.decode``.

Plain Python loops over parts, peak pairs, samples and people, in the original's order of
operations, with the original's packed person rows (18 peak ids, then total score, then part
count) kept private to this file. ``branches`` counts which merging cases ran, so that tests can
check that their inputs exercise all of them.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy.ndimage import gaussian_filter

from rtpose.skeleton import DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS, PAF_CHANNELS

SCORE = NUM_PARTS  # column of the total score in a person row
COUNT = NUM_PARTS + 1  # column of the part count


def find_peaks_loops(heatmaps, thre1=0.1):
    """Per part a list of (x, y, score, id)."""
    all_peaks = []
    next_id = 0
    for part in range(NUM_PARTS):
        heat = heatmaps[:, :, part].astype(np.float64)
        smooth = gaussian_filter(heat, sigma=3)
        h, w = smooth.shape
        peaks = []
        for y, x in zip(*np.nonzero(smooth > thre1), strict=True):
            value = smooth[y, x]
            up = smooth[y - 1, x] if y > 0 else 0.0
            down = smooth[y + 1, x] if y < h - 1 else 0.0
            left = smooth[y, x - 1] if x > 0 else 0.0
            right = smooth[y, x + 1] if x < w - 1 else 0.0
            if value >= up and value >= down and value >= left and value >= right:
                peaks.append((int(x), int(y), float(heat[y, x]), next_id))
                next_id += 1
        all_peaks.append(peaks)
    return all_peaks


def connect_limb_loops(cand_a, cand_b, paf_x, paf_y, image_height, thre2=0.05, mid_num=10):
    """Greedy connections of one limb: list of (id_a, id_b, score, i, j)."""
    candidates = []
    for i, (xa, ya, _, _) in enumerate(cand_a):
        for j, (xb, yb, _, _) in enumerate(cand_b):
            vx, vy = xb - xa, yb - ya
            norm = math.sqrt(vx * vx + vy * vy)
            if norm == 0:
                continue
            ux, uy = vx / norm, vy / norm
            xs = np.linspace(xa, xb, num=mid_num)
            ys = np.linspace(ya, yb, num=mid_num)
            along = []
            for sx, sy in zip(xs, ys, strict=True):
                px = paf_x[int(round(sy)), int(round(sx))]
                py = paf_y[int(round(sy)), int(round(sx))]
                along.append(px * ux + py * uy)
            score = sum(along) / len(along) + min(0.5 * image_height / norm - 1, 0)
            above = sum(1 for value in along if value > thre2)
            if above > 0.8 * len(along) and score > 0:
                candidates.append((i, j, score))
    candidates.sort(key=lambda c: c[2], reverse=True)

    connections = []
    for i, j, score in candidates:
        if any(c[3] == i for c in connections) or any(c[4] == j for c in connections):
            continue
        connections.append((cand_a[i][3], cand_b[j][3], score, i, j))
        if len(connections) >= min(len(cand_a), len(cand_b)):
            break
    return connections


def group_people_loops(heatmaps, pafs, thre1=0.1, thre2=0.05, mid_num=10, min_parts=4,
                       min_mean_score=0.4, branches=None):
    """People as (keypoints (N, 18, 3), scores (N,), part_counts (N,)) from full-size maps."""
    # The original's maps were float64 averages.
    all_peaks = find_peaks_loops(np.asarray(heatmaps, dtype=np.float64), thre1)
    return group_peaks_loops(all_peaks, pafs, thre2, mid_num, min_parts, min_mean_score,
                             branches)


def group_peaks_loops(all_peaks, pafs, thre2=0.05, mid_num=10, min_parts=4, min_mean_score=0.4,
                      branches=None):
    """People from the peaks of ``find_peaks_loops``; returns as ``group_people_loops``."""
    branches = Counter() if branches is None else branches
    pafs = np.asarray(pafs, dtype=np.float64)
    peak_score = {p[3]: p[2] for peaks in all_peaks for p in peaks}
    peak_xy = {p[3]: (p[0], p[1]) for peaks in all_peaks for p in peaks}
    image_height = pafs.shape[0]

    rows = []
    for position, limb in enumerate(DECODE_ORDER):
        part_a, part_b = LIMBS[limb]
        cand_a, cand_b = all_peaks[part_a], all_peaks[part_b]
        if not cand_a or not cand_b:
            continue
        cx, cy = PAF_CHANNELS[limb]
        connections = connect_limb_loops(
            cand_a, cand_b, pafs[:, :, cx], pafs[:, :, cy], image_height, thre2, mid_num
        )
        for a, b, s, _, _ in connections:
            found = [n for n, row in enumerate(rows) if row[part_a] == a or row[part_b] == b]
            if len(found) == 1:
                row = rows[found[0]]
                if row[part_b] != b:
                    branches["one"] += 1
                    row[part_b] = b
                    row[COUNT] += 1
                    row[SCORE] += peak_score[b] + s
                else:
                    branches["one_same"] += 1
            elif len(found) >= 2:
                if len(found) > 2:
                    branches["more_than_two"] += 1
                first, second = rows[found[0]], rows[found[1]]
                shared = any(first[p] >= 0 and second[p] >= 0 for p in range(NUM_PARTS))
                if not shared:
                    branches["merge"] += 1
                    for p in range(NUM_PARTS):
                        first[p] += second[p] + 1
                    first[SCORE] += second[SCORE]
                    first[COUNT] += second[COUNT]
                    first[SCORE] += s
                    del rows[found[1]]
                else:
                    branches["two_overlapping"] += 1
                    first[part_b] = b
                    first[COUNT] += 1
                    first[SCORE] += peak_score[b] + s
            elif position < NUM_TREE_LIMBS:
                branches["new"] += 1
                row = [-1] * NUM_PARTS + [0.0, 0]
                row[part_a] = a
                row[part_b] = b
                row[COUNT] = 2
                row[SCORE] = sum([peak_score[a], peak_score[b]]) + s
                rows.append(row)

    kept = [r for r in rows if not (r[COUNT] < min_parts or r[SCORE] / r[COUNT] < min_mean_score)]
    keypoints = np.zeros((len(kept), NUM_PARTS, 3))
    for n, row in enumerate(kept):
        for p in range(NUM_PARTS):
            if row[p] >= 0:
                keypoints[n, p] = (*peak_xy[row[p]], peak_score[row[p]])
    scores = np.array([r[SCORE] for r in kept], dtype=np.float64)
    counts = np.array([r[COUNT] for r in kept], dtype=np.int64)
    return keypoints, scores, counts
