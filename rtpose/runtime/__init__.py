"""Network runtimes: one ``Network`` contract (``rtpose.runtime.network``), one adapter per runtime.

``make_network(model, arch, runtime)`` compiles a Keras testing model of ``arch``
(``rtpose.models.Architecture``) for ``runtime`` (``RUNTIMES``):

- ``keras``: one TensorFlow graph for every input size (``keras_runtime``);
- ``onnx``: the model exported to ONNX and run by onnxruntime, the export cached beside the
  weights (``onnx_runtime``);
- ``openvino``: OpenVINO Runtime at an explicit ``precision`` (fp32, bf16, int8), its IR
  cached beside the weights (``rtpose.runtime.openvino``; the ``openvino`` extra), int8
  calibrated on training images (``calibration``).

``resolve_runtime("auto")``, the scripts' default, picks the fastest runtime on a CPU that
gives the same people (docs/benchmarks.md): ``openvino`` at fp32 where OpenVINO is installed,
else ``keras``. ``export`` writes SavedModel, ONNX and TFLite files. Importing this package
imports no runtime: each is loaded when asked for.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rtpose.runtime.network import Network, RuntimeUnavailableError

if TYPE_CHECKING:
    import keras

    from rtpose.models import Architecture

RUNTIMES = ("keras", "onnx", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")

__all__ = ["PRECISIONS", "RUNTIMES", "Network", "RuntimeUnavailableError", "make_network",
           "resolve_runtime"]
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def resolve_runtime(runtime: str, precision: str = "fp32") -> str:
    """``runtime``, or for ``auto`` the default: ``openvino`` for a precision below fp32, on
    Keras's OpenVINO backend (``KERAS_BACKEND=openvino``: no TensorFlow), or where OpenVINO is
    installed, Keras runs on TensorFlow (``KERAS_BACKEND`` unset or ``tensorflow``) and no
    NVIDIA GPU is present; else ``keras`` (on a GPU, or on the backend the user chose)."""
    if runtime != "auto":
        return runtime
    if precision != "fp32":
        return "openvino"
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "openvino":  # Keras's own OpenVINO backend runs no other runtime
        return "openvino"
    gpu = NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    if backend == "tensorflow" and not gpu and importlib.util.find_spec("openvino") is not None:
        return "openvino"
    return "keras"


def make_network(
    model: keras.Model,
    arch: Architecture,
    runtime: str = "keras",
    weights: str | Path | None = None,
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | Path | None = None,
    hint: str = "latency",
) -> Network:
    """A fast ``network(batch) -> (heat, paf)`` for a testing model of ``arch``.

    ``runtime``: one of ``RUNTIMES``. ``weights``: the file the model's weights came from; the
    onnx runtime caches its export beside it. ``threads``: onnxruntime's intra-op threads
    (default: one per core); TensorFlow's default already uses every core. ``precision``: the
    openvino runtime's (the others compute in fp32 only). ``calibration``: int8's folder of
    training images (default ``calibration.DEFAULT_CALIBRATION``). ``hint``: the openvino
    runtime's performance hint, ``latency`` or ``throughput`` (for frames in flight together).
    """
    if precision not in PRECISIONS:
        raise RuntimeUnavailableError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and runtime != "openvino":
        raise RuntimeUnavailableError(f"the {runtime} runtime computes in fp32 only; "
                                      f"--precision {precision} needs --runtime openvino")
    if runtime == "keras":
        from rtpose.runtime.keras_runtime import KerasNetwork

        return KerasNetwork(model, arch)
    if runtime == "onnx":
        from rtpose.runtime.onnx_runtime import OnnxNetwork, import_onnxruntime, onnx_file

        import_onnxruntime()
        return OnnxNetwork(onnx_file(model, weights), arch, threads)
    if runtime == "openvino":
        from rtpose.runtime.calibration import DEFAULT_CALIBRATION, CalibrationImages
        from rtpose.runtime.openvino.cache import openvino_network

        images = None
        if precision == "int8":  # read only if the int8 IR is converted
            folder = DEFAULT_CALIBRATION if calibration is None else Path(calibration)
            images = CalibrationImages(folder, arch.stride)
        return openvino_network(arch, weights, model, precision, threads, hint,
                                calibration=images)
    raise RuntimeUnavailableError(
        f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
