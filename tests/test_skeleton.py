"""The skeleton's invariants: the one table that encoder, decoder, drawing and COCO share."""

from __future__ import annotations

from collections import Counter

from rtpose.skeleton import (
    COCO_KEYPOINTS,
    COCO_TO_CMU,
    COLORS,
    DECODE_ORDER,
    FLIP_PERMUTATION,
    LIMBS,
    NUM_LIMBS,
    NUM_PAFS,
    NUM_PARTS,
    NUM_TREE_LIMBS,
    PAF_CHANNELS,
    PARTS,
)


def test_the_19_limbs_use_the_38_paf_channels_exactly_once():
    channels = [c for pair in PAF_CHANNELS for c in pair]
    assert len(PAF_CHANNELS) == len(LIMBS) == NUM_LIMBS == 19
    assert sorted(channels) == list(range(NUM_PAFS)) == list(range(38))
    assert all(y == x + 1 for x, y in PAF_CHANNELS)  # x then y, per limb


def test_limbs_join_distinct_parts_and_span_the_body():
    assert all(a != b and 0 <= a < NUM_PARTS and 0 <= b < NUM_PARTS for a, b in LIMBS)
    assert len(set(LIMBS)) == NUM_LIMBS
    # The first NUM_TREE_LIMBS of the decode order form a spanning tree of the 18 parts.
    tree = [LIMBS[i] for i in DECODE_ORDER[:NUM_TREE_LIMBS]]
    parent = list(range(NUM_PARTS))

    def root(p):
        while parent[p] != p:
            p = parent[p]
        return p

    for a, b in tree:
        assert root(a) != root(b)  # no cycle
        parent[root(a)] = root(b)
    assert len({root(p) for p in range(NUM_PARTS)}) == 1
    assert sorted(DECODE_ORDER) == list(range(NUM_LIMBS)) and len(COLORS) == NUM_PARTS


def test_flip_pairs_are_an_involution_that_swaps_left_and_right():
    assert sorted(FLIP_PERMUTATION) == list(range(NUM_PARTS))
    assert all(FLIP_PERMUTATION[FLIP_PERMUTATION[p]] == p for p in range(NUM_PARTS))
    mirror = {"left": "right", "right": "left"}
    for part, name in enumerate(PARTS):
        side, _, rest = name.partition("_")
        expected = f"{mirror[side]}_{rest}" if side in mirror else name
        assert PARTS[FLIP_PERMUTATION[part]] == expected
    # A flip maps every limb onto a limb (in one direction or the other).
    limbs = set(LIMBS)
    for a, b in LIMBS:
        fa, fb = FLIP_PERMUTATION[a], FLIP_PERMUTATION[b]
        assert (fa, fb) in limbs or (fb, fa) in limbs


def test_coco_mapping_names_each_of_the_17_keypoints_once():
    assert len(COCO_KEYPOINTS) == 17 and len(set(COCO_TO_CMU)) == 17
    assert [PARTS[i] for i in COCO_TO_CMU] == list(COCO_KEYPOINTS)
    assert Counter(range(NUM_PARTS)) - Counter(COCO_TO_CMU) == Counter([PARTS.index("neck")])
