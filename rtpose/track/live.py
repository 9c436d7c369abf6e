"""Tracking of a live stream: IDs (``PoseTracker``), then, if asked, the One Euro filter.

    tracking = Tracking(smooth=OneEuroParams())
    for frame in source:
        people = tracking.update(pipeline(frame.image), frame.index, frame.timestamp_s)
"""

from __future__ import annotations

from rtpose.people import People
from rtpose.track.filters import OneEuroFilter, OneEuroParams
from rtpose.track.tracker import PoseTracker, TrackerParams


class Tracking:
    """Person IDs for every frame of one video, and the causal filter if ``smooth`` is set."""

    def __init__(self, params: TrackerParams | None = None,
                 smooth: OneEuroParams | None = None) -> None:
        self.tracker = PoseTracker(params or TrackerParams())
        self.filter = OneEuroFilter(smooth) if smooth is not None else None

    def update(self, people: People, frame: int | None = None,
               timestamp_s: float = 0.0) -> People:
        """``people`` of the next frame with their IDs (and filtered keypoints)."""
        tracked = self.tracker.update(people, frame)
        if self.filter is None:
            return tracked
        self.filter.forget(set(self.tracker.ids.tolist()))
        return self.filter(tracked, timestamp_s)
