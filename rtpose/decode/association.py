"""Part Affinity Field association: peaks and PAFs in, people out (Cao et al. 2017, section 2.4).

Pure numpy: no I/O, no drawing, no Keras. The algorithm and its order of operations are the
original demo's, so it returns the original's people exactly:

1. ``score_limb`` / ``connect_limbs``: every pair of peaks of a limb's two parts is scored by the
   PAF sampled along the segment joining them; pairs are then matched greedily, best first.
   ``connect_limbs`` scores all limbs' pairs together and first reads only the few samples that
   can already reject a pair (a pair needs more than 80 % of its samples above ``thre2``), so
   that the PAFs are read at the remaining samples of the few pairs left.
2. ``group_peaks``: limbs are visited in ``skeleton.DECODE_ORDER`` and their connections merged
   into people, which are finally filtered by part count and mean score.

Peaks are those of ``rtpose.decode.peaks``. PAFs are read in the image frame, from a dense
(H, W, 38) array (limb i: channel 2i = x, 2i+1 = y) or any ``PafSampler`` of it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.people import People
from rtpose.skeleton import DECODE_ORDER, LIMBS, NUM_PARTS, NUM_TREE_LIMBS, PAF_CHANNELS

MAX_SAMPLES_PER_BLOCK = 1 << 20  # PAF samples scored at once (bounds the memory of scoring)


class PafSampler(Protocol):
    """PAF values computed on demand instead of read from a dense (H, W, 38) array:
    ``sampler(ys, xs, limbs)`` returns the x and y components of limb ``limbs`` at the integer
    pixels (ys, xs) (arrays of one shape, ``limbs`` an int or such an array); ``height`` is the
    image height. ``DensePafs`` reads a dense array; ``rtpose.decode.lowres.LowResPafs`` computes
    them from the network's outputs."""

    height: int

    def __call__(self, ys: np.ndarray, xs: np.ndarray,
                 limbs: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]: ...


class DensePafs:
    """The ``PafSampler`` of a dense PAF array (H, W, 38), read through its flat view without
    copying the limbs' channels."""

    def __init__(self, pafs: np.ndarray) -> None:
        self.pafs = np.ascontiguousarray(pafs)
        self.height, self.width, self.channels = self.pafs.shape
        self._flat = self.pafs.reshape(-1)
        self._channel_x = np.array([cx for cx, _ in PAF_CHANNELS], dtype=np.intp)
        self._channel_y = np.array([cy for _, cy in PAF_CHANNELS], dtype=np.intp)

    def __call__(self, ys: np.ndarray, xs: np.ndarray,
                 limbs: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        index = (ys * self.width + xs) * self.channels
        return (np.take(self._flat, index + self._channel_x[limbs]),
                np.take(self._flat, index + self._channel_y[limbs]))


def as_sampler(pafs: np.ndarray | PafSampler) -> PafSampler:
    """``pafs`` itself if it is a ``PafSampler``, else the ``DensePafs`` of the array."""
    return pafs if callable(pafs) else DensePafs(pafs)

def score_limb(
    peaks_a: np.ndarray,
    peaks_b: np.ndarray,
    pafs: np.ndarray | PafSampler,
    limb: int,
    params: GroupingParams = CMU_GROUPING,
) -> tuple[np.ndarray, np.ndarray]:
    """PAF scores of all (nA, nB) candidate connections of limb ``limb``.

    ``peaks_a``, ``peaks_b``: (nA, 3), (nB, 3) peaks (x, y, score) of the limb's parts
    ``LIMBS[limb]``; ``pafs``: (H, W, 38), limb i: channel 2i = x, 2i+1 = y, or a
    ``PafSampler``.

    Returns ``score`` (nA, nB): the mean projection of the PAF on the unit vector A→B over
    ``mid_num`` samples, plus a penalty ``min(0.5 * H / length - 1, 0)`` on limbs longer than
    half the image height; and ``accepted`` (nA, nB) bool: more than 80 % of the samples
    exceed ``thre2``, the score is positive and the two peaks are distinct pixels.
    """
    peaks_a, peaks_b = np.reshape(peaks_a, (-1, 3)), np.reshape(peaks_b, (-1, 3))
    shape = (len(peaks_a), len(peaks_b))
    ia, ib = (index.reshape(-1) for index in np.indices(shape))
    score, accepted = _pair_scores(peaks_a[ia], peaks_b[ib], np.full(len(ia), limb),
                                   as_sampler(pafs), params, prune=False)
    return score.reshape(shape), accepted.reshape(shape)


def _pair_scores(
    a: np.ndarray, b: np.ndarray, limbs: np.ndarray, sampler: PafSampler,
    params: GroupingParams, prune: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``score_limb``'s score and accepted of the candidate connections a[n] → b[n] (rows x,
    y, ...) of limbs ``limbs[n]``, flat (n,).

    With ``prune``, the pairs that cannot be accepted are rejected first from a few samples
    (their score is then NaN): a pair needs more than ``0.8 * mid_num`` samples above
    ``thre2``, so as many failing samples as it may have, plus one, reject it. The other pairs'
    samples, scores and acceptance are computed exactly as without pruning.
    """
    mid_num = params.mid_num
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    vx, vy = bx - ax, by - ay
    norm = np.sqrt(vx * vx + vy * vy)
    distinct = norm > 0
    safe_norm = np.where(distinct, norm, 1.0)
    # Per pair: start, step between samples, end and unit vector, x and y of each.
    pairs = np.stack([ax, ay, vx / (mid_num - 1), vy / (mid_num - 1), bx, by,
                      vx / safe_norm, vy / safe_norm])

    def along(rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Projections of the PAF on the limb direction at samples ``k`` of pairs ``rows``:
        (len(k), len(rows)). Samples go from A to B like np.linspace (k * step + start, the
        end point exact), so that they round to the original's pixels."""
        start_x, start_y, step_x, step_y, end_x, end_y, unit_x, unit_y = pairs[:, rows]
        k = k[:, None]
        xs, ys = k * step_x + start_x, k * step_y + start_y
        last = k == mid_num - 1
        if last.any():
            xs, ys = np.where(last, end_x, xs), np.where(last, end_y, ys)
        paf_x, paf_y = sampler(np.rint(ys).astype(np.intp), np.rint(xs).astype(np.intp),
                               limbs[rows])
        return paf_x * unit_x + paf_y * unit_y

    samples = np.arange(mid_num, dtype=np.float64)
    required = int(np.floor(0.8 * mid_num)) + 1  # samples above thre2 that acceptance needs
    probes = mid_num - required + 1  # failing samples that reject a pair
    if prune and probes < mid_num:
        # The middle samples first (wrong pairs fail there most), in stages of ``probes``.
        order = np.argsort(np.abs(samples - (mid_num - 1) / 2), kind="stable")
        stages = [order[:probes], order[probes:2 * probes], order[2 * probes:]]
        rows = np.flatnonzero(distinct)  # the others are never accepted
    else:
        stages = [np.arange(mid_num)]
        rows = np.arange(len(a))
    done: list[tuple[np.ndarray, np.ndarray]] = []  # (samples, projections (samples, rows))
    failures = np.zeros(len(rows), dtype=np.intp)
    for stage in (stage for stage in stages if len(stage)):
        done.append((stage, along(rows, samples[stage])))
        if prune:
            failures += np.sum(~(done[-1][1] > params.thre2), axis=0)
            alive = np.flatnonzero(failures < probes)
            if len(alive) < len(rows):
                rows, failures = rows[alive], failures[alive]
                done = [(k, values[:, alive]) for k, values in done]
    projections = np.zeros((len(rows), mid_num))
    for k, values in done:
        projections[:, k] = values.T

    with np.errstate(divide="ignore"):
        prior = np.minimum(0.5 * sampler.height / norm[rows] - 1, 0)
    # Mean over the samples (cumsum adds in order, like the original's Python sum) plus the
    # length prior.
    score = np.full(len(a), np.nan)
    score[rows] = np.cumsum(projections, axis=-1)[:, -1] / mid_num + prior
    enough = np.count_nonzero(projections > params.thre2, axis=-1) > 0.8 * mid_num
    accepted = np.zeros(len(a), dtype=bool)
    accepted[rows] = distinct[rows] & enough & (score[rows] > 0)
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
    return _connect([(limb, peaks_a, peaks_b)], as_sampler(pafs), params)[0]


def connect_limbs(
    peaks: list[np.ndarray], pafs: np.ndarray | PafSampler, params: GroupingParams = CMU_GROUPING
) -> list[np.ndarray]:
    """``connect_limb`` of every limb (``LIMBS`` order) for the peaks of ``find_peaks``, all
    limbs' candidates scored together."""
    jobs = [(limb, peaks[a], peaks[b]) for limb, (a, b) in enumerate(LIMBS)]
    return _connect(jobs, as_sampler(pafs), params)


def _connect(jobs: list[tuple[int, np.ndarray, np.ndarray]], sampler: PafSampler,
             params: GroupingParams) -> list[np.ndarray]:
    """Connections (n, 3) of each job (limb, peaks A, peaks B). Candidates are scored in
    batches of at most ``MAX_SAMPLES_PER_BLOCK`` samples (blocks of A's peaks), so that noisy
    maps with thousands of peaks stay in memory."""
    max_pairs = max(1, MAX_SAMPLES_PER_BLOCK // params.mid_num)
    peaks_a = [np.reshape(a, (-1, 3)) for _, a, _ in jobs]
    peaks_b = [np.reshape(b, (-1, 3)) for _, _, b in jobs]
    pieces = []  # (job, first row of A, end row of A)
    for n, (a, b) in enumerate(zip(peaks_a, peaks_b, strict=True)):
        if len(a) and len(b):
            rows = max(1, max_pairs // len(b))
            pieces += [(n, r, min(r + rows, len(a))) for r in range(0, len(a), rows)]

    batches: list[list[tuple[int, int, int]]] = []
    size = max_pairs
    for piece in pieces:
        pairs = (piece[2] - piece[1]) * len(peaks_b[piece[0]])
        if size + pairs > max_pairs:
            batches.append([])
            size = 0
        batches[-1].append(piece)
        size += pairs

    candidates = _Candidates(jobs, peaks_a, peaks_b)
    found = [candidates.score(batch, sampler, params) for batch in batches]
    job, i, j = (np.concatenate([np.zeros(0, np.intp), *(f[c] for f in found)]) for c in range(3))
    score = np.concatenate([np.zeros(0), *(f[3] for f in found)])
    limits = [min(len(a), len(b)) for a, b in zip(peaks_a, peaks_b, strict=True)]
    return _greedy(job, i, j, score, limits)


class _Candidates:
    """Every job's peaks A and B stacked in one array each, so that a batch of pieces
    (``_connect``) gathers its pairs at once."""

    def __init__(self, jobs: list[tuple[int, np.ndarray, np.ndarray]],
                 peaks_a: list[np.ndarray], peaks_b: list[np.ndarray]) -> None:
        self.limbs = np.array([limb for limb, _, _ in jobs], dtype=np.intp)
        self.sizes_b = np.array([len(b) for b in peaks_b], dtype=np.intp)
        self.a = np.concatenate([np.zeros((0, 3)), *peaks_a])
        self.b = np.concatenate([np.zeros((0, 3)), *peaks_b])
        self.start_a = np.cumsum([0] + [len(a) for a in peaks_a])[:-1]
        self.start_b = np.cumsum([0, *self.sizes_b])[:-1]

    def score(self, batch: list[tuple[int, int, int]], sampler: PafSampler,
              params: GroupingParams) -> tuple[np.ndarray, ...]:
        """Score the candidates of ``batch`` (pieces (job, first row of A, end row of A)), all
        pairs (i, j) of each in row-major order: job, i, j and score of the accepted ones."""
        job, first, end = (np.array(column, dtype=np.intp) for column in zip(*batch, strict=True))
        count = (end - first) * self.sizes_b[job]
        piece = np.repeat(np.arange(len(batch)), count)
        local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        width = self.sizes_b[job][piece]
        job = job[piece]
        i, j = first[piece] + local // width, local % width
        score, accepted = _pair_scores(self.a[self.start_a[job] + i], self.b[self.start_b[job] + j],
                                       self.limbs[job], sampler, params, prune=True)
        keep = np.flatnonzero(accepted)
        return job[keep], i[keep], j[keep], score[keep]


def _greedy(job: np.ndarray, i: np.ndarray, j: np.ndarray, score: np.ndarray,
            limits: list[int]) -> list[np.ndarray]:
    """Greedy matching of each job's accepted candidates (job, i, j, score), given per job in
    (i, j) row-major order: best score first (ties in that order), neither peak used yet, at
    most ``limits[job]``. Returns per job (n, 3) rows of i, j, score."""
    order = np.argsort(-score, kind="stable")
    order = order[np.argsort(job[order], kind="stable")]
    connections: list[list[tuple[int, int, float]]] = [[] for _ in limits]
    used_a: list[set[int]] = [set() for _ in limits]
    used_b: list[set[int]] = [set() for _ in limits]
    for n, a, b, s in zip(job[order].tolist(), i[order].tolist(), j[order].tolist(),
                          score[order].tolist(), strict=True):
        made = connections[n]
        if len(made) >= limits[n] or a in used_a[n] or b in used_b[n]:
            continue
        used_a[n].add(a)
        used_b[n].add(b)
        made.append((a, b, s))
    return [np.array(made, dtype=np.float64).reshape(-1, 3) for made in connections]


def group_peaks(
    peaks: list[np.ndarray],
    pafs: np.ndarray | PafSampler,
    params: GroupingParams = CMU_GROUPING,
    positions: list[np.ndarray] | None = None,
) -> People:
    """Assemble people from the peaks of ``find_peaks`` and the PAFs (H, W, 38) (or a
    ``PafSampler`` of them). ``positions``: per part (n, 2) x, y to report for each peak
    (sub-pixel ones), instead of the peak's pixel; the people are the same.

    People are kept in creation order, each as its peak id per part (-1 = none), total score
    and part count; ``holders`` maps a peak id to the people holding it, so that finding the
    people of a connection does not scan them all.
    """
    offsets = np.cumsum([0] + [len(p) for p in peaks]).tolist()  # id of each part's first peak
    all_peaks = np.concatenate([np.reshape(p, (-1, 3)) for p in peaks])  # (total, 3)
    peak_score = all_peaks[:, 2].tolist()
    connections = connect_limbs(peaks, pafs, params)

    people: dict[int, list[int]] = {}  # person id (creation order) -> peak id per part
    next_person = 0
    scores: dict[int, float] = {}
    counts: dict[int, int] = {}
    holders: dict[int, set[int]] = {}  # peak id -> people holding it

    def assign(person: int, part: int, peak: int) -> None:
        old = people[person][part]
        if old >= 0:
            holders[old].discard(person)
        people[person][part] = peak
        holders.setdefault(peak, set()).add(person)

    for position, limb in enumerate(DECODE_ORDER):
        part_a, part_b = LIMBS[limb]
        for i, j, s in connections[limb].tolist():
            a = offsets[part_a] + int(i)
            b = offsets[part_b] + int(j)
            # People holding this connection's A or B peak, in list order. The original had room
            # for two and crashed on a third; the first two are used.
            holding_a, holding_b = holders.get(a), holders.get(b)
            holding = holding_a | holding_b if holding_a and holding_b else holding_a or holding_b
            found = sorted(holding)[:2] if holding else ()
            if len(found) == 1:
                p = found[0]
                if people[p][part_b] != b:
                    assign(p, part_b, b)
                    counts[p] += 1
                    scores[p] += peak_score[b] + s
            elif len(found) == 2:
                p, q = found
                if not any(x >= 0 and y >= 0 for x, y in zip(people[p], people[q], strict=True)):
                    # Disjoint: merge q into p.
                    for part, peak in enumerate(people.pop(q)):
                        if peak >= 0:
                            holders[peak].discard(q)
                            assign(p, part, peak)
                    counts[p] += counts.pop(q)
                    scores[p] += scores.pop(q)
                    scores[p] += s
                else:
                    # Overlapping: like one found, but the original set B unconditionally.
                    assign(p, part_b, b)
                    counts[p] += 1
                    scores[p] += peak_score[b] + s
            elif position < NUM_TREE_LIMBS:
                p, next_person = next_person, next_person + 1
                people[p] = [-1] * NUM_PARTS
                assign(p, part_a, a)
                assign(p, part_b, b)
                counts[p] = 2
                scores[p] = peak_score[a] + peak_score[b] + s

    parts = np.array(list(people.values()), dtype=np.int64).reshape(-1, NUM_PARTS)
    totals = np.array(list(scores.values()), dtype=np.float64)
    part_counts = np.array(list(counts.values()), dtype=np.int64)
    # Counts start at 2, so the mean is always defined.
    keep = ~((part_counts < params.min_parts) | (totals / part_counts < params.min_mean_score))
    parts = parts[keep]

    if positions is not None:
        all_peaks = all_peaks.copy()
        all_peaks[:, :2] = np.concatenate([np.reshape(p, (-1, 2)) for p in positions])
    keypoints = np.where((parts >= 0)[..., None], all_peaks[np.maximum(parts, 0)], 0.0)
    return People(keypoints.reshape(-1, NUM_PARTS, 3), totals[keep], part_counts[keep])
