"""The hand and face networks (``rtpose.models.cmu_hand_face``) on a runtime: ``keras`` or
``openvino`` (fp32, bf16 or int8; int8 calibrated on hand or face crops of COCO training images,
``rtpose.runtime.calibration.PartCalibration``).

``part_network("hand", weights)`` returns a ``HeatmapNetwork``: ``network(batch) -> heat``, batch
float32 BGR 0..255 ``(N, H, W, 3)`` (H, W multiples of 8; every crop of an image in one batch),
heat float32 C-contiguous ``(N, H/8, W/8, C)`` (C = 22 hand, 71 face). The OpenVINO IR is
converted once and cached beside the weights as the body's is (``<stem>.openvino.xml``, int8
``<stem>.openvino-int8.xml``, with the weights' fingerprint; ``rtpose.runtime.openvino.cache``,
without TensorFlow on Keras's OpenVINO backend); a fresh cache loads without Keras.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.errors import ModelNotFoundError, first_line
from rtpose.models import PART_NETWORKS
from rtpose.runtime.network import RuntimeUnavailableError

if TYPE_CHECKING:
    from rtpose.runtime.calibration import PartCalibration

RUNTIMES = ("keras", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
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
                 precision: str = "fp32", threads: int | None = None,
                 calibration: str | Path | PartCalibration | None = None) -> HeatmapNetwork:
    """The ``hand`` or ``face`` network from ``weights`` (default: ``default_weights``);
    ``calibration``: int8's folder of COCO training images, its keypoint annotations beside it
    (or a ``PartCalibration``; default ``calibration.DEFAULT_CALIBRATION``), read only when the
    int8 IR is made."""
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
                          _openvino_forward(network, weights, precision, threads, calibration))


def _openvino_forward(network: str, weights: Path, precision: str, threads: int | None,
                      calibration: str | Path | PartCalibration | None):
    from rtpose.runtime.calibration import DEFAULT_CALIBRATION, PartCalibration
    from rtpose.runtime.openvino import cache as ovc
    from rtpose.runtime.openvino import network as ovn

    core = ovn._core()
    if precision == "bf16" and not ovn.cpu_has_bf16(core):
        raise ovn.OpenVinoError("bf16 needs a CPU with bf16 instructions (AVX512_BF16 or AMX), "
                                "and this one has none: use --precision fp32")
    crops = calibration if isinstance(calibration, PartCalibration) else (
        PartCalibration(Path(calibration or DEFAULT_CALIBRATION), network)
        if precision == "int8" else None)
    path = ovc.cached_ir(lambda: _convert(network, weights), f"cmu_{network}", weights,
                         precision, crops, map_convolutions)
    config = {"INFERENCE_PRECISION_HINT": ovn._INFERENCE_PRECISION[precision],
              "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config.update(INFERENCE_NUM_THREADS=int(threads), ENABLE_CPU_PINNING=False)
    try:
        compiled = core.compile_model(ovn.read_ir(path), "CPU", config)
    except RuntimeError as e:
        raise ovn.OpenVinoError(f"{path}: OpenVINO cannot compile it: {first_line(e)}") from e
    request = compiled.create_infer_request()

    def forward(batch: np.ndarray) -> np.ndarray:
        request.infer({0: batch})
        return np.array(request.get_tensor(OUTPUT).data, dtype=np.float32, order="C")

    return forward


def map_convolutions(model: Any) -> list[str]:
    """The convolutions that int8 leaves in float: those that make each stage's maps (1x1,
    ``conv6_2_CPM`` and ``Mconv7_stage{t}``), the convolutions without a ReLU after them."""
    names = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Convolution":
            continue
        after = [t.get_node() for t in node.output(0).get_target_inputs()]
        if after and after[0].get_type_name() == "Add":  # the bias
            after = [t.get_node() for t in after[0].output(0).get_target_inputs()]
        if not any(n.get_type_name() == "Relu" for n in after):
            names.append(node.get_friendly_name())
    return names


def _convert(network: str, weights: Path) -> Any:
    """The Keras network as an OpenVINO model: input ``image`` (free N, H, W), output ``heat``."""
    from rtpose.models.cmu_hand_face import load_part_model
    from rtpose.runtime.openvino.cache import convert_outputs

    return convert_outputs(load_part_model(network, weights), lambda heat: (heat,), (OUTPUT,),
                           f"the {network} network")
