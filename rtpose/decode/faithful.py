"""The faithful decoder: the original algorithm's steps on full-size maps.

Every scale's outputs are up-sampled to the image (``rtpose.geometry.upsample_maps``) and
averaged in float64 (``average_maps``); peaks are found on the averaged heatmaps and associated
through the averaged PAFs (``people_from_maps``).

Those full-size maps cost H x W x 57 float64 values (456 bytes a pixel) and as much again in
float32 while up-sampling: an image of more than ``MAX_PIXELS`` pixels is refused
(``check_image_size``); the fast decoder finds the same people at any size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.decode.association import group_peaks
from rtpose.decode.peaks import find_peaks
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry, upsample_maps
from rtpose.people import People
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS

MAX_PIXELS = 8_000_000  # 3.6 GB of float64 maps, about 5 GB at the peak


def check_image_size(height: int, width: int) -> None:
    """``RtposeError`` when a ``height`` x ``width`` image is over ``MAX_PIXELS``."""
    if height * width > MAX_PIXELS:
        gigabytes = height * width * (NUM_HEATMAPS + NUM_PAFS) * 8 / 1e9
        raise RtposeError(f"the faithful decoder needs {gigabytes:.1f} GB of full-size maps for "
                          f"a {width} x {height} image, over its bound of {MAX_PIXELS:,} pixels: "
                          "use --decoder fast (the same people), or a smaller image")


def average_maps(
    outputs: Sequence[tuple[np.ndarray, np.ndarray]], geometry: Geometry
) -> tuple[np.ndarray, np.ndarray]:
    """Per scale (heatmaps (h, w, 19), PAFs (h, w, 38)) → float64 heatmaps (H, W, 19) and PAFs
    (H, W, 38) in the image frame, averaged over the scales."""
    if len(outputs) != geometry.n_scales:
        raise ValueError(f"need one pad per scale, got {len(outputs)} outputs and "
                         f"{geometry.n_scales} pads")
    height, width = geometry.image_hw
    check_image_size(height, width)
    heat_avg = np.zeros((height, width, outputs[0][0].shape[-1]), dtype=np.float64)
    paf_avg = np.zeros((height, width, outputs[0][1].shape[-1]), dtype=np.float64)
    n = np.float32(geometry.n_scales)
    for (heat, paf), pad in zip(outputs, geometry.pads, strict=True):
        for average, maps in ((heat_avg, heat), (paf_avg, paf)):
            upsampled = upsample_maps(maps, pad, geometry.image_hw, geometry.stride)
            # Divide in float32 and add in float64, as the original did.
            upsampled /= n
            average += upsampled
    return heat_avg, paf_avg


def people_from_maps(
    heatmaps: np.ndarray, pafs: np.ndarray, params: GroupingParams = CMU_GROUPING
) -> tuple[list[np.ndarray], People]:
    """(peaks, people) from heatmaps (H, W, 19) and PAFs (H, W, 38) in the image frame."""
    peaks = find_peaks(heatmaps, params.thre1)
    return peaks, group_peaks(peaks, pafs, params)
