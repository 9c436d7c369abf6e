"""Hands and face from the body: boxes from the body's keypoints, the hand and face networks on
the crops (every crop of every person in one batch), and their keypoints as the original finds
them (OpenPose's method; controlnet_aux's where the two differ).

Frames: keypoints are pixels of the image (x right, y down). A box is ``(x, y, side)`` of its
top-left pixel, integers; a hand crop is ``image[y:y+side, x:x+side]``.

- Hand boxes (OpenPose's ``handDetector.cpp``): shoulder, elbow and wrist present; centre
  wrist + 0.33 (wrist - elbow), side 1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|), square,
  clipped to the image, dropped under 20 px.
- Face box (controlnet_aux's rule): the nose and at least one eye or ear present; half-side
  the largest of 3 max(|dx|, |dy|) to an eye and 1.5 max(|dx|, |dy|) to an ear, clipped as
  controlnet_aux clips it, dropped under 20 px.
- Hand keypoints: the crop blurred (sigma 0.8), resized to 184, 368, 552 and 736 px, each scale's
  maps up-sampled x8 (Lanczos) then averaged at 128 x 128 (area); per keypoint, the largest
  8-connected region of the smoothed map (sigma 3) above 0.05 by its sum, and the highest pixel
  there, scaled back to the crop.
- Face keypoints: the crop resized to 384 x 384, the maps up-sampled bilinearly (corners
  aligned) to the crop, per keypoint the highest pixel above 0.05.

``HandsFace`` holds the result per person: ``hands`` (N, 2, 21, 3), left hand then right, and
``face`` (N, 70, 3), x, y, score (the averaged map's value), (0, 0, 0) where not found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtpose.skeleton import PARTS

HAND_KEYPOINTS, FACE_KEYPOINTS = 21, 70
HAND_RATIO = 0.33  # wrist + 0.33 (wrist - elbow): the hand's centre
MIN_SIDE = 20  # boxes under 20 px are dropped
BOXSIZE = 368
HAND_SCALES = (0.5, 1.0, 1.5, 2.0)
HAND_BLUR = 0.8
HAND_MAP = 128  # the hand maps are averaged at 128 x 128
FACE_INPUT = 384
THRESHOLD = 0.05
PEAK_SIGMA = 3.0
STRIDE = 8
# Body parts (CMU order): left arm then right arm, shoulder, elbow, wrist; nose, eyes, ears.
_ARMS = np.array([[PARTS.index(f"{side}_{joint}") for joint in ("shoulder", "elbow", "wrist")]
                  for side in ("left", "right")])
_NOSE = PARTS.index("nose")
_EYES = [PARTS.index(p) for p in ("right_eye", "left_eye")]
_EARS = [PARTS.index(p) for p in ("right_ear", "left_ear")]

Network = Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) BGR float32 -> (N, H/8, W/8, C)


def hand_boxes(keypoints: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(M, 5) int64 rows ``person, side (0 left, 1 right), x, y, side`` of the hands of body
    keypoints (N, 18, 3), in person order, the left hand first."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 18, 3)
    arms = kp[:, _ARMS]  # (N, 2, 3 joints, 3)
    shoulder, elbow, wrist = (arms[:, :, j, :2] for j in range(3))
    present = (arms[..., 2] > 0).all(axis=2)
    centre = wrist + HAND_RATIO * (wrist - elbow)
    forearm = np.sqrt(((wrist - elbow) ** 2).sum(axis=-1))
    upper = np.sqrt(((elbow - shoulder) ** 2).sum(axis=-1))
    side = 1.5 * np.maximum(forearm, 0.9 * upper)
    corner = np.maximum(centre - side[..., None] / 2, 0.0)
    limit = np.array(image_hw[::-1], dtype=np.float64) - corner  # (W - x, H - y)
    side = np.where(corner + side[..., None] > image_hw[::-1], limit, side[..., None]).min(-1)
    keep = present & (side >= MIN_SIDE)
    person, hand = np.nonzero(keep)
    return np.stack([person, hand, *corner[keep].T.astype(np.int64),
                     side[keep].astype(np.int64)], axis=1).astype(np.int64).reshape(-1, 5)


def face_boxes(keypoints: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(M, 4) int64 rows ``person, x, y, side`` of the faces of body keypoints (N, 18, 3)."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 18, 3)
    nose = kp[:, _NOSE]
    others = kp[:, _EYES + _EARS]  # (N, 4, 3)
    reach = np.abs(others[:, :, :2] - nose[:, None, :2]).max(axis=2) * [3.0, 3.0, 1.5, 1.5]
    half = np.where(others[:, :, 2] > 0, reach, 0.0).max(axis=1)
    present = (nose[:, 2] > 0) & (others[:, :, 2] > 0).any(axis=1)
    corner = np.maximum(nose[:, :2] - half[:, None], 0.0)
    # As controlnet_aux: the far edge is tested at corner + half, not corner + 2 half.
    side = np.where(corner + half[:, None] > image_hw[::-1], image_hw[::-1] - corner,
                    2 * half[:, None]).min(axis=1)
    keep = present & (side >= MIN_SIDE)
    (person,) = np.nonzero(keep)
    return np.stack([person, *corner[keep].T.astype(np.int64), side[keep].astype(np.int64)],
                    axis=1).astype(np.int64).reshape(-1, 4)


def resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """controlnet_aux's ``smart_resize``: area when shrinking (by the sum of the sides), Lanczos
    when enlarging, on any number of channels."""
    height, width = image.shape[:2]
    shrink = (size_wh[0] + size_wh[1]) / (height + width) < 1
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    if image.ndim == 2 or image.shape[2] <= 4 or not shrink:
        return cv2.resize(image, size_wh, interpolation=interpolation)
    # OpenCV's area resize takes at most 4 channels at once; the result is the same per channel.
    return np.concatenate([cv2.resize(image[:, :, i:i + 4], size_wh, interpolation=interpolation)
                           .reshape(size_wh[1], size_wh[0], -1)
                           for i in range(0, image.shape[2], 4)], axis=2)


def upsample_by_stride(maps: np.ndarray) -> np.ndarray:
    """Maps (h, w, C) to (8h, 8w, C) as controlnet_aux's ``smart_resize_k`` does (Lanczos)."""
    height, width = maps.shape[:2]
    return resize(maps, (width * STRIDE, height * STRIDE))


def _hand_crops(image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    return [cv2.GaussianBlur(image[y:y + s, x:x + s], (0, 0), HAND_BLUR)
            for x, y, s in boxes[:, 2:5]]


def _face_crops(image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    return [image[y:y + s, x:x + s] for x, y, s in boxes[:, 1:4]]


def calibration_crops(image: np.ndarray, keypoints: np.ndarray, network: str
                      ) -> list[np.ndarray]:
    """The crops that the ``hand`` or ``face`` network sees at scale 1 for the body keypoints
    (N, 18, 3) of the BGR uint8 ``image``: float32 (368, 368, 3) hands, (384, 384, 3) faces
    (int8 calibration, ``rtpose.runtime.calibration.PartCalibration``)."""
    if network == "hand":
        crops, size = _hand_crops(image, hand_boxes(keypoints, image.shape[:2])), BOXSIZE
    else:
        crops, size = _face_crops(image, face_boxes(keypoints, image.shape[:2])), FACE_INPUT
    return [resize(crop, (size, size)).astype(np.float32) for crop in crops]


def hand_maps(image: np.ndarray, boxes: np.ndarray, network: Network) -> np.ndarray:
    """(M, 128, 128, 22) float64: each hand box's maps averaged over ``HAND_SCALES``; one
    network batch per scale holds every crop."""
    crops = _hand_crops(image, boxes)
    average = np.zeros((len(crops), HAND_MAP, HAND_MAP, HAND_KEYPOINTS + 1))
    if not crops:
        return average
    for scale in HAND_SCALES:
        size = int(scale * BOXSIZE)
        batch = np.stack([resize(crop, (size, size)) for crop in crops]).astype(np.float32)
        heat = network(batch)
        for i, maps in enumerate(heat):
            average[i] += resize(upsample_by_stride(maps), (HAND_MAP, HAND_MAP)) / len(HAND_SCALES)
    return average


def hand_peaks(maps: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """(21, 3) x, y in the crop (``crop_hw`` high and wide) and the map's value at the peak, of
    one hand's averaged maps (128, 128, 22); (0, 0, 0) where nothing exceeds the threshold."""
    from scipy.ndimage import gaussian_filter, label, sum_labels

    peaks = np.zeros((HAND_KEYPOINTS, 3))
    for part in range(HAND_KEYPOINTS):
        values = maps[:, :, part]
        above = gaussian_filter(values, sigma=PEAK_SIGMA) > THRESHOLD
        if not above.any():
            continue
        regions, count = label(above, structure=np.ones((3, 3)))
        best = np.argmax(sum_labels(values, regions, np.arange(1, count + 1))) + 1
        y, x = np.unravel_index(np.argmax(np.where(regions == best, values, 0.0)), values.shape)
        peaks[part] = (int(float(x) * crop_hw[1] / HAND_MAP), int(float(y) * crop_hw[0] / HAND_MAP),
                       values[y, x])
    return peaks


def face_maps(image: np.ndarray, boxes: np.ndarray, network: Network) -> list[np.ndarray]:
    """Per face box, the network's maps (71, H, W) float32 at the crop's size (the crop may be
    cut by the image's edge); one network batch holds every crop."""
    crops = _face_crops(image, boxes)
    if not crops:
        return []
    heat = network(np.stack([resize(c, (FACE_INPUT, FACE_INPUT)) for c in crops])
                   .astype(np.float32))
    return [bilinear_aligned(maps, crop.shape[:2]) for maps, crop in zip(heat, crops, strict=True)]


def _aligned_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 bilinear weights with the corners aligned, as torch computes them."""
    scale = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
    source = np.arange(n_out, dtype=np.float32) * scale
    low = np.minimum(source.astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = source - low.astype(np.float32)
    weights = np.zeros((n_out, n_in), np.float32)
    np.add.at(weights, (np.arange(n_out), low), np.float32(1) - frac)
    np.add.at(weights, (np.arange(n_out), high), frac)
    return weights


def bilinear_aligned(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Maps (h, w, C) -> (C, H, W) float32, bilinear with the corners aligned (torch's
    ``interpolate(mode="bilinear", align_corners=True)``)."""
    rows = _aligned_weights(maps.shape[0], size_hw[0])
    columns = _aligned_weights(maps.shape[1], size_hw[1])
    return np.einsum("yh,hwc,xw->cyx", rows, maps.astype(np.float32), columns, optimize=True)


def face_peaks(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per map of (C, H, W): x, y, value of its highest pixel (the first in row-major order),
    (C, 3); and (C,) whether any pixel exceeds the threshold."""
    flat = maps.reshape(len(maps), -1)
    found = (flat > THRESHOLD).any(axis=1)
    index = np.argmax(flat, axis=1)
    ys, xs = np.divmod(index, maps.shape[2])
    peaks = np.stack([xs, ys, flat[np.arange(len(flat)), index]], axis=1).astype(np.float64)
    return np.where(found[:, None], peaks, 0.0), found


@dataclass(frozen=True, eq=False)
class HandsFace:
    """Per person: ``hands`` (N, 2, 21, 3) left then right, ``face`` (N, 70, 3), x, y, score in
    image pixels, (0, 0, 0) where not found; ``hand_boxes`` (M, 5) and ``face_boxes`` (M, 4) as
    ``hand_boxes``/``face_boxes`` return them; ``face_background`` (N, 3): the face network's
    background map's peak (controlnet_aux draws it as a 71st dot)."""

    hands: np.ndarray | None
    face: np.ndarray | None
    hand_boxes: np.ndarray
    face_boxes: np.ndarray
    face_background: np.ndarray | None


def detect_hands_face(image: np.ndarray, keypoints: np.ndarray,
                      hand_network: Network | None = None,
                      face_network: Network | None = None) -> HandsFace:
    """Hands (with ``hand_network``) and face (with ``face_network``) of the people whose body
    keypoints (N, 18, 3) were found in the BGR uint8 ``image`` (H, W, 3)."""
    n, image_hw = len(keypoints), image.shape[:2]
    hands = face = background = None
    boxes_h, boxes_f = np.zeros((0, 5), np.int64), np.zeros((0, 4), np.int64)
    if hand_network is not None:
        boxes_h = hand_boxes(keypoints, image_hw)
        hands = np.zeros((n, 2, HAND_KEYPOINTS, 3))
        for (person, side, x, y, s), maps in zip(boxes_h, hand_maps(image, boxes_h,
                                                                   hand_network), strict=True):
            crop_hw = image[y:y + s, x:x + s].shape[:2]
            peaks = hand_peaks(maps, crop_hw)
            hands[person, side] = np.where(peaks[:, 2:] != 0, peaks + [x, y, 0], 0.0)
    if face_network is not None:
        boxes_f = face_boxes(keypoints, image_hw)
        face, background = np.zeros((n, FACE_KEYPOINTS, 3)), np.zeros((n, 3))
        for (person, x, y, _), maps in zip(boxes_f, face_maps(image, boxes_f, face_network),
                                           strict=True):
            peaks, found = face_peaks(maps)
            peaks = np.where(found[:, None], peaks + [x, y, 0], 0.0)
            face[person], background[person] = peaks[:FACE_KEYPOINTS], peaks[FACE_KEYPOINTS]
    return HandsFace(hands, face, boxes_h, boxes_f, background)


def with_hands_face(image: np.ndarray, people, hand_network: Network | None = None,
                    face_network: Network | None = None):
    """``people`` (``rtpose.people.People`` found in the BGR uint8 ``image``) with their hands
    and face from ``detect_hands_face``; as given when neither network is."""
    if hand_network is None and face_network is None:
        return people
    found = detect_hands_face(image, people.keypoints, hand_network, face_network)
    return people.with_hands_face(found.hands, found.face)


def part_settings(runtime: str, precision: str) -> tuple[str, str]:
    """The runtime and precision of the hand and face networks beside a body network on
    ``runtime`` (``auto`` resolved) at ``precision``: the body's on keras and openvino, else
    openvino at fp32."""
    from rtpose.runtime import resolve_runtime

    runtime = resolve_runtime(runtime, precision)
    return (runtime, precision) if runtime in ("keras", "openvino") else ("openvino", "fp32")


def part_networks(hands: bool, face: bool, runtime: str = "openvino", precision: str = "fp32",
                  threads: int | None = None, verbose: bool = False,
                  calibration: str | Path | None = None) -> tuple[Network | None, Network | None]:
    """The hand and face networks asked for (None for the others), with the weights the store
    finds (``rtpose.store``), on the body's ``runtime`` (keras, else openvino) and
    ``precision`` (int8 calibrated on the crops of ``calibration``, a folder of annotated COCO
    training images: ``rtpose.runtime.calibration.PartCalibration``); missing weights are one
    line saying how to get them."""
    from rtpose.native import quiet_native_stderr
    from rtpose.runtime.part_runtime import part_network

    runtime, precision = part_settings(runtime, precision)
    with quiet_native_stderr(not verbose):
        return tuple(part_network(name, None, runtime, precision, threads, calibration)
                     if wanted else None for name, wanted in (("hand", hands), ("face", face)))


def part_networks_from_args(args, threads: int | None = None
                            ) -> tuple[Network | None, Network | None]:
    """``part_networks`` of ``--hands``, ``--face``, ``--runtime``, ``--precision``,
    ``--verbose`` and ``--calibration``."""
    return part_networks(args.hands, args.face, args.runtime, getattr(args, "precision", "fp32"),
                         threads, getattr(args, "verbose", False),
                         getattr(args, "calibration", None))


def add_hands_face_args(parser) -> None:
    """``--hands`` and ``--face``."""
    parser.add_argument("--hands", action="store_true",
                        help="also the hands (OpenPose's hand network on boxes from the body; "
                        "bash model/get_cmu_model.sh --hands --no-body)")
    parser.add_argument("--face", action="store_true",
                        help="also the face (OpenPose's face network; "
                        "bash model/get_cmu_model.sh --face --no-body)")


def draw_hands_face(image: np.ndarray, people) -> np.ndarray:
    """``image`` with the people's hands (edges in 20 hues, blue points) and face (white dots)
    drawn as ControlNet draws them: drawn on ``image`` itself, which is returned."""
    from rtpose.controlnet import Keypoint, draw_facepose, draw_handpose

    height, width = image.shape[:2]

    def points(array: np.ndarray) -> list:
        return [Keypoint(x / width, y / height) if c != 0 else Keypoint(-1.0, -1.0)
                for x, y, c in array.tolist()]

    for i in range(len(people)):
        for side in range(2 if people.hands is not None else 0):
            image = draw_handpose(image, points(people.hands[i, side]))
        if people.face is not None:
            image = draw_facepose(image, points(people.face[i]))
    return image
