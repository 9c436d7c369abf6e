"""The causal One Euro filter (Casiez, Roussel and Vogel, CHI 2012) per tracked keypoint.

Per keypoint, with ``dt`` the seconds since the previous frame:

    velocity = low-pass((x - x_prev_filtered) / dt, cutoff d_cutoff)
    cutoff   = min_cutoff + beta * |velocity|
    filtered = low-pass(x, cutoff), from x_prev_filtered + velocity * dt (``trend``)
    low-pass(v, f) = a v + (1 - a) previous,  a = 1 / (1 + 1 / (2 pi f dt))

A still keypoint is smoothed hard (``min_cutoff`` Hz), a fast one barely (the cutoff rises with
the speed), so jitter falls with little lag on motion. With ``trend`` (the default) the
low-pass starts from the previous output moved by the filtered velocity rather than from the
previous output itself, so steady motion is followed without lag (the original filter lags by
about speed / (2 pi cutoff); ``benchmarks/tracking.py`` measures both). Speed is in person
heights per second (the person's box height), so ``beta`` does not depend on the image size. A
keypoint that appears starts from its raw position (with the mean velocity of the person's
other parts) and one that disappears is dropped, so no keypoint is ever dragged from a stale
position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtpose.people import People
from rtpose.skeleton import NUM_PARTS
from rtpose.track.similarity import boxes

MIN_DT_S = 1e-3


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` Hz, ``beta`` per (person height per second), ``d_cutoff`` Hz (the
    velocity's own low-pass), ``trend`` (see the module docstring). Defaults chosen on
    ``benchmarks/tracking.py --sweep`` (docs/tracking.md): jitter of still people more than
    halved, the least error on moving ones."""

    min_cutoff: float = 2.0
    beta: float = 10.0
    d_cutoff: float = 1.0
    trend: bool = True


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2 * np.pi * cutoff * dt))


class OneEuroFilter:
    """One Euro filters of every keypoint of every person ID; ``__call__`` filters one frame's
    tracked people (``People.person_ids`` set) at ``timestamp_s``."""

    def __init__(self, params: OneEuroParams | None = None) -> None:
        self.params = params or OneEuroParams()
        # person ID -> (filtered xy (18, 2), filtered velocity (18, 2), present (18,), time)
        self.state: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}

    def __call__(self, people: People, timestamp_s: float) -> People:
        if people.person_ids is None:
            raise ValueError("the One Euro filter needs tracked people (person_ids)")
        n, p = len(people), self.params
        if n == 0:
            return people
        previous = [self.state.get(int(i)) for i in people.person_ids]
        known = np.array([s is not None for s in previous])
        empty = (np.zeros((NUM_PARTS, 2)), np.zeros((NUM_PARTS, 2)), np.zeros(NUM_PARTS, bool),
                 0.0)
        prev_xy, prev_velocity, prev_present, prev_t = (
            np.stack([s[k] if s is not None else empty[k] for s in previous]) for k in range(4))
        dt = np.maximum(timestamp_s - prev_t, MIN_DT_S)[:, None]  # (N, 1)
        xy, present = people.xy, people.present
        box = boxes(xy, present)
        height = np.maximum(box[:, 3] - box[:, 1], 1.0)[:, None]
        go_on = present & prev_present & known[:, None]
        # A part that (re)appears takes the mean velocity of the person's other parts.
        count = go_on.sum(axis=1)[:, None]
        shared = (prev_velocity * go_on[..., None]).sum(axis=1) / np.maximum(count, 1)
        prev_velocity = np.where(go_on[..., None], prev_velocity, shared[:, None])
        a_d = _alpha(p.d_cutoff, dt)[..., None]
        velocity = a_d * (xy - prev_xy) / dt[..., None] + (1 - a_d) * prev_velocity  # px/s
        speed = np.linalg.norm(velocity, axis=-1) / height  # (N, 18) heights per second
        a = _alpha(p.min_cutoff + p.beta * speed, dt)[..., None]
        predicted = prev_xy + velocity * dt[..., None] if p.trend else prev_xy
        filtered = a * xy + (1 - a) * predicted
        # A keypoint seen now and in the person's previous frame is filtered; one that
        # (re)appears starts afresh, where it is seen.
        filtered = np.where(go_on[..., None], filtered, xy)
        velocity = np.where(go_on[..., None], velocity, prev_velocity)
        for i, person in enumerate(people.person_ids):
            self.state[int(person)] = (filtered[i], velocity[i], present[i], timestamp_s)
        keypoints = people.keypoints.copy()
        keypoints[:, :, :2] = np.where(present[..., None], filtered, 0.0)
        return People(keypoints, people.scores, people.part_counts, people.person_ids,
                      people.filled)

    def forget(self, keep: set[int]) -> None:
        """Drop the state of the person IDs not in ``keep`` (tracks that ended)."""
        for person in set(self.state) - keep:
            del self.state[person]
