"""The Keras model as one compiled TensorFlow graph for every input size.

The forward pass is traced once into a ``tf.function`` whose input signature leaves batch, H and
W free, so every image size and scale reuses one optimised graph, with no ``model.predict``
overhead. XLA (``jit_compile=True``) is kept for measuring only: on a CPU it is many times slower
for MobileNet-thin's depthwise convolutions and no faster for CMU (``benchmarks/network.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

from rtpose.runtime.network import RuntimeUnavailableError, split_outputs

if TYPE_CHECKING:
    from rtpose.models import Architecture


class KerasNetwork:
    """A ``rtpose.runtime.Network`` running a Keras testing model of ``arch``."""

    def __init__(self, model: keras.Model, arch: Architecture, jit_compile: bool = False):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeUnavailableError(
                f"the keras runtime compiles with TensorFlow, but the Keras backend is "
                f"{keras.backend.backend()} (set KERAS_BACKEND=tensorflow)")
        import tensorflow as tf

        self.runtime = "xla" if jit_compile else "keras"
        self.architecture = arch.name
        self.stride = arch.stride
        self._arch = arch
        signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="image")]
        self._forward = tf.function(
            lambda image: tf.nest.flatten(model(image, training=False)),
            input_signature=signature, jit_compile=jit_compile)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._forward(np.asarray(batch, dtype=np.float32))
        return split_outputs(self._arch, [t.numpy() for t in outputs])
