"""The hand and face networks (``rtpose.models.cmu_hand_face``) on a runtime: ``keras`` or
``openvino`` (fp32 or bf16; int8 is the body's only).

``part_network("hand", weights)`` returns a ``HeatmapNetwork``: ``network(batch) -> heat``, batch
float32 BGR 0..255 ``(N, H, W, 3)`` (H, W multiples of 8; every crop of an image in one batch),
heat float32 C-contiguous ``(N, H/8, W/8, C)`` (C = 22 hand, 71 face). The OpenVINO IR is
converted once and cached beside the weights as the body's is (``<stem>.openvino.xml``, with the
weights' fingerprint; ``rtpose.runtime.openvino.cache``); a fresh cache loads without Keras.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rtpose.errors import ModelNotFoundError, first_line
from rtpose.models import PART_NETWORKS
from rtpose.runtime.network import RuntimeUnavailableError

RUNTIMES = ("keras", "openvino")
PRECISIONS = ("fp32", "bf16")
OUTPUT = "heat"


def fetch_command(network: str) -> str:
    flag = "--hands" if network == "hand" else "--face"
    return f"bash model/get_cmu_model.sh {flag} --no-body"


def how_to_get(network: str) -> str:
    """How to get the ``hand`` or ``face`` weights, in words (no path)."""
    return (f"run `{fetch_command(network)}` or `rtpose fetch {network}` (OpenPose's "
            f"{PART_NETWORKS[network].pth} from Hugging Face; the CMU weights are for "
            "non-commercial use only)")


def default_weights(network: str) -> Path:
    """The ``hand`` or ``face`` weights where the store finds them (``rtpose.store.locate``:
    the checkout's ``model/keras/<network>.weights.h5``, then the store), or a one-line
    ``ModelNotFoundError`` that says how to get them."""
    from rtpose import store

    path = store.locate(network)
    if path is None:
        places = ", ".join(str(p) for p in store.candidates(network))
        raise ModelNotFoundError(f"no {network} network weights in {places}: "
                                 f"{how_to_get(network)}")
    return path


class HeatmapNetwork:
    """``network(batch) -> heat`` (module docstring) of one runtime; ``runtime``,
    ``precision`` and ``network`` (``hand`` or ``face``) say which. Threads may share it: it
    runs one batch at a time (OpenVINO's network has one infer request)."""

    def __init__(self, network: str, runtime: str, precision: str, forward: Any):
        self.network, self.runtime, self.precision = network, runtime, precision
        self._forward = forward
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            heat = self._forward(np.ascontiguousarray(batch, np.float32))
            return np.ascontiguousarray(heat, dtype=np.float32)


def part_network(network: str, weights: str | Path | None = None, runtime: str = "openvino",
                 precision: str = "fp32", threads: int | None = None) -> HeatmapNetwork:
    """The ``hand`` or ``face`` network from ``weights`` (default: ``default_weights``)."""
    if runtime not in RUNTIMES:
        raise RuntimeUnavailableError(f"the {network} network runs on {', '.join(RUNTIMES)}, "
                                      f"not {runtime}")
    if precision not in PRECISIONS:
        raise RuntimeUnavailableError(f"the {network} network runs at {', '.join(PRECISIONS)}, "
                                      f"not {precision}")
    if precision != "fp32" and runtime != "openvino":
        raise RuntimeUnavailableError(f"--precision {precision} needs --runtime openvino")
    weights = Path(weights) if weights is not None else default_weights(network)
    if runtime == "keras":
        from rtpose.models.cmu_hand_face import load_part_model
        from rtpose.runtime.keras_runtime import _tensorflow

        forward = _tensorflow(load_part_model(network, weights), jit_compile=False)
        return HeatmapNetwork(network, runtime, precision, lambda batch: forward(batch)[0])
    return HeatmapNetwork(network, runtime, precision,
                          _openvino_forward(network, weights, precision, threads))


def _openvino_forward(network: str, weights: Path, precision: str, threads: int | None):
    from rtpose.runtime.openvino import cache as ovc
    from rtpose.runtime.openvino import network as ovn

    core = ovn._core()
    if precision == "bf16" and not ovn.cpu_has_bf16(core):
        raise ovn.OpenVinoError("bf16 needs a CPU with bf16 instructions (AVX512_BF16 or AMX), "
                                "and this one has none: use --precision fp32")
    path = ovc.openvino_cache_path(weights, "fp32")
    model = ovc._fresh_cache(path, weights, "fp32")
    if model is None:
        model = _convert(network, weights)
        info = {"format": ovc.CACHE_FORMAT, "precision": "fp32", "arch": f"cmu_{network}",
                **ovc.weights_fingerprint(weights)}
        target = path if os.access(path.parent, os.W_OK) else ovc._temporary_folder() / path.name
        model = ovn.read_ir(ovc._write_ir(model, target, info))
    config = {"INFERENCE_PRECISION_HINT": ovn._INFERENCE_PRECISION[precision],
              "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config.update(INFERENCE_NUM_THREADS=int(threads), ENABLE_CPU_PINNING=False)
    try:
        compiled = core.compile_model(model, "CPU", config)
    except RuntimeError as e:
        raise ovn.OpenVinoError(f"{path}: OpenVINO cannot compile it: {first_line(e)}") from e
    request = compiled.create_infer_request()

    def forward(batch: np.ndarray) -> np.ndarray:
        request.infer({0: batch})
        return np.array(request.get_tensor(OUTPUT).data, dtype=np.float32, order="C")

    return forward


def _convert(network: str, weights: Path) -> Any:
    """The Keras network as an OpenVINO model: input ``image`` (free N, H, W), output ``heat``."""
    from rtpose.runtime.openvino import network as ovn

    ov = ovn.import_openvino()
    import tensorflow as tf

    from rtpose.models.cmu_hand_face import load_part_model

    model = load_part_model(network, weights)
    spec = tf.TensorSpec((None, None, None, 3), tf.float32, name="image")
    forward = tf.function(lambda image: model(image, training=False), input_signature=[spec])
    try:
        converted = ov.convert_model(forward.get_concrete_function())
    except Exception as e:  # OpenVINO's frontends raise several unrelated types
        raise ovn.OpenVinoError(f"OpenVINO cannot convert the {network} network: "
                                f"{first_line(e)}") from e
    converted.inputs[0].get_tensor().set_names({"image"})
    converted.outputs[0].get_tensor().set_names({OUTPUT})
    return converted
