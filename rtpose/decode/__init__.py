"""Maps to people: the one decoding contract.

    peaks, people = decode(outputs, geometry, params, decoder="fast")

``outputs``: per scale the network's (heatmaps (h, w, 19), PAFs (h, w, 38)) at its stride,
batch axis removed; ``geometry``: where they sit in the image (``rtpose.geometry.Geometry``);
``params``: ``rtpose.config.GroupingParams``. Returns per part an (n, 3) array of every peak
(x, y, averaged heatmap value) and the ``People``. With ``params.refine``, people are found
from the peak pixels as without it, then every peak and keypoint is reported at its sub-pixel
position (``peaks.subpixel``, the same fit in both decoders, on the smoothed map around the
peak).

Decoders (``DECODERS``), with the same peaks and people:

- ``fast`` (``rtpose.decode.lowres``): peaks and PAF samples computed straight from the
  low-resolution outputs, without up-sampling any map;
- ``faithful`` (``rtpose.decode.faithful``): the original's steps on full-size maps.

Inside: ``peaks`` (heatmap peaks), ``association`` (PAF scoring and grouping), ``operators``
and ``lowres`` (the fast decoder's matrices). A ``Stopwatch`` passed as ``clock`` records each
stage's time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import numpy as np

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.decode import faithful, lowres
from rtpose.decode.association import group_peaks
from rtpose.decode.peaks import peaks_and_patches, subpixel
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry
from rtpose.people import People

DECODERS = ("fast", "faithful")
# Stage names, per decoder: the first stage prepares the maps (up-sampling, or the lookup or
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
    decoder: str = "fast",
    clock: Stopwatch | None = None,
) -> tuple[list[np.ndarray], People]:
    """(peaks, people) of one image's network outputs; see the module docstring."""
    if decoder not in DECODERS:
        raise RtposeError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    clock = clock or Stopwatch()
    clock.restart()
    with contextlib.nullcontext() if decoder == "faithful" else lowres.single_threaded_blas():
        if decoder == "faithful":
            heatmaps, pafs = faithful.average_maps(outputs, geometry)
            clock.lap("maps")
            peaks, patches = peaks_and_patches(heatmaps, params.thre1)
        else:
            ops = lowres.operators_for([h for h, _ in outputs], geometry)
            clock.lap("maps")
            peaks, patches = lowres.peaks_and_patches_lowres(ops, [h for h, _ in outputs],
                                                             params.thre1)
        positions = subpixel(peaks, patches, geometry.image_hw) if params.refine else None
        clock.lap("peaks")
        if decoder == "fast":
            pafs = lowres.LowResPafs(ops, [p for _, p in outputs])
        people = group_peaks(peaks, pafs, params, positions)
        clock.lap("association")
    if positions is not None:  # the peaks at their sub-pixel positions too
        peaks = [np.concatenate([xy, p[:, 2:]], axis=1)
                 for xy, p in zip(positions, peaks, strict=True)]
    return peaks, people
