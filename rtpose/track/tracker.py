"""Person IDs across the frames of a video: ``PoseTracker`` and the greedy baseline.

``PoseTracker.update(people, frame)`` gives the ``People`` (those of confirmed tracks, which
with the default ``min_hits=1`` is every person) with ``person_ids``: one non-negative integer
per person, kept while the person is in view and through up to ``max_age`` frames unseen
(occlusion, missed detections), never reused within the tracker's life. Each frame:

1. every track's parts (those seen in its last ``part_memory`` frames) are moved by its
   velocity (constant velocity, pixels per frame, a running then an exponential mean of its
   displacements) over the frames since it was last seen, and its box with them;
2. each track-person pair scores ``oks_weight`` × OKS (the track's parts against the person's,
   at the track's scale) + (1 - ``oks_weight``) × box IoU (``rtpose.track.similarity``);
3. ``scipy.optimize.linear_sum_assignment`` pairs them for the highest total, and pairs
   scoring under ``min_similarity`` are cut;
4. unpaired people start new tracks; tracks unseen for more than ``max_age`` frames end.
   With ``min_hits`` above 1 a new track is tentative: confirmed (given an ID and shown) once
   matched in ``min_hits`` frames in a row, ended at its first miss, so that a false detection
   of a frame or two (a shadow, a fragment of someone) gets no ID (SORT's and DeepSORT's
   rule), but the people of a tentative track are left out of the result; the people of the
   video's first ``min_hits`` frames are shown at once.

The track state is held in arrays (one row per track), so a frame of 20 people costs a few
vectorised operations, not a loop over tracks. ``GreedyTracker`` is the baseline of the
benchmark: frame-to-frame OKS, greedy (lightweight-human-pose-estimation's method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtpose.people import People
from rtpose.skeleton import NUM_PARTS
from rtpose.track.similarity import box_areas, boxes, iou, oks

UNMATCHED = 1e6  # cost of a pair under the similarity threshold


@dataclass(frozen=True)
class TrackerParams:
    """``max_age``: frames a track survives unseen. ``min_similarity``: the least score of a
    pair. ``oks_weight``: OKS's share of the score, the rest being box IoU. ``velocity_gain``:
    how much of a new displacement enters the velocity (the rest is the previous velocity),
    once the track has moved ``1 / velocity_gain`` times (before, the velocity is the mean of
    its displacements so far): about the last 10 frames' mean at 0.1, so that a person partly
    hidden, whose detected parts jump about, keeps their course through a crossing.
    ``part_memory``: frames a track keeps a part it no longer sees, for matching (a person
    half in view shows other parts from frame to frame). ``min_hits``: frames in a row that a
    new track must be matched before it is shown (1, the default: every person at once, no
    detection left out, as extraction needs; 3: SORT's rule, for display: false detections of
    a frame or two get no ID, docs/tracking.md).
    Defaults chosen on ``benchmarks/tracking.py``'s sequences (docs/tracking.md)."""

    max_age: int = 30
    min_similarity: float = 0.1
    oks_weight: float = 0.3
    velocity_gain: float = 0.1
    part_memory: int = 5
    min_hits: int = 1


class PoseTracker:
    """OKS + box IoU, Hungarian matching, constant velocity; see the module docstring."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self.next_id = 0
        self.frame = -1
        self.ids = np.zeros(0, np.int64)  # -1 for a tentative track
        self.xy = np.zeros((0, NUM_PARTS, 2))  # last seen position of each part
        self.part_seen = np.zeros((0, NUM_PARTS), np.int64)  # frame each part was last seen
        self.velocity = np.zeros((0, 2))  # pixels per frame
        self.last_seen = np.zeros(0, np.int64)
        self.hits = np.zeros(0, np.int64)  # frames matched (in a row while tentative)
        self.start: int | None = None  # the first frame

    def update(self, people: People, frame: int | None = None) -> People:
        """``people`` of the next frame (``frame``: its index, when frames were skipped) with
        their ``person_ids``."""
        from scipy.optimize import linear_sum_assignment  # not at import: images need none

        frame = self.frame + 1 if frame is None else frame
        self.frame = frame
        self.start = frame if self.start is None else self.start
        p = self.params
        gap = (frame - self.last_seen).astype(float)  # (T,)
        predicted = self.xy + (self.velocity * gap[:, None])[:, None, :]
        known = self.part_seen >= self.last_seen[:, None] - p.part_memory
        track_boxes = boxes(predicted, known)
        present = people.present
        person_boxes = boxes(people.xy, present)
        score = (p.oks_weight * oks(predicted, known, people.xy, present,
                                    box_areas(track_boxes))
                 + (1 - p.oks_weight) * iou(track_boxes, person_boxes))
        rows, cols = linear_sum_assignment(np.where(score >= p.min_similarity, -score,
                                                    UNMATCHED))
        keep = score[rows, cols] >= p.min_similarity
        rows, cols = rows[keep], cols[keep]

        self._follow(rows, people.xy[cols], present[cols], gap[rows])
        new = np.setdiff1d(np.arange(len(people)), cols)
        self._start(people.xy[new], present[new])
        track = np.empty(len(people), np.int64)  # each person's track (row)
        track[cols], track[new] = rows, np.arange(len(self.ids) - len(new), len(self.ids))
        # a track is shown from its min_hits-th frame in a row, the video's first people at once
        shown = (self.hits[track] >= p.min_hits) | (frame - self.start < p.min_hits)
        named = track[shown & (self.ids[track] < 0)]
        self.ids[named] = np.arange(self.next_id, self.next_id + len(named))
        self.next_id += len(named)
        ids = self.ids[track[shown]]
        confirmed = self.hits >= p.min_hits
        alive = (frame - self.last_seen <= p.max_age) & (confirmed | (self.last_seen == frame))
        self.ids, self.xy = self.ids[alive], self.xy[alive]
        self.part_seen, self.hits = self.part_seen[alive], self.hits[alive]
        self.velocity, self.last_seen = self.velocity[alive], self.last_seen[alive]
        return people.take(shown).with_ids(ids)

    def _follow(self, rows: np.ndarray, xy: np.ndarray, present: np.ndarray,
                gap: np.ndarray) -> None:
        """Move tracks ``rows`` to their matched people: velocity from the parts seen in both
        frames (the box centre's move when none is), parts kept where the person lacks them
        (moved with the velocity)."""
        before = self.part_seen[rows] == self.last_seen[rows, None]
        shared = before & present
        step = np.where(shared[..., None], xy - self.xy[rows], 0.0).sum(axis=1)
        count = shared.sum(axis=1)
        old, new = boxes(self.xy[rows], before), boxes(xy, present)
        centre_step = (new[:, :2] + new[:, 2:] - old[:, :2] - old[:, 2:]) / 2
        step = np.where(count[:, None] > 0, step / np.maximum(count, 1)[:, None], centre_step)
        # a running mean over the track's first steps, then an exponential one
        gain = np.maximum(self.params.velocity_gain, 1.0 / self.hits[rows])[:, None]
        self.velocity[rows] = gain * step / gap[:, None] + (1 - gain) * self.velocity[rows]
        moved = self.xy[rows] + (self.velocity[rows] * gap[:, None])[:, None, :]
        self.xy[rows] = np.where(present[..., None], xy, moved)
        self.part_seen[rows] = np.where(present, self.frame, self.part_seen[rows])
        self.hits[rows] += 1
        self.last_seen[rows] = self.frame

    def _start(self, xy: np.ndarray, present: np.ndarray) -> None:
        """New tracks, tentative: no ID until they are shown."""
        self.ids = np.concatenate([self.ids, np.full(len(xy), -1, np.int64)])
        self.xy = np.concatenate([self.xy, xy])
        seen = np.where(present, self.frame, np.iinfo(np.int64).min // 2)
        self.part_seen = np.concatenate([self.part_seen, seen])
        self.velocity = np.concatenate([self.velocity, np.zeros((len(xy), 2))])
        self.last_seen = np.concatenate([self.last_seen, np.full(len(xy), self.frame)])
        self.hits = np.concatenate([self.hits, np.ones(len(xy), np.int64)])


class GreedyTracker:
    """The baseline: each person, best scored first, takes the ID of the unclaimed person of
    the previous frame with the highest OKS, if at least ``threshold``; else a new ID."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.next_id = 0
        self.previous = People.empty().with_ids(np.zeros(0, np.int64))

    def update(self, people: People, frame: int | None = None) -> People:
        prev = self.previous
        similarity = oks(people.xy, people.present, prev.xy, prev.present,
                         box_areas(boxes(people.xy, people.present)))
        ids = np.full(len(people), -1, np.int64)
        free = np.ones(len(prev), bool)
        for i in np.argsort(-people.scores, kind="stable"):
            candidates = np.where(free, similarity[i], -1.0)
            best = int(np.argmax(candidates)) if len(prev) else -1
            if best >= 0 and candidates[best] >= self.threshold:
                ids[i], free[best] = prev.person_ids[best], False
            else:
                ids[i], self.next_id = self.next_id, self.next_id + 1
        self.previous = people.with_ids(ids)
        return self.previous
