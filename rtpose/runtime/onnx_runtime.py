"""The model exported to ONNX (``rtpose.runtime.export``, free batch, H and W) and run by
onnxruntime on the CPU with all graph optimisations.

The export is cached beside the weights (``model/keras/mobilenet_thin.onnx`` for
``model/keras/mobilenet_thin.weights.h5``) and redone when the weights file is newer or the
folder holds none; without a weights path, or when that folder is read-only, it goes to a
temporary folder for the life of the process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtpose.errors import first_line
from rtpose.runtime.export import export_model
from rtpose.runtime.network import RuntimeUnavailableError, split_outputs

if TYPE_CHECKING:
    import keras

    from rtpose.models import Architecture


class OnnxNetwork:
    """A ``rtpose.runtime.Network``: an ONNX file of the model run by onnxruntime on the CPU
    (``threads``: intra-op threads, ``None`` for onnxruntime's default, one per physical
    core)."""

    runtime = "onnx"

    def __init__(self, path: str | Path, arch: Architecture, threads: int | None = None):
        ort = import_onnxruntime()
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
                f"{path}: onnxruntime cannot load it: {first_line(e)}") from e
        self._input = self._session.get_inputs()[0].name
        self._arch = arch
        self.architecture = arch.name
        self.stride = arch.stride
        self.path = Path(path)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._session.run(None, {self._input: np.asarray(batch, dtype=np.float32)})
        return split_outputs(self._arch, outputs)


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise RuntimeUnavailableError(
            "the onnx runtime needs onnxruntime and tf2onnx: pip install onnxruntime tf2onnx"
        ) from e
    return onnxruntime


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
