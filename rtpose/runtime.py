"""Fast network calls: one compiled forward pass per model behind a numpy-in, numpy-out callable.

A *network* maps a padded batch, float32 BGR 0..255 ``(1, H, W, 3)`` (H and W multiples of 8),
to ``(heat, paf)``: heatmaps ``(1, H/8, W/8, 19)`` and PAFs ``(1, H/8, W/8, 38)``, float32,
C-contiguous numpy (``rtpose.inference.Network``). Resizing and padding stay outside, in
OpenCV: TensorFlow's bicubic resize is not OpenCV's ``INTER_CUBIC`` (other kernel, other
antialiasing), so compiling it in would change the maps.

Runtimes (``RUNTIMES``):

- ``keras`` (default): the Keras model traced once into a ``tf.function`` whose input signature
  leaves batch, H and W free, so every image size and scale reuses one optimised graph; no
  ``model.predict`` overhead.
- ``onnx``: the model exported to ONNX (``rtpose.export``, free batch, H and W) and run by
  onnxruntime on the CPU with all graph optimisations. The export is cached beside the
  weights (``model/keras/mobilenet_thin.onnx`` for ``model/keras/mobilenet_thin.weights.h5``)
  and redone when the weights file is newer or the folder holds none; without a weights path,
  or when that folder is read-only, it goes to a temporary folder for the life of the process.

XLA (``KerasNetwork(..., jit_compile=True)``) is kept for measuring only: on CPU it is many
times slower for MobileNet-thin's depthwise convolutions and no faster for CMU
(``benchmarks/network.py``).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from rtpose.errors import RtposeError
from rtpose.export import export_model

RUNTIMES = ("keras", "onnx")


class RuntimeUnavailableError(RtposeError):
    """A runtime is unknown, or cannot load or run the model."""


class Architecture(Protocol):
    """What a network needs of ``rtpose.models.Architecture``."""

    name: str

    def split_outputs(self, outputs: Any) -> tuple[Any, Any]: ...


class Network(Protocol):
    """``network(batch) -> (heat, paf)``; see the module docstring for the shapes."""

    runtime: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _split(arch: Architecture, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(heat, paf) as contiguous float32 from the model's outputs in the model's order."""
    heat, paf = arch.split_outputs(outputs[0] if len(outputs) == 1 else list(outputs))
    return (np.ascontiguousarray(heat, dtype=np.float32),
            np.ascontiguousarray(paf, dtype=np.float32))


class KerasNetwork:
    """The Keras model as one TensorFlow graph for every input size (XLA if ``jit_compile``;
    XLA then compiles once per input shape)."""

    def __init__(self, model: keras.Model, arch: Architecture, jit_compile: bool = False):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeUnavailableError(
                f"the keras runtime compiles with TensorFlow, but the Keras backend is "
                f"{keras.backend.backend()} (set KERAS_BACKEND=tensorflow)")
        import tensorflow as tf

        self.runtime = "xla" if jit_compile else "keras"
        self.arch = arch
        signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="image")]
        self._forward = tf.function(
            lambda image: tf.nest.flatten(model(image, training=False)),
            input_signature=signature, jit_compile=jit_compile)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._forward(np.asarray(batch, dtype=np.float32))
        return _split(self.arch, [t.numpy() for t in outputs])


class OnnxNetwork:
    """An ONNX file of the model run by onnxruntime on the CPU (``threads``: intra-op threads,
    ``None`` for onnxruntime's default, one per physical core)."""

    runtime = "onnx"

    def __init__(self, path: str | Path, arch: Architecture, threads: int | None = None):
        ort = _import_onnxruntime()
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidGraph,
            InvalidProtobuf,
            NoSuchFile,
        )

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"])
        except (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile) as e:
            raise RuntimeUnavailableError(
                f"{path}: onnxruntime cannot load it: {_first_line(e)}") from e
        self._input = self._session.get_inputs()[0].name
        self.arch = arch
        self.path = Path(path)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._session.run(None, {self._input: np.asarray(batch, dtype=np.float32)})
        return _split(self.arch, outputs)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise RuntimeUnavailableError(
            "the onnx runtime needs onnxruntime and tf2onnx: pip install onnxruntime tf2onnx"
        ) from e
    return onnxruntime


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def onnx_cache_path(weights: str | Path) -> Path:
    """Where the ONNX export of a weights file is cached: beside it, ``<stem>.onnx``."""
    weights = Path(weights)
    stem = weights.name.removesuffix(".h5").removesuffix(".weights")
    return weights.with_name(f"{stem}.onnx")


def onnx_file(model: keras.Model, weights: str | Path | None = None) -> Path:
    """The model's ONNX file: the cache beside ``weights`` if it is newer than them, else a
    fresh export there (or, without ``weights`` or a writable folder, in a temporary folder
    removed when the process exits)."""
    if weights is not None:
        cache = onnx_cache_path(weights)
        if cache.is_file() and cache.stat().st_mtime >= Path(weights).stat().st_mtime:
            return cache
        if os.access(cache.parent, os.W_OK):
            return export_model(model, "onnx", cache)
    folder = tempfile.mkdtemp(prefix="rtpose-onnx-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return export_model(model, "onnx", Path(folder) / f"{model.name}.onnx")


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
        return KerasNetwork(model, arch)
    if runtime == "onnx":
        _import_onnxruntime()
        return OnnxNetwork(onnx_file(model, weights), arch, threads)
    raise RuntimeUnavailableError(
        f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """``--runtime`` for scripts that run a network (pass ``args.runtime`` to make_network)."""
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default="keras",
        help="keras: compiled TensorFlow graph (default); onnx: onnxruntime, the model "
             "exported once and cached beside the weights as <name>.onnx")
