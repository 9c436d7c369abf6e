"""Network runtimes: one ``Network`` contract (``rtpose.runtime.network``), one adapter per runtime.

``make_network(model, arch, runtime)`` compiles a Keras testing model of ``arch``
(``rtpose.models.Architecture``) for ``runtime`` (``RUNTIMES``):

- ``keras`` (default): one TensorFlow graph for every input size (``keras_runtime``);
- ``onnx``: the model exported to ONNX and run by onnxruntime, the export cached beside the
  weights (``onnx_runtime``).

``export`` writes SavedModel, ONNX and TFLite files. Importing this package imports no runtime:
each is loaded when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rtpose.runtime.network import Network, RuntimeUnavailableError

if TYPE_CHECKING:
    import keras

    from rtpose.models import Architecture

RUNTIMES = ("keras", "onnx")

__all__ = ["RUNTIMES", "Network", "RuntimeUnavailableError", "make_network"]


def make_network(
    model: keras.Model,
    arch: Architecture,
    runtime: str = "keras",
    weights: str | Path | None = None,
    threads: int | None = None,
) -> Network:
    """A fast ``network(batch) -> (heat, paf)`` for a testing model of ``arch``.

    ``runtime``: one of ``RUNTIMES``. ``weights``: the file the model's weights came from; the
    onnx runtime caches its export beside it. ``threads``: onnxruntime's intra-op threads
    (default: one per core); TensorFlow's default already uses every core.
    """
    if runtime == "keras":
        from rtpose.runtime.keras_runtime import KerasNetwork

        return KerasNetwork(model, arch)
    if runtime == "onnx":
        from rtpose.runtime.onnx_runtime import OnnxNetwork, import_onnxruntime, onnx_file

        import_onnxruntime()
        return OnnxNetwork(onnx_file(model, weights), arch, threads)
    raise RuntimeUnavailableError(
        f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
