"""ControlNet's pose results, their drawing and the web UIs' pose JSON, as controlnet_aux has them
(``rtpose.controlnet`` finds the poses).

Drawing on black (``draw_poses``): the 17 limbs as filled ellipses 4 px wide in the 18 colours at
0.6, joints as circles of radius 4, hand edges 2 px in 20 hues with blue points, white face dots
of radius 3. The pose JSON (``encode_poses_as_dict``) is ``{"people": [{"pose_keypoints_2d",
"hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d"}], "canvas_width",
"canvas_height"}`` in pixels; ``decode_pose_dict`` reads it back and ``draw_pose_dict`` draws it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np

from rtpose.errors import RtposeError

EPS = 0.01  # drawing: a hand or face point at x or y <= 0.01 px is not drawn
STICK_WIDTH = 4
LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
         (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18))  # 1-based CMU parts
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
          (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
          (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
HAND_EDGES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20))


class Keypoint(NamedTuple):
    x: float
    y: float
    score: float = 1.0
    id: int = -1


class BodyResult(NamedTuple):
    keypoints: list[Keypoint | None]
    total_score: float = 0.0
    total_parts: int = 0


class PoseResult(NamedTuple):
    body: BodyResult
    left_hand: list[Keypoint] | None
    right_hand: list[Keypoint] | None
    face: list[Keypoint] | None


# --- drawing ------------------------------------------------------------------------------------

def draw_bodypose(canvas: np.ndarray, keypoints: Sequence[Keypoint | None]) -> np.ndarray:
    """The 17 limbs and 18 joints of one body (normalised keypoints) onto ``canvas``."""
    height, width = canvas.shape[:2]
    for (a, b), color in zip(LIMBS, COLORS, strict=False):
        one, two = keypoints[a - 1], keypoints[b - 1]
        if one is None or two is None:
            continue
        xs = np.array([one.x, two.x]) * float(width)
        ys = np.array([one.y, two.y]) * float(height)
        length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))),
                                   (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])
    for keypoint, color in zip(keypoints, COLORS, strict=False):
        if keypoint is not None:
            cv2.circle(canvas, (int(keypoint.x * width), int(keypoint.y * height)), 4, color,
                       thickness=-1)
    return canvas


def _hue(fraction: float) -> list[float]:
    """RGB x 255 of the hue ``fraction`` at full saturation and value (matplotlib's
    ``hsv_to_rgb`` arithmetic)."""
    sector = int(fraction * 6.0)
    f = fraction * 6.0 - sector
    q, t = 1.0 - f, 1.0 - (1.0 - f)
    rgb = [(1.0, t, 0.0), (q, 1.0, 0.0), (0.0, 1.0, t), (0.0, q, 1.0), (t, 0.0, 1.0),
           (1.0, 0.0, q)][sector % 6]
    return [c * 255 for c in rgb]


def draw_handpose(canvas: np.ndarray, keypoints: Sequence[Keypoint] | None) -> np.ndarray:
    """One hand's 20 edges and 21 points onto ``canvas``."""
    if not keypoints:
        return canvas
    height, width = canvas.shape[:2]
    for i, (a, b) in enumerate(HAND_EDGES):
        one, two = keypoints[a], keypoints[b]
        x1, y1 = int(one.x * width), int(one.y * height)
        x2, y2 = int(two.x * width), int(two.y * height)
        if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
            cv2.line(canvas, (x1, y1), (x2, y2), _hue(i / float(len(HAND_EDGES))), thickness=2)
    for keypoint in keypoints:
        x, y = int(keypoint.x * width), int(keypoint.y * height)
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)
    return canvas


def draw_facepose(canvas: np.ndarray, keypoints: Sequence[Keypoint] | None) -> np.ndarray:
    """One face's dots onto ``canvas``."""
    if not keypoints:
        return canvas
    height, width = canvas.shape[:2]
    for keypoint in keypoints:
        x, y = int(keypoint.x * width), int(keypoint.y * height)
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)
    return canvas


def draw_poses(poses: Sequence[PoseResult], height: int, width: int, draw_body: bool = True,
               draw_hand: bool = True, draw_face: bool = True) -> np.ndarray:
    """The poses on a black RGB canvas (H, W, 3) uint8."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for pose in poses:
        if draw_body:
            canvas = draw_bodypose(canvas, pose.body.keypoints)
        if draw_hand:
            canvas = draw_handpose(canvas, pose.left_hand)
            canvas = draw_handpose(canvas, pose.right_hand)
        if draw_face:
            canvas = draw_facepose(canvas, pose.face)
    return canvas


# --- the web UIs' pose JSON ---------------------------------------------------------------------

def _flat(keypoints: Sequence[Keypoint | None] | None) -> list[float] | None:
    if not keypoints:
        return None
    return [v for k in keypoints
            for v in ([float(k.x), float(k.y), 1.0] if k is not None else [0.0, 0.0, 0.0])]


def encode_poses_as_dict(poses: Sequence[PoseResult], canvas_height: int,
                         canvas_width: int) -> dict[str, Any]:
    """The web UIs' (sd-webui-controlnet's) pose JSON: per person the four keypoint lists
    x, y, 1 (normalised; 0, 0, 0 for a missing body part; None for no hand or face), and the
    canvas size."""
    return {
        "people": [{"pose_keypoints_2d": _flat(pose.body.keypoints),
                    "face_keypoints_2d": _flat(pose.face),
                    "hand_left_keypoints_2d": _flat(pose.left_hand),
                    "hand_right_keypoints_2d": _flat(pose.right_hand)} for pose in poses],
        "canvas_height": canvas_height,
        "canvas_width": canvas_width,
    }


def _keypoints(values: Any, dtype: type, scale: tuple[float, float]) -> list | None:
    if not values:
        return None
    triples = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    return [Keypoint(dtype(x / scale[0]), dtype(y / scale[1])) if c >= 1.0 else None
            for x, y, c in triples.tolist()]


def decode_pose_dict(data: dict[str, Any] | str) -> tuple[list[PoseResult], int, int]:
    """The poses, canvas height and width of the web UIs' pose JSON (a dict or its text).
    Coordinates above 1 are read as pixels of the canvas; a point of confidence under 1 is
    missing, as the web UIs read it. Hands and face come back float32, as detected."""

    try:
        if isinstance(data, str):
            data = json.loads(data)
        height, width = int(data["canvas_height"]), int(data["canvas_width"])
        people = data.get("people", [])
        values = [v for p in people for key, v in p.items() if key.endswith("_2d") and v]
        pixels = any(abs(x) > 1.0 for v in values for x in
                     np.asarray(v, dtype=np.float64).reshape(-1, 3)[:, :2].ravel())
        scale = (float(width), float(height)) if pixels else (1.0, 1.0)
        poses = [PoseResult(BodyResult(_keypoints(p.get("pose_keypoints_2d"), float, scale)
                                       or [None] * 18),
                            _keypoints(p.get("hand_left_keypoints_2d"), np.float32, scale),
                            _keypoints(p.get("hand_right_keypoints_2d"), np.float32, scale),
                            _keypoints(p.get("face_keypoints_2d"), np.float32, scale))
                 for p in people]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RtposeError(f"not a pose JSON of the web UIs: {e}") from e
    return poses, height, width


def draw_pose_dict(data: dict[str, Any] | str, draw_body: bool = True, draw_hand: bool = True,
                   draw_face: bool = True) -> np.ndarray:
    """The conditioning image (RGB, the canvas's size) of a pose JSON, e.g. after editing."""
    poses, height, width = decode_pose_dict(data)
    return draw_poses(poses, height, width, draw_body, draw_hand, draw_face)
