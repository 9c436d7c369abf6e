"""The CMU COCO body skeleton: parts, limbs, PAF channels, flips and colours.

This module is the single source of truth for every table of the skeleton. The label encoder,
the decoder (grouping), flip augmentation, drawing, converters and the COCO mapping import it.

Conventions
-----------
* Parts are the 18 CMU COCO parts, 0-based, followed by the background channel (index 18).
* ``LIMBS[i]`` is the (part_a, part_b) pair of limb ``i``, in the order of the PAF channels that
  the original training data (``rmpe_dataset_server``) and the CMU network use: limb ``i`` owns
  the PAF channels ``2 * i`` (x component) and ``2 * i + 1`` (y component) of the 38 PAF maps.
* ``DECODE_ORDER`` is the order in which the original demo associated limbs (its ``limbSeq``).
  Greedy association is order dependent, so the decoder follows it to give the original's people.
"""

from __future__ import annotations

PARTS: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_PARTS = len(PARTS)  # 18
BACKGROUND = NUM_PARTS  # heatmap channel 18
NUM_HEATMAPS = NUM_PARTS + 1  # 19

LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (8, 9), (9, 10),  # neck - right hip - right knee - right ankle
    (1, 11), (11, 12), (12, 13),  # neck - left hip - left knee - left ankle
    (1, 2), (2, 3), (3, 4),  # neck - right shoulder - right elbow - right wrist
    (2, 16),  # right shoulder - right ear
    (1, 5), (5, 6), (6, 7),  # neck - left shoulder - left elbow - left wrist
    (5, 17),  # left shoulder - left ear
    (1, 0), (0, 14), (0, 15),  # neck - nose, nose - right eye, nose - left eye
    (14, 16), (15, 17),  # right eye - right ear, left eye - left ear
)
NUM_LIMBS = len(LIMBS)  # 19
NUM_PAFS = 2 * NUM_LIMBS  # 38

# PAF channels (x, y) of each limb, within the 38 PAF maps.
PAF_CHANNELS: tuple[tuple[int, int], ...] = tuple((2 * i, 2 * i + 1) for i in range(NUM_LIMBS))

# The original demo's limbSeq order, as indices into LIMBS. Limbs 0..16 of this order span the
# tree of the body; the last two (shoulder - ear) are redundant connections.
DECODE_ORDER: tuple[int, ...] = (6, 10, 7, 8, 11, 12, 0, 1, 2, 3, 4, 5, 14, 15, 17, 16, 18, 9, 13)
NUM_TREE_LIMBS = 17  # the original only starts new people on the first 17 limbs of DECODE_ORDER

# Left/right pairs, swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17),
)
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    dict([*FLIP_PAIRS, *((b, a) for a, b in FLIP_PAIRS)]).get(p, p) for p in range(NUM_PARTS)
)
# The same for the 19 heatmap channels (the background stays).
FLIP_HEATMAP_PERMUTATION: tuple[int, ...] = (*FLIP_PERMUTATION, BACKGROUND)


def _mirrored_limb(limb: int) -> tuple[int, int]:
    """(index of the mirrored limb, +1 if it runs the same way, -1 if from b to a)."""
    a, b = (FLIP_PERMUTATION[part] for part in LIMBS[limb])
    if (a, b) in LIMBS:
        return LIMBS.index((a, b)), 1
    return LIMBS.index((b, a)), -1


# A mirrored view of limb i is limb FLIP_LIMBS[i]; FLIP_LIMB_DIRECTIONS[i] is -1 where the
# mirrored limb's parts are in the other order (none in this skeleton).
FLIP_LIMBS: tuple[int, ...] = tuple(_mirrored_limb(i)[0] for i in range(NUM_LIMBS))
FLIP_LIMB_DIRECTIONS: tuple[int, ...] = tuple(_mirrored_limb(i)[1] for i in range(NUM_LIMBS))
# PAFs of a mirrored image, turned back: channel c of the image's PAFs is
# FLIP_PAF_SIGNS[c] * channel FLIP_PAF_PERMUTATION[c] of the mirror's PAFs, columns reversed.
# x is negated by the mirror, and both components where the mirrored limb runs the other way.
FLIP_PAF_PERMUTATION: tuple[int, ...] = tuple(
    2 * FLIP_LIMBS[i] + axis for i in range(NUM_LIMBS) for axis in (0, 1))
FLIP_PAF_SIGNS: tuple[int, ...] = tuple(
    sign * FLIP_LIMB_DIRECTIONS[i] for i in range(NUM_LIMBS) for sign in (-1, 1))

# Part colours of the original demo, BGR as OpenCV draws them; limb k of DECODE_ORDER uses
# colour k.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# COCO's 17 keypoints, in COCO order.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# CMU part index of each COCO keypoint (the neck has no COCO keypoint).
COCO_TO_CMU: tuple[int, ...] = tuple(PARTS.index(name) for name in COCO_KEYPOINTS)
NECK = PARTS.index("neck")
LEFT_SHOULDER = PARTS.index("left_shoulder")
RIGHT_SHOULDER = PARTS.index("right_shoulder")

# COCO's per-keypoint OKS constants (sigmas, COCO order), and the same per CMU part; the neck,
# which COCO lacks, takes the shoulders'.
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
PART_SIGMAS: tuple[float, ...] = tuple(
    COCO_SIGMAS[COCO_TO_CMU.index(p)] if p in COCO_TO_CMU else COCO_SIGMAS[5]
    for p in range(NUM_PARTS))
