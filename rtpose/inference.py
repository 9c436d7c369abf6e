"""Multi-scale inference: image in, heatmaps and PAFs in the image's frame out.

Scaling and padding convention (the original demo's), per scale ``m`` of
``InferenceParams.scales``:

1. resize the image by ``f = m * boxsize / image_height`` (``cv2.resize`` with ``fx = fy = f``,
   bicubic), then pad right and down with ``pad_value`` to a multiple of ``stride``;
2. run the network on it: float32 NHWC BGR 0..255, batch 1 → heatmaps (h, w, 19) and PAFs
   (h, w, 38) at stride 8, h = padded height / stride;
3. undo: resize the outputs by ``stride`` (bicubic), crop the padding off, resize to the image's
   (W, H) (bicubic);
4. average over the scales, in float64.

``compute_maps`` does all of it with a network callable; ``upsample_and_average`` does 3-4 for
network outputs computed elsewhere (saved, or from an exported runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from rtpose.config import CMU_INFERENCE, InferenceParams

# A network: batch (1, h, w, 3) float32 BGR 0..255 → (heatmaps (1, h/8, w/8, 19),
# PAFs (1, h/8, w/8, 38)).
Network = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def scale_factors(image_height: int, params: InferenceParams = CMU_INFERENCE) -> list[float]:
    """Resize factor of each scale: ``m * boxsize / image_height``."""
    return [m * params.boxsize / image_height for m in params.scales]


def prepare_input(
    image: np.ndarray, factor: float, params: InferenceParams = CMU_INFERENCE
) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize a BGR (H, W, 3) image by ``factor`` and pad it right and down to a multiple of
    ``stride``. Returns the padded image (same dtype) and ``(pad_down, pad_right)``."""
    resized = cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    h, w = resized.shape[:2]
    pad_down = -h % params.stride
    pad_right = -w % params.stride
    padded = cv2.copyMakeBorder(
        resized, 0, pad_down, 0, pad_right, cv2.BORDER_CONSTANT,
        value=(params.pad_value,) * 3,
    )
    return padded, (pad_down, pad_right)


def upsample_maps(
    maps: np.ndarray, pad: tuple[int, int], image_shape: tuple[int, ...], stride: int = 8
) -> np.ndarray:
    """Network output (h, w, C) at ``stride`` → (H, W, C) float32 in the image frame.

    Resize by ``stride`` (bicubic), crop ``pad = (pad_down, pad_right)`` off the bottom and
    right, resize to the image's (W, H) (bicubic).
    """
    maps = np.asarray(maps, dtype=np.float32)
    up = cv2.resize(maps, (0, 0), fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)
    pad_down, pad_right = pad
    up = up[: up.shape[0] - pad_down, : up.shape[1] - pad_right]
    height, width = image_shape[:2]
    return cv2.resize(up, (width, height), interpolation=cv2.INTER_CUBIC).reshape(
        height, width, maps.shape[-1]
    )


def upsample_and_average(
    outputs_per_scale: Sequence[tuple[np.ndarray, np.ndarray]],
    pads: Sequence[tuple[int, int]],
    image_shape: tuple[int, ...],
    stride: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Average network outputs of several scales in the image frame.

    ``outputs_per_scale``: per scale (heatmaps (h, w, 19), PAFs (h, w, 38)), batch axis
    removed; ``pads``: per scale (pad_down, pad_right) of its input; ``image_shape``: (H, W, ...)
    of the original image. Returns float64 heatmaps (H, W, 19) and PAFs (H, W, 38).
    """
    if len(outputs_per_scale) != len(pads) or not pads:
        raise ValueError(
            f"need one pad per scale, got {len(outputs_per_scale)} outputs and {len(pads)} pads"
        )
    n = len(outputs_per_scale)
    height, width = image_shape[:2]
    heat_avg = np.zeros((height, width, outputs_per_scale[0][0].shape[-1]), dtype=np.float64)
    paf_avg = np.zeros((height, width, outputs_per_scale[0][1].shape[-1]), dtype=np.float64)
    for (heat, paf), pad in zip(outputs_per_scale, pads, strict=True):
        for average, maps in ((heat_avg, heat), (paf_avg, paf)):
            upsampled = upsample_maps(maps, pad, image_shape, stride)
            # Divide in float32 and add in float64, as the original did.
            upsampled /= np.float32(n)
            average += upsampled
    return heat_avg, paf_avg


def run_scales(
    image: np.ndarray, network: Network, params: InferenceParams = CMU_INFERENCE
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[int, int]]]:
    """Run the network at every scale. Returns per scale (heatmaps (h, w, 19), PAFs (h, w, 38))
    and per scale its input's (pad_down, pad_right)."""
    outputs, pads = [], []
    for factor in scale_factors(image.shape[0], params):
        padded, pad = prepare_input(image, factor, params)
        heat, paf = network(padded[np.newaxis].astype(np.float32))
        outputs.append((np.asarray(heat)[0], np.asarray(paf)[0]))
        pads.append(pad)
    return outputs, pads


def compute_maps(
    image: np.ndarray, network: Network, params: InferenceParams = CMU_INFERENCE
) -> tuple[np.ndarray, np.ndarray]:
    """BGR uint8 image (H, W, 3) → heatmaps (H, W, 19) and PAFs (H, W, 38), float64, averaged
    over ``params.scales``."""
    outputs, pads = run_scales(image, network, params)
    return upsample_and_average(outputs, pads, image.shape, params.stride)
