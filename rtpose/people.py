"""The decoder's result: people as keypoint arrays, with OpenPose and COCO JSON forms.

Frame: keypoint coordinates are pixels of the original image (x right, y down), at the integer
pixel of the heatmap peak (or near it, sub-pixel, with ``GroupingParams.refine``; see
``rtpose.geometry``). A part that a person lacks is ``(0, 0, 0)``.

OpenPose form (``to_openpose_json``)::

    {"version": 1.3,
     "people": [{"pose_keypoints_2d": [x0, y0, c0, ..., x17, y17, c17],   # 18 CMU parts
                 "score": 25.1, "part_count": 17}]}

With hands (``rtpose.wholebody``) each person also has ``hand_left_keypoints_2d`` and
``hand_right_keypoints_2d`` (21 x 3 each), with a face ``face_keypoints_2d`` (70 x 3).

People of a tracked video (``rtpose.track``) also carry ``person_ids``, and each person has
``"person_id": 3`` (a non-negative integer, the same for the same person across frames); an
offline-smoothed person whose parts were filled in by interpolation has ``"filled": [4, 7]``,
the parts filled. People of an image have neither (``person_ids`` and ``filled`` are None).

COCO results form (``to_coco``): one dict per person with ``image_id``, ``category_id`` 1,
``keypoints`` (17 x 3 flat, COCO order) and ``score``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rtpose.errors import RtposeError
from rtpose.skeleton import COCO_TO_CMU, FLIP_PERMUTATION, NUM_PARTS

OPENPOSE_JSON_VERSION = 1.3
HAND_KEYPOINTS, FACE_KEYPOINTS = 21, 70  # OpenPose's hand and face keypoints



def _parts(people: People) -> np.ndarray:
    """Mean score of the parts present."""
    return people.conf.sum(axis=1) / np.maximum(people.present.sum(axis=1), 1)


def _paf(people: People) -> np.ndarray:
    """Mean PAF score of the connections: the total less the part scores, per connection (a
    person of n parts joined by a tree has n - 1)."""
    present = people.present.sum(axis=1)
    return (people.scores - people.conf.sum(axis=1)) / np.maximum(present - 1, 1)


def _person_id(value: int | list[int]) -> int:
    """A person ID as rtpose writes it (an integer) or as OpenPose does (``[id]``)."""
    return int(value[0] if isinstance(value, list) else value)


# Person score rules for COCO results: (N,) scores of People. On coco_mini train2017 none beat
# the original's total by more than the noise of 80 images (docs/evaluation.md).
SCORE_RULES: dict[str, Callable[[People], np.ndarray]] = {
    "total": lambda p: p.scores,  # the original's total (reproduces the original AP)
    "mean": lambda p: p.scores / p.part_counts,
    "total_x_count": lambda p: p.scores * p.part_counts,
    "parts": _parts,
    "paf": _paf,
}


@dataclass(frozen=True, eq=False)
class People:
    """N people found in one image.

    ``keypoints``: (N, 18, 3) float, per CMU part x, y, score (the part's heatmap value at its
    peak); a missing part is (0, 0, 0). ``scores``: (N,) the original's total score (sum of the
    part scores and of the PAF scores of the limbs that joined them). ``part_counts``: (N,) the
    original's part count. It is usually the number of parts present but can exceed it: the
    original counted a part again when a later limb replaced it with another peak.
    ``person_ids``: (N,) int64 track IDs in a tracked video (``rtpose.track``), else None.
    ``filled``: (N, 18) bool, the parts that the offline smoother interpolated, else None.

    >>> people = rtpose.load("mobilenet_thin", scales=(1.0,))(SKI)
    >>> len(people), people.xy.shape, people.conf.shape, people.present.sum(axis=1)
    (5, (5, 18, 2), (5, 18), array([18, 18, 16, 18, 14]))
    """

    keypoints: np.ndarray
    scores: np.ndarray
    part_counts: np.ndarray
    person_ids: np.ndarray | None = None
    filled: np.ndarray | None = None
    hands: np.ndarray | None = None  # (N, 2, 21, 3): left hand, right hand; x, y, score
    face: np.ndarray | None = None  # (N, 70, 3)

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.shape != (n, NUM_PARTS, 3):
            raise ValueError(f"keypoints must be (N, {NUM_PARTS}, 3), got {self.keypoints.shape}")
        for name, shape in (("hands", (n, 2, HAND_KEYPOINTS, 3)), ("face", (n, FACE_KEYPOINTS, 3))):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"{name} must be {shape}, got {value.shape}")
        if self.scores.shape != (n,) or self.part_counts.shape != (n,):
            raise ValueError(
                f"scores and part_counts must be ({n},), got {self.scores.shape} "
                f"and {self.part_counts.shape}"
            )
        if self.person_ids is not None and self.person_ids.shape != (n,):
            raise ValueError(f"person_ids must be ({n},), got {self.person_ids.shape}")
        if self.filled is not None and self.filled.shape != (n, NUM_PARTS):
            raise ValueError(f"filled must be ({n}, {NUM_PARTS}), got {self.filled.shape}")

    def with_ids(self, person_ids: np.ndarray) -> People:
        """The same people with these (N,) person IDs."""
        return replace(self, person_ids=np.asarray(person_ids, dtype=np.int64))

    def take(self, index: np.ndarray) -> People:
        """The people at ``index`` (a (K,) integer array or an (N,) bool mask), in that order."""
        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[index]

        return People(self.keypoints[index], self.scores[index], self.part_counts[index],
                      pick(self.person_ids), pick(self.filled), pick(self.hands), pick(self.face))

    @classmethod
    def empty(cls) -> People:
        return cls(np.zeros((0, NUM_PARTS, 3)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def xy(self) -> np.ndarray:
        """(N, 18, 2) x, y in image pixels."""
        return self.keypoints[:, :, :2]

    @property
    def conf(self) -> np.ndarray:
        """(N, 18) part scores, 0 for a missing part."""
        return self.keypoints[:, :, 2]

    @property
    def present(self) -> np.ndarray:
        """(N, 18) bool, whether the person has the part."""
        return self.conf > 0

    def with_hands_face(self, hands: np.ndarray | None, face: np.ndarray | None) -> People:
        """The same people with ``hands`` (N, 2, 21, 3) and ``face`` (N, 70, 3)."""
        return replace(self, hands=hands, face=face)

    def mirrored(self, width: int) -> People:
        """The same people in the image mirrored left to right (``width`` pixels wide): x
        becomes width - 1 - x (``rtpose.geometry``'s convention) and left and right parts swap
        (``skeleton.FLIP_PERMUTATION``); missing parts stay (0, 0, 0). Hands and face are not
        carried over."""
        keypoints = self.keypoints[:, FLIP_PERMUTATION].copy()
        present = keypoints[:, :, 2] > 0
        keypoints[:, :, 0] = np.where(present, width - 1 - keypoints[:, :, 0], 0.0)
        filled = None if self.filled is None else self.filled[:, FLIP_PERMUTATION]
        return replace(self, keypoints=keypoints, filled=filled)

    def to_openpose_json(self) -> dict[str, Any]:
        """The OpenPose ``--write_json`` form, plus each person's score and part count (and
        ``person_id``, ``filled``, hands and face where set, see the module docstring)."""
        people = []
        for i, (keypoints, score, count) in enumerate(
            zip(self.keypoints, self.scores, self.part_counts, strict=True)
        ):
            person: dict[str, Any] = {"pose_keypoints_2d": keypoints.ravel().tolist(),
                                      "score": float(score), "part_count": int(count)}
            if self.person_ids is not None:
                person["person_id"] = int(self.person_ids[i])
            if self.filled is not None and self.filled[i].any():
                person["filled"] = np.flatnonzero(self.filled[i]).tolist()
            if self.hands is not None:
                person["hand_left_keypoints_2d"] = self.hands[i, 0].ravel().tolist()
                person["hand_right_keypoints_2d"] = self.hands[i, 1].ravel().tolist()
            if self.face is not None:
                person["face_keypoints_2d"] = self.face[i].ravel().tolist()
            people.append(person)
        return {"version": OPENPOSE_JSON_VERSION, "people": people}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> People:
        """Read back ``to_openpose_json`` output (a dict or its JSON text). A person without a
        ``score`` gets 0 and one without a ``part_count`` the number of its parts present.
        ``person_id`` (an integer, or OpenPose's ``[id]``; -1 is none) and ``filled`` are read
        when present."""
        try:
            if isinstance(data, str):
                data = json.loads(data)
            people = data["people"]
            keypoints = np.array(
                [p["pose_keypoints_2d"] for p in people], dtype=np.float64
            ).reshape(len(people), NUM_PARTS, 3)
            scores = np.array([p.get("score", 0.0) for p in people], dtype=np.float64)
            present = np.count_nonzero(keypoints[:, :, 2] > 0, axis=1)
            counts = np.array(
                [p.get("part_count", n) for p, n in zip(people, present, strict=True)],
                dtype=np.int64,
            )
            ids = [_person_id(p.get("person_id", -1)) for p in people]
            filled = np.zeros((len(people), NUM_PARTS), dtype=bool)
            for i, p in enumerate(people):
                filled[i, p.get("filled", [])] = True
            hands = face = None
            # OpenPose writes empty arrays for what it did not compute.
            if people and all(p.get("hand_left_keypoints_2d") for p in people):
                hands = np.array([[p["hand_left_keypoints_2d"], p["hand_right_keypoints_2d"]]
                                  for p in people], dtype=np.float64)
                hands = hands.reshape(len(people), 2, HAND_KEYPOINTS, 3)
            if people and all(p.get("face_keypoints_2d") for p in people):
                face = np.array([p["face_keypoints_2d"] for p in people], dtype=np.float64)
                face = face.reshape(len(people), FACE_KEYPOINTS, 3)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise RtposeError(f"not an OpenPose people JSON: {e}") from e
        tracked = any(i >= 0 for i in ids)
        return cls(keypoints, scores, counts,
                   person_ids=np.array(ids, dtype=np.int64) if tracked else None,
                   filled=filled if filled.any() else None, hands=hands, face=face)

    def to_coco(
        self,
        image_id: int,
        *,
        score: str = "total",
        offset: float = 0.0,
        keypoint_flag: str = "one",
    ) -> list[dict[str, Any]]:
        """COCO keypoint results, one dict per person.

        ``score``: the person score rule, a key of ``SCORE_RULES`` (default: the original's total
        score). ``offset``: added to x and y (0.0 keeps the integer peak pixel, the convention
        that reproduces the original's AP). ``keypoint_flag``: third value of a present
        keypoint, ``"one"`` (1) or ``"conf"`` (its score); a missing keypoint is (0, 0, 0).
        Hands and face, where set, ride along as OpenPose JSON's ``hand_left_keypoints_2d``,
        ``hand_right_keypoints_2d`` and ``face_keypoints_2d`` (pycocotools ignores them).
        """
        if score not in SCORE_RULES:
            raise RtposeError(f"unknown score rule {score!r}; choose from {sorted(SCORE_RULES)}")
        if keypoint_flag not in ("one", "conf"):
            raise RtposeError(f"unknown keypoint flag {keypoint_flag!r}; choose 'one' or 'conf'")
        scores = SCORE_RULES[score](self) if len(self) else []
        coco = self.keypoints[:, COCO_TO_CMU, :].copy()  # (N, 17, 3)
        present = coco[:, :, 2] > 0
        coco[:, :, :2] += offset
        if keypoint_flag == "one":
            coco[:, :, 2] = 1.0
        coco[~present] = 0.0
        results = [
            {
                "image_id": int(image_id),
                "category_id": 1,
                "keypoints": keypoints.ravel().tolist(),
                "score": float(person_score),
            }
            for keypoints, person_score in zip(coco, scores, strict=True)
        ]
        if self.hands is not None or self.face is not None:
            parts = ("hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d")
            for result, person in zip(results, self.to_openpose_json()["people"], strict=True):
                result.update((name, person[name]) for name in parts if name in person)
        return results
