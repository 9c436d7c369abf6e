"""The Keras model, compiled by the backend Keras runs on (``KERAS_BACKEND``).

- ``tensorflow``: the forward pass traced once into a ``tf.function`` whose input signature leaves
  batch, H and W free, so every image size and scale reuses one optimised graph, with no
  ``model.predict`` overhead. XLA (``jit_compile=True``) is kept for measuring only: on a CPU it
  is many times slower for MobileNet-thin's depthwise convolutions and no faster for CMU
  (``benchmarks/network.py``).
- ``jax``: ``jax.jit`` of the model's stateless call, compiled once per input shape (a video's
  frames share one; each new image size compiles again).
- ``torch``: the model called under ``torch.inference_mode`` (``torch.compile`` is not used,
  and not measured: ``benchmarks/network.py --backend`` times this call on each backend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from rtpose.runtime.network import RuntimeUnavailableError, split_outputs

if TYPE_CHECKING:
    from rtpose.models import Architecture

BACKENDS = ("tensorflow", "jax", "torch")


class KerasNetwork:
    """A ``rtpose.runtime.Network`` running a Keras testing model of ``arch`` on Keras's
    backend (``jit_compile``: XLA, on TensorFlow only)."""

    def __init__(self, model: keras.Model, arch: Architecture, jit_compile: bool = False):
        self.backend = keras.backend.backend()
        if self.backend not in BACKENDS:
            raise RuntimeUnavailableError(
                f"the keras runtime runs on {', '.join(BACKENDS)}, not on the "
                f"{self.backend} backend (set KERAS_BACKEND)")
        if jit_compile and self.backend != "tensorflow":
            raise RuntimeUnavailableError("XLA compilation is measured on TensorFlow only")
        self.runtime = "xla" if jit_compile else "keras"
        self.architecture = arch.name
        self.stride = arch.stride
        self._arch = arch
        builders = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
        self._forward = builders[self.backend](model, jit_compile)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return split_outputs(self._arch, self._forward(np.asarray(batch, dtype=np.float32)))

    @property
    def traces(self) -> int | None:
        """How many graphs TensorFlow has traced for the forward pass (1 for every size and
        scale); ``None`` on JAX and PyTorch, which keep no such count."""
        graph = getattr(self._forward, "graph", None)
        return None if graph is None else graph.experimental_get_tracing_count()


def _tensorflow(model: keras.Model, jit_compile: bool) -> Callable[[np.ndarray], Sequence]:
    import tensorflow as tf

    signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="image")]
    graph = tf.function(lambda image: tf.nest.flatten(model(image, training=False)),
                        input_signature=signature, jit_compile=jit_compile)

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        return [t.numpy() for t in graph(batch)]

    forward.graph = graph  # the traced tf.function, for inspection
    return forward


def _jax(model: keras.Model, jit_compile: bool) -> Callable[[np.ndarray], Sequence]:
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, image):
        outputs, _ = model.stateless_call(trainable, non_trainable, image, training=False)
        return jax.tree_util.tree_leaves(outputs)

    return lambda batch: [np.asarray(t) for t in forward(trainable, non_trainable, batch)]


def _torch(model: keras.Model, jit_compile: bool) -> Callable[[np.ndarray], Sequence]:
    import torch

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = model(torch.from_numpy(batch), training=False)
        return [t.detach().cpu().numpy() for t in keras.tree.flatten(outputs)]

    return forward
