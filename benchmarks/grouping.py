"""Time the vectorised grouping against the plain-loop version of the original algorithm.

    python -m benchmarks.grouping [--repeats 3] [--size 480x640]

On synthetic maps (``tests/synthetic.py``) of 1, 5 and 20 people, times peak finding and limb
association (scoring, matching, merging) of ``rtpose.decode`` and of
``tests/reference_grouping.py``, checks that both return the same people, and prints the
times and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.machine import machine_header
from rtpose.decode.association import group_peaks
from rtpose.decode.peaks import find_peaks
from tests.reference_grouping import find_peaks_loops, group_peaks_loops
from tests.synthetic import random_people, render_maps


def best_time(repeats: int, function, *args):
    """(fastest wall time in seconds, last result) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--size", default="480x640", help="map size HxW (default 480x640)")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.size.split("x"))

    print(f"{machine_header()}\nmaps {shape[0]}x{shape[1]}, best of {args.repeats}")
    print(f"{'people':>6} {'found':>5} | {'peaks: loops':>12} {'numpy':>8} {'ratio':>6} | "
          f"{'association: loops':>18} {'numpy':>8} {'ratio':>6}")
    for n in (1, 5, 20):
        rng = np.random.default_rng(n)
        truth = random_people(rng, n, shape, jitter=0.02, missing=0.1)
        heatmaps, pafs = render_maps(truth, shape)
        heatmaps64, pafs64 = heatmaps.astype(np.float64), pafs.astype(np.float64)

        loop_peaks_s, loop_peaks = best_time(args.repeats, find_peaks_loops, heatmaps64)
        peaks_s, peaks = best_time(args.repeats, find_peaks, heatmaps64)
        loop_assoc_s, (keypoints, scores, counts) = best_time(
            args.repeats, group_peaks_loops, loop_peaks, pafs64
        )
        assoc_s, people = best_time(args.repeats, group_peaks, peaks, pafs64)

        assert [len(p) for p in peaks] == [len(p) for p in loop_peaks], "peaks differ"
        assert np.array_equal(people.keypoints, keypoints), "people differ"
        assert np.array_equal(people.scores, scores), "scores differ"
        assert np.array_equal(people.part_counts, counts), "part counts differ"
        print(f"{n:>6} {len(people):>5} | {loop_peaks_s:>12.4f} {peaks_s:>8.4f} "
              f"{loop_peaks_s / peaks_s:>6.1f} | {loop_assoc_s:>18.4f} {assoc_s:>8.4f} "
              f"{loop_assoc_s / assoc_s:>6.1f}")


if __name__ == "__main__":
    main()
