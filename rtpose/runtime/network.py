"""The network contract that every runtime implements, without importing any runtime.

A *network* maps a padded batch, float32 BGR 0..255 ``(N, H, W, 3)`` (H and W multiples of
``stride``; see ``rtpose.geometry``; N is 1, or 2 for flip averaging: an input and its mirror),
to ``(heat, paf)``: heatmaps ``(N, H/stride, W/stride, 19)`` and PAFs
``(N, H/stride, W/stride, 38)``, float32, C-contiguous numpy. Resizing and padding
stay outside, in OpenCV: TensorFlow's bicubic resize is not OpenCV's ``INTER_CUBIC``, so
compiling it in would change the maps.

A network may also run batches asynchronously (``AsyncNetwork``, e.g. OpenVINO's):
``submit(batch)`` starts it and returns at once; the pending batch's ``result()`` waits for
``(heat, paf)``, after which its ``network_s`` says how long the network spent on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rtpose.errors import RtposeError

if TYPE_CHECKING:
    from rtpose.models import Architecture


class RuntimeUnavailableError(RtposeError):
    """A runtime is unknown, or cannot load or run the model."""


class Network(Protocol):
    """``network(batch) -> (heat, paf)``; ``runtime``: its name; ``architecture``: the
    architecture's name; ``stride``: its output stride (the architecture's)."""

    runtime: str
    architecture: str
    stride: int

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def split_outputs(arch: Architecture,
                  outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(heat, paf) as contiguous float32 from a model's outputs in the model's order."""
    heat, paf = arch.split_outputs(outputs[0] if len(outputs) == 1 else list(outputs))
    return (np.ascontiguousarray(heat, dtype=np.float32),
            np.ascontiguousarray(paf, dtype=np.float32))


class PendingMaps(Protocol):
    """A batch submitted to an ``AsyncNetwork``."""

    network_s: float

    def result(self) -> tuple[np.ndarray, np.ndarray]: ...


class AsyncNetwork(Network, Protocol):
    """A ``Network`` that can also start a batch and return before its maps are computed."""

    def submit(self, batch: np.ndarray) -> PendingMaps: ...
