"""rtpose.track on generated sequences: IDs through a crossing and an occlusion, IDs never
reused, the One Euro filter's lag and reset, the offline smoother's gap filling, and images left
untouched by the stream's tracking."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import TEMPLATE

from rtpose.people import People
from rtpose.stream.sources import open_source
from rtpose.stream.stream import default_tracking
from rtpose.track import (
    GreedyTracker,
    OfflineParams,
    OneEuroFilter,
    OneEuroParams,
    PoseTracker,
    TrackerParams,
    smooth_tracks,
)

pytest.importorskip("scipy", reason="tracking needs scipy")

FPS = 30.0


def person(neck, height: float = 200.0, missing=()) -> np.ndarray:
    """(18, 3) the template standing at ``neck``, ``height`` pixels tall."""
    keypoints = np.ones((18, 3))
    keypoints[:, :2] = np.asarray(neck, float) + TEMPLATE * height
    keypoints[list(missing)] = 0.0
    return keypoints


def frame_people(keypoints: list[np.ndarray], order=None) -> People:
    """People of one frame, in ``order`` (the decoder's order is arbitrary)."""
    keypoints = [keypoints[i] for i in (order if order is not None else range(len(keypoints)))]
    if not keypoints:
        return People.empty()
    return People(np.array(keypoints), np.full(len(keypoints), 10.0),
                  np.full(len(keypoints), 18))


def crossing(frames: int = 40, hidden=range(18, 23)) -> list[tuple[list[int], People]]:
    """Two people walking towards each other along the same line until they cross, A passing
    in front of B, and B hidden behind A (not detected) for the ``hidden`` frames; the decoder
    lists them in a random order. Per frame: the ground-truth person of each row, and the
    people."""
    rng = np.random.default_rng(0)
    sequence = []
    for t in range(frames):
        truth = {0: person((100 + 10 * t, 150)), 1: person((500 - 10 * t, 160), 190)}
        if t in hidden:
            del truth[1]
        order = rng.permutation(sorted(truth))
        sequence.append((order.tolist(), frame_people([truth[k] for k in order])))
    return sequence


def identities(tracker, sequence) -> dict[int, set[int]]:
    """Ground-truth person -> the IDs the tracker gave them."""
    ids: dict[int, set[int]] = {}
    for frame, (truth, people) in enumerate(sequence):
        for k, person_id in zip(truth, tracker.update(people, frame).person_ids, strict=True):
            ids.setdefault(k, set()).add(int(person_id))
    return ids


def test_ids_kept_through_a_crossing_and_a_short_occlusion():
    ids = identities(PoseTracker(), crossing())
    assert ids[0] != ids[1] and len(ids[0]) == len(ids[1]) == 1
    # the frame-to-frame greedy baseline gives B a new ID after its occlusion
    greedy = identities(GreedyTracker(), crossing())
    assert len(greedy[1]) > 1


def test_ids_are_non_negative_and_never_reused():
    """Three people; one leaves for longer than ``max_age`` and comes back: a new ID, and no
    ID is ever given to two people, nor again after its track ended."""
    tracker = PoseTracker(TrackerParams(max_age=5, min_hits=1))
    owners: dict[int, tuple[int, int]] = {}  # ID -> (person, stint)
    for t in range(60):
        visible = [k for k in range(3) if not (k == 2 and 15 <= t < 30)]
        stint = {k: int(k == 2 and t >= 30) for k in visible}
        people = frame_people([person((100 + 250 * k + t, 200)) for k in visible])
        ids = tracker.update(people, t).person_ids
        assert (ids >= 0).all() and len(set(ids.tolist())) == len(ids)
        for k, person_id in zip(visible, ids.tolist(), strict=True):
            assert owners.setdefault(person_id, (k, stint[k])) == (k, stint[k])
    assert len(owners) == 4  # 3 people, and the one that came back


def test_with_min_hits_new_tracks_are_shown_once_confirmed():
    """People of the first frames are shown at once; later, a person is shown (with an ID)
    from their ``min_hits``-th frame in a row, and a one-frame false detection never (nor
    does it take an ID)."""
    tracker = PoseTracker(TrackerParams(min_hits=3))
    assert tracker.update(frame_people([person((100, 200))]), 0).person_ids.tolist() == [0]
    shown = []
    for t in range(1, 12):
        people = [person((100 + t, 200))]
        if t == 3:
            people.append(person((400, 100), 80))  # a ghost, for one frame
        if t >= 6:
            people.append(person((600 - 5 * t, 220)))  # someone who walks in at frame 6
        shown.append(len(tracker.update(frame_people(people), t)))
    assert shown == [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    # the ghost took no ID: the newcomer is 1
    both = frame_people([person((112, 200)), person((600 - 5 * 12, 220))])
    assert tracker.update(both, 12).person_ids.tolist() == [0, 1]


def test_tracker_follows_skipped_frames_and_empty_frames():
    """A person running 20 px per frame: seen in frames 0-3, in none at frame 4, then frames
    5-7 skipped (``--every``, a live source's drops): constant velocity predicts where it went,
    and without prediction, the greedy baseline loses it."""
    tracker, greedy = PoseTracker(), GreedyTracker()
    for t in range(4):
        ids = tracker.update(frame_people([person((100 + 20 * t, 100))]), t).person_ids
        before = greedy.update(frame_people([person((100 + 10 * t, 100))]), t).person_ids
    assert len(tracker.update(People.empty(), 4).person_ids) == 0
    later = frame_people([person((100 + 20 * 8, 100))])
    assert tracker.update(later, 8).person_ids.tolist() == ids.tolist() == [0]
    assert before.tolist() == [0]  # 10 px per frame: greedy keeps it frame to frame
    assert greedy.update(frame_people([person((100 + 10 * 8, 100))]), 8).person_ids.tolist() \
        == [1]


def one_point_track(xs: np.ndarray, present: np.ndarray | None = None) -> list[People]:
    """A tracked person (ID 7) whose every part sits at x = ``xs[t]`` (a 100 px tall box, so
    speeds are in pixels)."""
    frames = []
    for t, x in enumerate(xs):
        keypoints = person((x, 100.0), 100.0)
        if present is not None and not present[t]:
            keypoints[0] = 0.0
        frames.append(People(keypoints[None], np.ones(1), np.ones(1, np.int64),
                             np.array([7])))
    return frames


def filtered(xs, params: OneEuroParams | None = None, present=None) -> np.ndarray:
    f = OneEuroFilter(params)
    return np.array([f(p, t / FPS).keypoints[0, 0] for t, p in
                     enumerate(one_point_track(xs, present))])


def test_one_euro_filter_cuts_jitter_and_keeps_up_with_motion():
    rng = np.random.default_rng(1)
    still = 300 + rng.normal(0, 2.0, 200)
    out = filtered(still)[:, 0]
    assert np.abs(np.diff(out)).mean() < np.abs(np.diff(still)).mean() / 2
    # a ramp of 10 px per frame: followed without lag once the velocity is known (trend) ...
    ramp = np.arange(120) * 10.0
    out = filtered(ramp)[:, 0]
    assert np.abs(ramp[30:] - out[30:]).max() < 0.5
    # ... where the original One Euro filter lags by about speed / (2 pi cutoff)
    original = filtered(ramp, OneEuroParams(beta=0.0, trend=False))[:, 0]
    assert (ramp[30:] - original[30:]).min() > 5.0


def test_one_euro_filter_resets_a_part_that_reappears():
    xs = np.full(40, 100.0)
    xs[20:] = 600.0  # the person jumps while its nose is unseen
    present = np.ones(40, bool)
    present[18:20] = False
    out = filtered(xs, present=present)
    assert (out[18:20] == 0).all()  # a missing part stays missing (0, 0, 0)
    assert out[20, 0] == 600.0  # the nose starts afresh where it is seen again, not dragged
    assert out[22, 2] == 1.0


def test_offline_smoother_fills_short_gaps_marks_them_and_smooths():
    rng = np.random.default_rng(2)
    truth = 100 + 3.0 * np.arange(60)
    noisy = truth + rng.normal(0, 2.0, 60)
    present = np.ones(60, bool)
    present[10:13] = False  # 3 frames: filled
    present[30:40] = False  # 10 frames: left empty
    frames = one_point_track(noisy, present)
    out = smooth_tracks(frames, OfflineParams(max_gap=5, sigma=2.0))
    nose = np.array([p.keypoints[0, 0] for p in out])
    filled = np.array([p.filled[0, 0] if p.filled is not None else False for p in out])
    assert filled[10:13].all() and filled.sum() == 3
    assert (nose[30:40] == 0).all()
    np.testing.assert_allclose(nose[10:13, 0], truth[10:13], atol=3.0)
    seen = present.copy()
    assert np.abs(nose[seen, 0] - truth[seen]).mean() < np.abs(noisy[seen] - truth[seen]).mean()
    assert all(p.person_ids.tolist() == [7] for p in out)


def test_offline_smoother_adds_a_person_missing_for_a_frame():
    frames = one_point_track(np.arange(10) * 5.0 + 100)
    frames[4] = People.empty().with_ids(np.zeros(0, np.int64))
    out = smooth_tracks(frames, OfflineParams(max_gap=2, sigma=0.0))
    assert out[4].person_ids.tolist() == [7] and out[4].filled.all()
    np.testing.assert_allclose(out[4].keypoints[0, 1, 0], 120.0)


def test_images_are_not_tracked(shared_data):
    with open_source(images=[shared_data / "sample_images" / "ski.jpg"]) as source:
        assert default_tracking(source) is None
    untracked = frame_people([person((100, 100))])
    assert untracked.person_ids is None
    assert "person_id" not in untracked.to_openpose_json()["people"][0]
    assert People.from_json(untracked.to_openpose_json()).person_ids is None


def test_ids_are_drawn_in_their_colour_beside_the_head():
    from rtpose.draw import draw_people, id_color

    image = np.zeros((300, 400, 3), np.uint8)
    people = frame_people([person((150, 100), 150)]).with_ids(np.array([4]))
    drawn = draw_people(image, people)
    untracked = draw_people(image, frame_people([person((150, 100), 150)]))
    changed = (drawn != untracked).any(axis=2)
    ys, xs = np.nonzero(changed)
    head = people.xy[0, 0]
    near = (np.abs(xs - head[0]) < 60) & (ys < head[1]) & (ys > head[1] - 60)
    assert near.any()  # the number, above and beside the head
    assert (drawn[changed] == id_color(4)).all(axis=1).any()
    assert id_color(4) != id_color(5)


def test_tracking_flags():
    import argparse

    from rtpose.errors import RtposeError
    from rtpose.tools.common import add_tracking_args, tracking_from_args

    parser = argparse.ArgumentParser()
    add_tracking_args(parser)
    assert tracking_from_args(parser.parse_args(["--no-track"])) is None
    tracking = tracking_from_args(parser.parse_args(["--smooth", "--beta", "0.5"]))
    assert tracking.filter.params == OneEuroParams(beta=0.5)
    assert tracking_from_args(parser.parse_args([])).filter is None
    with pytest.raises(RtposeError, match="--smooth needs tracking"):
        tracking_from_args(parser.parse_args(["--no-track", "--smooth"]))

