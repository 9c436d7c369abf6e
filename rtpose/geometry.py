"""Image geometry: how an image is fed to the network, and how its outputs map back to its pixels.

The one place that states the convention (the original demo's). Per scale ``m`` of
``InferenceParams.scales``:

1. resize the image by ``f = m * boxsize / image_height`` (``cv2.resize`` with ``fx = fy = f``,
   bicubic), then pad right and down with ``pad_value`` to a multiple of the network's
   ``stride`` (fixed by the architecture: ``rtpose.models.Architecture.stride``, 8 for both);
2. the network sees that input as float32 NHWC BGR 0..255, batch 1, and returns heatmaps
   (h, w, 19) and PAFs (h, w, 38) with h = padded height / stride, w = padded width / stride.
   With ``InferenceParams.flip`` the batch holds two inputs, the padded input and its mirror
   (padding included, so that the padding sits on the left there): output column j of the
   mirror then covers the input columns of column w - 1 - j, exactly, and ``merge_mirrored``
   averages the first outputs with the second's turned back (``mirror_maps``), still at the
   network's resolution;
3. back to the image: resize the outputs by ``stride`` (bicubic), crop the padding off, resize to
   the image's (W, H) (bicubic); then average over the scales, in float64.

``Geometry`` records what step 3 needs for one image (its size, the stride, every scale's pads)
and is what the decoders (``rtpose.decode``) receive beside the outputs.

Pixel convention: a keypoint (x, y) is in the original image's pixels, x to the right and y down;
integer values are pixel centres, as the original's peak pixels were (pixel (0, 0) covers
-0.5..0.5 on both axes). The mirror of x in an image W pixels wide is W - 1 - x. Sub-pixel
keypoints (``GroupingParams.refine``) are real values in the same frame: x = 2.3 is 0.3 pixel
right of pixel 2's centre.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from rtpose.config import CMU_INFERENCE, InferenceParams
from rtpose.errors import RtposeError
from rtpose.skeleton import FLIP_HEATMAP_PERMUTATION, FLIP_PAF_PERMUTATION, FLIP_PAF_SIGNS

MAX_INPUT_PIXELS = 4_000_000  # default bound on one scale's network input (see network_inputs)


@dataclass(frozen=True)
class Geometry:
    """Where one image's network outputs sit: ``image_hw`` (H, W) of the image, the network's
    ``stride``, and per scale ``pads`` (pad_down, pad_right) of its input."""

    image_hw: tuple[int, int]
    pads: tuple[tuple[int, int], ...]
    stride: int

    def __post_init__(self) -> None:
        if not self.pads:
            raise ValueError("a geometry needs at least one scale")

    @property
    def n_scales(self) -> int:
        return len(self.pads)


def scale_factors(image_height: int, params: InferenceParams = CMU_INFERENCE) -> list[float]:
    """Resize factor of each scale: ``m * boxsize / image_height``."""
    return [m * params.boxsize / image_height for m in params.scales]


def prepare_input(
    image: np.ndarray, factor: float, stride: int, pad_value: int = CMU_INFERENCE.pad_value
) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize a BGR (H, W, 3) image by ``factor`` and pad it right and down to a multiple of
    ``stride``. Returns the padded image (same dtype) and ``(pad_down, pad_right)``."""
    resized = cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    h, w = resized.shape[:2]
    pad_down = -h % stride
    pad_right = -w % stride
    padded = cv2.copyMakeBorder(
        resized, 0, pad_down, 0, pad_right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return padded, (pad_down, pad_right)


def input_size(image_hw: tuple[int, int], factor: float) -> tuple[int, int]:
    """(h, w) of the image resized by ``factor``, before padding (``cv2.resize``'s rounding)."""
    return round(image_hw[0] * factor), round(image_hw[1] * factor)


def network_inputs(
    image: np.ndarray, params: InferenceParams, stride: int,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """Per scale, the network input (1, h, w, 3) float32 and its (pad_down, pad_right); with
    ``params.flip``, (2, h, w, 3): the input and its mirror (see step 2 above).

    Raises ``RtposeError`` before resizing when a scale's input would be empty or exceed
    ``max_pixels`` (an extreme aspect ratio blows the width up: a 4 x 3000 image at boxsize
    368 would be 368 x 276,000)."""
    height, width = image.shape[:2]
    for factor in scale_factors(height, params):
        h, w = input_size((height, width), factor)
        if min(h, w) < 1:
            raise RtposeError(
                f"scale {factor * height / params.boxsize:g} makes the {width}x{height} image "
                f"{w}x{h} pixels: too small for the network")
        if h * w > max_pixels:
            raise RtposeError(
                f"the {width}x{height} image would be fed to the network as {w}x{h} pixels "
                f"(over --max-pixels {max_pixels:,}); crop or resize it, or raise --max-pixels")
        padded, pad = prepare_input(image, factor, stride, params.pad_value)
        batch = [padded, padded[:, ::-1]] if params.flip else [padded]
        yield np.stack(batch).astype(np.float32), pad


def mirror_maps(heatmaps: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (..., w, 19) and PAFs (..., w, 38) of a mirrored image turned back to the
    image's frame, or the image's into the mirror's (the operation is its own inverse):
    columns reversed, left and right parts swapped, and each limb's PAF moved to its mirrored
    limb, x negated (``rtpose.skeleton``'s flip tables)."""
    heat = np.asarray(heatmaps)[..., ::-1, :][..., FLIP_HEATMAP_PERMUTATION]
    paf = np.asarray(pafs)[..., ::-1, :][..., FLIP_PAF_PERMUTATION]
    return heat, paf * np.asarray(FLIP_PAF_SIGNS, dtype=paf.dtype)


def merge_mirrored(heatmaps: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's outputs (2, h, w, C) for an input and its mirror (``network_inputs`` with
    ``flip``) → their mean (h, w, C) in the input's frame, float32."""
    back_heat, back_paf = mirror_maps(heatmaps[1], pafs[1])
    return ((np.float32(0.5) * (heatmaps[0] + back_heat)).astype(np.float32),
            (np.float32(0.5) * (pafs[0] + back_paf)).astype(np.float32))


def upsample_maps(
    maps: np.ndarray, pad: tuple[int, int], image_hw: Sequence[int], stride: int
) -> np.ndarray:
    """One scale's network output (h, w, C) → (H, W, C) float32 in the image frame (step 3)."""
    maps = np.asarray(maps, dtype=np.float32)
    up = cv2.resize(maps, (0, 0), fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)
    pad_down, pad_right = pad
    up = up[: up.shape[0] - pad_down, : up.shape[1] - pad_right]
    height, width = image_hw[:2]
    return cv2.resize(up, (width, height), interpolation=cv2.INTER_CUBIC).reshape(
        height, width, maps.shape[-1])


def upsampling_matrix(n_low: int, pad: int, n_full: int, stride: int) -> np.ndarray:
    """(n_full, n_low): one axis of ``upsample_maps`` as a matrix (it is linear and separable):
    bicubic resize by ``stride``, crop of ``pad`` samples at the end, bicubic resize to
    ``n_full``. Built by pushing an identity through the same ``cv2.resize`` calls, so it holds
    OpenCV's own weights."""
    # Resizing an image to (same width, new height) resamples its columns only, so the
    # identity's columns come out as the responses to each input row.
    eye = np.eye(n_low, dtype=np.float64)
    up = cv2.resize(eye, (n_low, n_low * stride), interpolation=cv2.INTER_CUBIC)
    up = up[: up.shape[0] - pad]
    return cv2.resize(up, (n_low, n_full), interpolation=cv2.INTER_CUBIC).reshape(n_full, n_low)
