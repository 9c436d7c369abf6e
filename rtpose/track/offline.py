"""Offline smoothing of whole tracks, for files: gaps filled, then a centred Gaussian average.

``smooth_tracks(frames)`` takes every frame's tracked ``People`` of a video, in order, and
returns them smoothed. Per person ID and part:

1. a gap of at most ``max_gap`` frames between two frames where the part was seen is filled by
   linear interpolation (x, y and score); the filled parts are marked in ``People.filled``, and
   a person missing from a frame of such a gap is added to it;
2. each run of consecutive frames with the part is averaged with a Gaussian of ``sigma``
   frames, within the run only (edges renormalised), so a part is never pulled towards a
   position from before it disappeared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from rtpose.people import People
from rtpose.skeleton import NUM_PARTS


@dataclass(frozen=True)
class OfflineParams:
    """``max_gap``: longest gap filled, in frames (0: none). ``sigma``: the Gaussian's width,
    in frames (0: no smoothing). Defaults chosen on ``benchmarks/tracking.py``."""

    max_gap: int = 5
    sigma: float = 1.5


def smooth_tracks(frames: list[People], params: OfflineParams | None = None) -> list[People]:
    """``frames`` (tracked ``People`` per frame, in order) smoothed; see the module docstring.
    People without a person ID (untracked) are returned as they are."""
    params = params or OfflineParams()
    rows: dict[int, list[tuple[int, int]]] = defaultdict(list)  # id -> (frame, row)
    for f, people in enumerate(frames):
        if people.person_ids is not None:
            for r, person in enumerate(people.person_ids.tolist()):
                rows[person].append((f, r))
    # per frame: (id, keypoints, score, part count, filled)
    out: list[list[tuple]] = [[] for _ in frames]
    for person, where in rows.items():
        first, last = where[0][0], where[-1][0]
        length = last - first + 1
        keypoints = np.zeros((length, NUM_PARTS, 3))
        scores = np.full(length, np.nan)
        for f, r in where:
            keypoints[f - first] = frames[f].keypoints[r]
            scores[f - first] = frames[f].scores[r]
        seen = keypoints[:, :, 2] > 0
        filled = _fill_gaps(keypoints, seen, params.max_gap)
        _smooth(keypoints, keypoints[:, :, 2] > 0, params.sigma)
        detected = ~np.isnan(scores)
        scores = np.interp(np.arange(length), np.flatnonzero(detected), scores[detected])
        for t in range(length):
            present = keypoints[t, :, 2] > 0
            if detected[t] or present.any():
                out[first + t].append((person, keypoints[t], scores[t], int(present.sum()),
                                       filled[t]))
    return [_people(frame, original) for frame, original in zip(out, frames, strict=True)]


def _people(tracked: list[tuple], original: People) -> People:
    if original.person_ids is None:
        return original
    tracked.sort(key=lambda person: person[0])
    if not tracked:
        return People.empty().with_ids(np.zeros(0, np.int64))
    ids, keypoints, scores, counts, filled = zip(*tracked, strict=True)
    filled_mask = np.array(filled)
    return People(np.array(keypoints), np.array(scores), np.array(counts, np.int64),
                  np.array(ids, np.int64), filled_mask if filled_mask.any() else None)


def _fill_gaps(keypoints: np.ndarray, seen: np.ndarray, max_gap: int) -> np.ndarray:
    """Interpolate, in place, each part over gaps of at most ``max_gap`` frames between two
    frames that have it; the (T, 18) mask of what was filled."""
    filled = np.zeros_like(seen)
    if max_gap <= 0:
        return filled
    t = np.arange(len(keypoints))
    for part in range(NUM_PARTS):
        have = np.flatnonzero(seen[:, part])
        if len(have) < 2:
            continue
        # for every missing frame: the frames with the part before and after it
        after = np.searchsorted(have, t)
        inside = (after > 0) & (after < len(have)) & ~seen[:, part]
        before_t, after_t = have[np.maximum(after - 1, 0)], have[np.minimum(after, len(have) - 1)]
        fill = inside & (after_t - before_t - 1 <= max_gap)
        for channel in range(3):
            keypoints[fill, part, channel] = np.interp(t[fill], have,
                                                       keypoints[have, part, channel])
        filled[fill, part] = True
    return filled


def _smooth(keypoints: np.ndarray, present: np.ndarray, sigma: float) -> None:
    """Replace x and y, in place, by a local linear fit with Gaussian weights (``sigma``
    frames) within each run of frames that have the part: inside a run it is the Gaussian
    average, and at a run's ends it has no lag on steady motion, as a one-sided average would."""
    if sigma <= 0:
        return
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=float)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    for part in range(NUM_PARTS):
        edges = np.diff(np.concatenate([[0], present[:, part].astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                               strict=True):
            if stop - start >= 3:
                keypoints[start:stop, part, :2] = _local_linear(
                    keypoints[start:stop, part, :2], offsets, weights, radius)


def _local_linear(values: np.ndarray, offsets: np.ndarray, weights: np.ndarray,
                  radius: int) -> np.ndarray:
    """(n, 2) values fitted, at every frame, by the line of least weighted squares over the
    frames within ``radius`` (``weights`` by offset; frames beyond the run weigh nothing)."""
    n = len(values)

    def correlate(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        # sum over offsets d of kernel[d] * signal[t + d]
        return np.convolve(signal, kernel[::-1])[radius : radius + n]

    ones = np.ones(n)
    s0 = correlate(ones, weights)
    s1 = correlate(ones, weights * offsets)
    s2 = correlate(ones, weights * offsets**2)
    det = s0 * s2 - s1**2
    out = np.empty_like(values)
    for channel in range(values.shape[1]):
        sy = correlate(values[:, channel], weights)
        sty = correlate(values[:, channel], weights * offsets)
        mean = sy / s0
        out[:, channel] = np.where(det > 1e-9 * s0**2, (s2 * sy - s1 * sty) / np.where(
            det > 0, det, 1.0), mean)
    return out
