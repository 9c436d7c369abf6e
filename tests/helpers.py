"""Inputs shared by several test modules: the original demo's network input for an image, and
the saved MobileNet-thin outputs on ski.jpg (``original_formats/ski_mobilenet_thin_netout.npz``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtpose.config import InferenceParams
from rtpose.inference import prepare_input, scale_factors
from rtpose.skeleton import NUM_HEATMAPS

SKI_SHAPE = (674, 712, 3)


def demo_input(image: np.ndarray, height: int = 368) -> np.ndarray:
    """The original demo's network input: bicubic resize to ``height``, pad 128 to x8, batch
    of one, float32."""
    padded, _ = prepare_input(image, height / image.shape[0])
    return padded[np.newaxis].astype(np.float32)


def ski_outputs(shared_data: Path, scales: tuple[float, ...]):
    """The saved outputs at ``scales`` as per scale (heatmaps, PAFs), and their input pads."""
    saved = np.load(shared_data / "original_formats" / "ski_mobilenet_thin_netout.npz")
    params = InferenceParams(scales=scales)
    outputs, pads = [], []
    for scale, factor in zip(scales, scale_factors(SKI_SHAPE[0], params), strict=True):
        # Pads follow from resizing the image; a blank image of the ski size gives them.
        padded, pad = prepare_input(np.zeros(SKI_SHAPE, np.uint8), factor, params)
        assert padded.shape[:2] == tuple(saved[f"in_hw_{scale}"])
        raw = saved[f"s{scale}"][0]
        outputs.append((raw[..., :NUM_HEATMAPS], raw[..., NUM_HEATMAPS:]))
        pads.append(pad)
    return outputs, pads
