"""Maps to people: the one decoding contract.

    peaks, people = decode(outputs, geometry, params, method="fast")

``outputs``: per scale the network's (heatmaps (h, w, 19), PAFs (h, w, 38)) at its stride,
batch axis removed; ``geometry``: where they sit in the image (``rtpose.geometry.Geometry``);
``params``: ``rtpose.config.GroupingParams``. Returns per part an (n, 3) array of every peak
(x, y, averaged heatmap value) and the ``People``.

Methods (``METHODS``), with the same peaks and people:

- ``fast`` (``rtpose.decode.lowres``): peaks and PAF samples computed straight from the
  low-resolution outputs, without up-sampling any map;
- ``faithful`` (``rtpose.decode.faithful``): the original's steps on full-size maps.

Inside: ``peaks`` (heatmap peaks), ``association`` (PAF scoring and grouping), ``operators``
and ``lowres`` (the fast method's matrices). A ``Stopwatch`` passed as ``clock`` records each
stage's time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.decode import faithful, lowres
from rtpose.decode.association import group_peaks
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry
from rtpose.people import People

METHODS = ("fast", "faithful")
# Stage names, per method: the first stage prepares the maps (up-sampling, or the lookup or
# construction of the low-resolution operators).
STAGES = ("maps", "peaks", "association")


class Stopwatch:
    """Seconds per stage: ``lap(name)`` adds the time since the previous lap to ``laps[name]``."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._last = time.perf_counter()

    def restart(self) -> None:
        """Count the next lap from now."""
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def decode(
    outputs: Sequence[tuple[np.ndarray, np.ndarray]],
    geometry: Geometry,
    params: GroupingParams = CMU_GROUPING,
    method: str = "fast",
    clock: Stopwatch | None = None,
) -> tuple[list[np.ndarray], People]:
    """(peaks, people) of one image's network outputs; see the module docstring."""
    if method not in METHODS:
        raise RtposeError(f"unknown decoder {method!r}; choose one of {', '.join(METHODS)}")
    clock = clock or Stopwatch()
    clock.restart()
    if method == "faithful":
        heatmaps, pafs = faithful.average_maps(outputs, geometry)
        clock.lap("maps")
        peaks = faithful.find_peaks(heatmaps, params.thre1)
        clock.lap("peaks")
        people = group_peaks(peaks, pafs, params)
        clock.lap("association")
        return peaks, people
    with lowres.single_threaded_blas():
        ops = lowres.operators_for([h for h, _ in outputs], geometry)
        clock.lap("maps")
        peaks = lowres.find_peaks_lowres(ops, [h for h, _ in outputs], params.thre1)
        clock.lap("peaks")
        people = group_peaks(peaks, lowres.LowResPafs(ops, [p for _, p in outputs]), params)
        clock.lap("association")
    return peaks, people
