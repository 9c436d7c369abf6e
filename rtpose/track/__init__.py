"""People across the frames of a video: stable person IDs and smoothed keypoints.

- ``tracker``: ``PoseTracker`` (OKS + box IoU, Hungarian matching, constant velocity) gives
  each person a ``person_id``; ``GreedyTracker`` is the frame-to-frame baseline;
- ``filters``: ``OneEuroFilter``, the causal per-keypoint filter for live video;
- ``offline``: ``smooth_tracks``, whole-track smoothing with gap filling, for files;
- ``live``: ``Tracking``, the tracker and the filter as one stream option
  (``rtpose.stream.run_stream(track=...)``);
- ``similarity``: OKS and box IoU matrices.

Frames: keypoints in image pixels, as ``rtpose.people.People``.
"""

from rtpose.track.filters import OneEuroFilter, OneEuroParams
from rtpose.track.live import Tracking
from rtpose.track.offline import OfflineParams, smooth_tracks
from rtpose.track.tracker import GreedyTracker, PoseTracker, TrackerParams

__all__ = ["GreedyTracker", "OfflineParams", "OneEuroFilter", "OneEuroParams", "PoseTracker",
           "TrackerParams", "Tracking", "smooth_tracks"]
