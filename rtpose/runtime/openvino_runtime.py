"""The network on OpenVINO Runtime (CPU), at an explicit precision: fp32, bf16 or int8.

``OpenVinoNetwork(path)`` runs an OpenVINO IR of the model with the interface of
``rtpose.runtime``'s networks: ``network(batch) -> (heat, paf)``, batch float32 BGR 0..255
``(1, H, W, 3)`` (H and W multiples of 8), heatmaps ``(1, H/8, W/8, 19)`` and PAFs
``(1, H/8, W/8, 38)``, float32, C-contiguous. The IR's input ``image`` has free batch, H and W
(one compiled model for every size; ``static_shapes=True`` compiles one per input size
instead, a few per cent faster per call but a quarter of a second for each new size), and its
outputs are already split: ``heat`` then ``paf``, whatever the architecture's own order.

Precisions (``PRECISIONS``), each set explicitly as the CPU plugin's
``INFERENCE_PRECISION_HINT`` (on AMX and AVX512_BF16 machines its default is bf16; it is never
left to choose):

- ``fp32``: the Keras model's maps to about 1e-5;
- ``bf16``: the fp32 IR computed in bfloat16, only on a CPU that has bf16 instructions;
- ``int8``: a separate IR quantised after training by NNCF (``nncf.quantize``), calibrated on
  COCO **train2017** images prepared as the pipeline does at scale 1 (never on val); the
  layers NNCF leaves unquantised run in f32.

``openvino_network(arch, weights, ...)`` converts and caches. The Keras model is converted
once (``ov.convert_model`` of its TensorFlow function: no ONNX step) and the IR is cached
beside the weights, ``<stem>.openvino.xml`` (+ ``.bin``; ``<stem>.openvino-int8.xml`` for
int8), e.g. ``model/keras/mobilenet_thin.openvino.xml`` for
``model/keras/mobilenet_thin.weights.h5``. The IR records the weights file's size, mtime and
SHA-256; it is reused while the size matches and the mtime or, failing that, the SHA-256 does,
and is converted again otherwise. The IR's own content is checked too: the SHA-256 of its
``.xml`` and ``.bin`` are kept beside them (``<stem>.openvino.sha256``, ``sha256sum``'s format)
and checked on every load (about 1 ms per MB), so a damaged IR is converted again (with a
warning), never silently used. Files are written under temporary names in the same folder and
renamed (``.bin`` first, then ``.xml``, the hashes last). Without a weights path, or when that
folder is read-only or the cache cannot be replaced (immutable files, a folder in its place),
the IR goes to a temporary folder removed when the process exits. Loading a cached
IR imports neither TensorFlow nor Keras. OpenVINO's own cache of compiled blobs
(``CACHE_DIR``) is not used: compiling MobileNet-thin's IR takes about 0.2 s, importing its
blob no less.

Needs OpenVINO (a dependency of rtpose) and, for int8, NNCF (``pip install -e .[openvino]``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.errors import RtposeError, first_line

if TYPE_CHECKING:
    import keras
    import openvino as ov

    from rtpose.models import Architecture

PRECISIONS = ("fp32", "bf16", "int8")
HINTS = ("latency", "throughput")
INSTALL = "pip install -e .[openvino]"  # NNCF, for int8
INSTALL_OPENVINO = "pip install 'openvino>=2026.0,<2027'"
CACHE_FORMAT = "1"  # bump when the IR's layout (inputs, outputs, recorded fields) changes
OUTPUTS = ("heat", "paf")
# COCO train2017 as dataset/get_dataset.sh places it in the repository.
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[2] / "dataset" / "train2017"
CALIBRATION_IMAGES = 300  # at most this many calibration images (coco_mini has 80)
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
_REPORTED: set[Path] = set()  # damaged caches already reported


class OpenVinoError(RtposeError):
    """OpenVINO is missing, or cannot convert, load or run the model at the asked precision."""


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line ``OpenVinoError`` saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise OpenVinoError(f"the openvino runtime needs OpenVINO: {INSTALL_OPENVINO}") from e
    return openvino


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise OpenVinoError(f"unknown precision {precision!r}; choose one of "
                            f"{', '.join(PRECISIONS)}")


class Pending:
    """A batch submitted to an ``OpenVinoNetwork``; ``result()`` waits for its maps.

    ``network_s`` (known once ``result()`` returns): the seconds the network spent on this
    batch alone, from its submission or, if later, the end of the batch whose result was
    taken before it, to its end. Results taken in submission order: with batches in flight
    one behind the other, the time one waited for the one ahead is not counted.
    """

    def __init__(self, network: OpenVinoNetwork, compiled: _Compiled, request: Any,
                 submitted: float):
        self._network, self._compiled, self._request = network, compiled, request
        self._submitted = submitted
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self.network_s = 0.0

    def done(self) -> bool:
        return self._maps is not None

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(heat, paf)`` of the batch, as ``network(batch)`` returns them."""
        with self._lock:
            if self._maps is None:
                self._request.wait()
                end = self._submitted + self._request.latency / 1000
                self._maps = _read_outputs(self._request)
                self._compiled.give(self._request)
                self._request = None
                self.network_s = self._network._finished(self, end)
        return self._maps


class _Compiled:
    """One compiled model and its idle infer requests (made on demand, reused)."""

    def __init__(self, compiled: Any):
        self.model = compiled
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.model.create_infer_request()

    def give(self, request: Any) -> None:
        with self._lock:
            self._idle.append(request)


def _read_outputs(request: Any) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the request's ``heat`` and ``paf`` outputs (its buffers are reused)."""
    heat, paf = (np.array(request.get_tensor(name).data, dtype=np.float32, order="C")
                 for name in OUTPUTS)
    return heat, paf


class OpenVinoNetwork:
    """An OpenVINO IR of the model (inputs and outputs as in the module docstring) compiled for
    the CPU.

    ``precision``: one of ``PRECISIONS``; it must match the IR (an int8 IR for ``int8``, an
    fp32 one otherwise). ``threads``: ``INFERENCE_NUM_THREADS``, unpinned (default:
    OpenVINO's, one per core, pinned). ``hint``: ``latency`` (one stream using every thread,
    the default) or ``throughput`` (one stream per batch in flight, each on its share of the
    cores: batches run side by side; on a shared or small CPU, more frames per second than
    ``latency`` with two in flight, each batch slower). ``in_flight``: how many
    ``submit``-ted batches may run at once before ``submit`` waits for the oldest.
    ``static_shapes``: compile one model per input size instead of one for all sizes.
    ``model``: the IR at ``path`` if already read (``read_ir``), to save reading it again.
    """

    runtime = "openvino"

    def __init__(
        self,
        path: str | Path,
        precision: str = "fp32",
        threads: int | None = None,
        hint: str = "latency",
        in_flight: int = 2,
        static_shapes: bool = False,
        model: ov.Model | None = None,
    ):
        _check_precision(precision)
        if hint not in HINTS:
            raise OpenVinoError(f"unknown performance hint {hint!r}; choose one of "
                                f"{', '.join(HINTS)}")
        self.core = _core()
        if precision == "bf16" and not cpu_has_bf16(self.core):
            raise OpenVinoError("bf16 needs a CPU with bf16 instructions (AVX512_BF16 or AMX), "
                                "and this one has none: use --precision fp32 or int8")
        self.path = Path(path)
        self._model = model if model is not None else read_ir(self.path)
        self.info = read_info(self._model)
        if self.info.get("precision", _ir_precision(precision)) != _ir_precision(precision):
            raise OpenVinoError(f"{self.path} is a {self.info['precision']} model; it cannot "
                                f"run at {precision}")
        names = [sorted(output.get_names()) for output in self._model.outputs]
        if [n[:1] for n in names] != [[name] for name in OUTPUTS]:
            raise OpenVinoError(f"{self.path}: outputs {names}, expected {list(OUTPUTS)}")
        if "arch" not in self.info:
            raise OpenVinoError(f"{self.path}: not an rtpose IR (no architecture recorded)")
        from rtpose.models import get_architecture

        self.architecture = self.info["arch"]
        self.stride = get_architecture(self.architecture).stride
        self.precision = precision
        self.config = {
            "INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision],
            "PERFORMANCE_HINT": hint.upper(),
        }
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
            # A share of the cores (several processes, e.g. extract_poses --workers): pinned,
            # every process's threads would sit on the same first cores.
            self.config["ENABLE_CPU_PINNING"] = False
        self.static_shapes = static_shapes
        self.in_flight = max(1, int(in_flight))
        if hint == "throughput":  # one stream per batch in flight, the cores shared among them
            self.config["PERFORMANCE_HINT_NUM_REQUESTS"] = self.in_flight
        self._compiled: dict[tuple[int, ...] | None, _Compiled] = {}
        self._compile_lock = threading.Lock()
        self._pending: deque[Pending] = deque()
        self._pending_lock = threading.Lock()
        self._last_end = 0.0  # the latest end of a batch whose result was taken (perf_counter)
        if not static_shapes:
            self._compiled_for(None)

    def _compiled_for(self, shape: tuple[int, ...] | None) -> _Compiled:
        key = shape if self.static_shapes else None
        with self._compile_lock:
            if key not in self._compiled:
                model = self._model
                if key is not None:
                    model = self._model.clone()
                    model.reshape(list(key))
                try:
                    compiled = self.core.compile_model(model, "CPU", self.config)
                except RuntimeError as e:
                    raise OpenVinoError(f"{self.path}: OpenVINO cannot compile it: "
                                        f"{first_line(e)}") from e
                self._compiled[key] = _Compiled(compiled)
            return self._compiled[key]

    @property
    def compiled_shapes(self) -> list[tuple[int, ...] | None]:
        """The input shapes compiled so far: ``[None]`` for the one model of every size (dynamic
        shapes), else one (1, H, W, 3) per size seen (``static_shapes``)."""
        with self._compile_lock:
            return list(self._compiled)

    @property
    def pending_count(self) -> int:
        """How many submitted batches have not been collected yet (at most ``in_flight``)."""
        with self._pending_lock:
            return len(self._pending)

    @property
    def compiled_model(self) -> Any:
        """The (first) compiled model, e.g. to read back its properties."""
        if not self._compiled:
            raise OpenVinoError("nothing compiled yet: static shapes compile at the first call")
        return next(iter(self._compiled.values())).model

    def _start(self, batch: np.ndarray, share: bool) -> tuple[_Compiled, Any]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise OpenVinoError(f"the network takes a (1, H, W, 3) batch, got {batch.shape}")
        compiled = self._compiled_for(batch.shape)
        request = compiled.take()
        request.start_async({0: batch}, share_inputs=share)
        return compiled, request

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        compiled, request = self._start(batch, share=True)
        try:
            request.wait()
            return _read_outputs(request)
        finally:
            compiled.give(request)

    def submit(self, batch: np.ndarray) -> Pending:
        """Start the network on ``batch`` and return at once; ``.result()`` gives its maps.

        At most ``in_flight`` batches run together: with that many pending, this first waits
        for the oldest. The batch is copied, so the caller may reuse its buffer.
        """
        while True:
            with self._pending_lock:
                if len(self._pending) < self.in_flight:
                    break
                oldest = self._pending[0]
            oldest.result()
        submitted = time.perf_counter()
        compiled, request = self._start(batch, share=False)
        pending = Pending(self, compiled, request, submitted)
        with self._pending_lock:
            self._pending.append(pending)
        return pending

    def _finished(self, pending: Pending, end: float) -> float:
        """Forget ``pending``, which ended at ``end``; the seconds it alone took (``Pending``)."""
        with self._pending_lock:
            if pending in self._pending:
                self._pending.remove(pending)
            start = max(pending._submitted, self._last_end)
            self._last_end = max(self._last_end, end)
        return max(end - start, 0.0)


@functools.cache
def _core() -> Any:
    """The process's one ``openvino.Core`` (made on first use)."""
    return import_openvino().Core()


def read_ir(path: str | Path) -> ov.Model:
    """The OpenVINO model at ``path`` (an IR's .xml), or a one-line ``OpenVinoError``."""
    try:
        return _core().read_model(str(path))
    except RuntimeError as e:
        raise OpenVinoError(f"{path}: OpenVINO cannot read it: {first_line(e)}") from e


def cpu_has_bf16(core: Any) -> bool:
    """Whether OpenVINO's CPU plugin can compute in bf16 on this CPU."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# --- conversion and the cache beside the weights ---------------------------------------------

def openvino_cache_path(weights: str | Path, precision: str = "fp32") -> Path:
    """Where the IR of a weights file is cached: beside it, ``<stem>.openvino.xml`` (fp32 and
    bf16) or ``<stem>.openvino-int8.xml``."""
    _check_precision(precision)
    weights = Path(weights)
    stem = weights.name.removesuffix(".h5").removesuffix(".weights")
    suffix = "-int8" if precision == "int8" else ""
    return weights.with_name(f"{stem}.openvino{suffix}.xml")


def weights_fingerprint(weights: str | Path, digest: bool = True) -> dict[str, str]:
    """The weights file's size, mtime (ns) and, if ``digest``, SHA-256, as strings."""
    stat = Path(weights).stat()
    found = {"weights_size": str(stat.st_size), "weights_mtime_ns": str(stat.st_mtime_ns)}
    if digest:
        found["weights_sha256"] = _file_sha256(Path(weights))
    return found


def read_info(model: Any) -> dict[str, str]:
    """What rtpose recorded in an IR (``rt_info`` under ``rtpose``); empty if nothing."""
    if not model.has_rt_info(["rtpose"]):
        return {}
    info = model.get_rt_info(["rtpose"])
    return {str(key): value.astype(str) for key, value in info.astype(dict).items()}


def cache_is_fresh(path: str | Path, weights: str | Path, precision: str = "fp32") -> bool:
    """Whether the IR at ``path`` was made, at ``precision``, from the current ``weights``."""
    return _fresh_cache(path, weights, precision) is not None


def _fresh_cache(path: str | Path, weights: str | Path, precision: str) -> ov.Model | None:
    """The IR at ``path``, read, if it is intact (``ir_intact``) and was made at ``precision``
    from the current ``weights``; else None (with a warning when it is damaged)."""
    path = Path(path)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        return None
    intact = ir_intact(path)
    if not intact:
        if intact is False and path not in _REPORTED:
            _REPORTED.add(path)  # once per process, however often it is looked at
            print(f"warning: the OpenVINO cache {path} does not match the hashes recorded in "
                  f"{digest_path(path).name} (damaged); converting the weights again",
                  file=sys.stderr)
        return None
    try:
        model = read_ir(path)
    except OpenVinoError:
        return None
    return model if _made_from(read_info(model), weights, precision) else None


def _made_from(info: dict[str, str], weights: str | Path, precision: str) -> bool:
    """Whether an IR's recorded ``info`` says it was made at ``precision`` from ``weights``
    as they are now."""
    quick = weights_fingerprint(weights, digest=False)
    if (info.get("format") != CACHE_FORMAT or info.get("precision") != _ir_precision(precision)
            or info.get("weights_size") != quick["weights_size"]):
        return False
    if info.get("weights_mtime_ns") == quick["weights_mtime_ns"]:
        return True
    return info.get("weights_sha256") == weights_fingerprint(weights)["weights_sha256"]


def digest_path(path: str | Path) -> Path:
    """Where the SHA-256 of an IR's ``.xml`` and ``.bin`` are kept: ``<stem>.sha256``."""
    return Path(path).with_suffix(".sha256")


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def _digests(xml: Path, names: tuple[str, str]) -> str:
    """``sha256sum``'s lines for the IR ``xml`` and its ``.bin``, listed under ``names``."""
    files = (xml, xml.with_suffix(".bin"))
    return "".join(f"{_file_sha256(f)}  {name}\n" for f, name in zip(files, names, strict=True))


def ir_intact(path: str | Path) -> bool | None:
    """Whether the IR at ``path`` (.xml) and its .bin have the SHA-256 recorded beside them
    (``digest_path``); None when no hashes are recorded (an IR of an older rtpose)."""
    path = Path(path)
    try:
        recorded = digest_path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return recorded == _digests(path, (path.name, path.with_suffix(".bin").name))
    except OSError:
        return False


def _ir_precision(precision: str) -> str:
    return "int8" if precision == "int8" else "fp32"


def convert_keras(model: keras.Model, arch: Architecture) -> ov.Model:
    """The Keras model as an OpenVINO model: input ``image`` (free batch, H, W; 3 channels),
    outputs ``heat`` then ``paf``. On the TensorFlow backend, ``ov.convert_model`` of its
    TensorFlow function; on Keras's own OpenVINO backend (``KERAS_BACKEND=openvino``), Keras's
    export, without TensorFlow (the same maps, to 0.0)."""
    ov = import_openvino()
    import keras

    try:
        if keras.backend.backend() == "openvino":
            converted = _export_openvino_backend(model, arch)
        else:
            import tensorflow as tf

            spec = tf.TensorSpec((None, None, None, 3), tf.float32, name="image")
            forward = tf.function(lambda image: arch.split_outputs(model(image, training=False)),
                                  input_signature=[spec])
            converted = ov.convert_model(forward.get_concrete_function())
    except Exception as e:  # OpenVINO's frontends raise several unrelated types
        raise OpenVinoError(f"OpenVINO cannot convert {arch.name}: {first_line(e)}") from e
    converted.inputs[0].get_tensor().set_names({"image"})
    for output, name in zip(converted.outputs, OUTPUTS, strict=True):
        output.get_tensor().set_names({name})
    return converted


def _export_openvino_backend(model: keras.Model, arch: Architecture) -> ov.Model:
    """``model`` with its outputs split into (heat, paf), exported by Keras's OpenVINO
    backend and read back."""
    import keras

    image = keras.Input((None, None, 3), name="image")
    split = keras.Model(image, list(arch.split_outputs(model(image))))
    with tempfile.TemporaryDirectory(prefix="rtpose-keras-openvino-") as folder:
        path = Path(folder) / "model.xml"
        with contextlib.redirect_stdout(io.StringIO()):  # "Saved OpenVINO IR at ..."
            split.export(str(path), format="openvino")
        return _core().read_model(str(path))


def calibration_batches(folder: str | Path, stride: int,
                        limit: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """The JPEG images of ``folder`` (sorted by name, at most ``limit``) as the pipeline feeds
    them at scale 1: resized to 368 high (bicubic), padded to multiples of ``stride``; float32
    ``(1, H, W, 3)`` each. Refuses a validation folder (``val*``)."""
    from rtpose.config import CMU_INFERENCE
    from rtpose.geometry import prepare_input
    from rtpose.stream.images import read_image

    folder = Path(folder)
    if folder.name.lower().startswith("val"):
        raise OpenVinoError(f"{folder}: calibrating on validation images would bias their "
                            f"evaluation; use training images (e.g. coco_mini/train2017)")
    files = sorted(folder.glob("*.jpg"))[:limit]
    if not files:
        raise OpenVinoError(f"int8 calibration needs training images and {folder} holds no "
                            f".jpg; give a folder of COCO train2017 images with --calibration")
    batches = []
    for file in files:
        image = read_image(file)  # through bytes, its size checked from its header first
        padded, _ = prepare_input(image, CMU_INFERENCE.boxsize / image.shape[0], stride)
        batches.append(padded[np.newaxis].astype(np.float32))
    return batches


def _depthwise_pairs(model: ov.Model) -> list[tuple[Any, Any]]:
    """(depthwise, convolution) node pairs where a GroupConvolution with constant weights
    feeds only a Convolution with constant weights, nothing in between."""
    pairs = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Convolution":
            continue
        source = node.input_value(0).get_node()
        if (source.get_type_name() == "GroupConvolution"
                and len(source.output(0).get_target_inputs()) == 1
                and all(n.input_value(1).get_node().get_type_name() == "Constant"
                        for n in (source, node))):
            pairs.append((source, node))
    return pairs


def _channel_absmax(model: ov.Model, nodes: Sequence[Any],
                    batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per output channel (axis 1, OpenVINO's NCHW), the largest |value| of each node's output
    over ``batches``, computed in f32."""
    ov = import_openvino()
    probe = model.clone()
    by_name = {n.get_friendly_name(): n for n in probe.get_ordered_ops()}
    outputs = probe.add_outputs([by_name[n.get_friendly_name()].output(0) for n in nodes])
    compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    absmax = [np.zeros(n.get_output_partial_shape(0)[1].get_length(), np.float32) for n in nodes]
    for batch in batches:
        request.infer({0: batch})
        for found, output in zip(absmax, outputs, strict=True):
            np.maximum(found, np.abs(request.get_tensor(output).data).max(axis=(0, 2, 3)),
                       out=found)
    return absmax


def equalize_depthwise(model: ov.Model, batches: Sequence[np.ndarray],
                       alpha: float = 0.5) -> int:
    """Rescale the channels between each depthwise convolution and the convolution it feeds,
    in place, so that int8 can hold them; returns the number of pairs rescaled.

    A separable convolution has no bias or activation between its depthwise and pointwise
    halves, so dividing depthwise output channel c by ``s_c`` and multiplying the pointwise
    weights of input c by ``s_c`` leaves the model's function unchanged. With MobileNet-thin's
    batch norms folded, those channels' ranges differ by orders of magnitude, and one int8
    scale per tensor rounds the small ones away (maps off by 0.1 on average). ``s_c =
    a_c^alpha / w_c^(1 - alpha)`` (``a_c``: the channel's largest |activation| over
    ``batches``, ``w_c``: the largest |pointwise weight| of input c) evens activations and
    weights out, as SmoothQuant does (Xiao et al. 2023), but folded into the weights rather
    than added as multiplications.
    """
    ov = import_openvino()
    from openvino import opset13

    pairs = _depthwise_pairs(model)
    if not pairs:
        return 0
    activations = _channel_absmax(model, [depthwise for depthwise, _ in pairs], batches)
    for (depthwise, pointwise), act in zip(pairs, activations, strict=True):
        dw_node, pw_node = (n.input_value(1).get_node() for n in (depthwise, pointwise))
        dw, pw = dw_node.get_data().astype(np.float32), pw_node.get_data().astype(np.float32)
        weight = np.abs(pw).max(axis=tuple(i for i in range(pw.ndim) if i != 1))
        scale = np.maximum(act, 1e-6) ** alpha / np.maximum(weight, 1e-6) ** (1 - alpha)
        scale = np.where((act > 0) & (weight > 0), scale, 1.0).astype(np.float32)
        dw = (dw.reshape(len(scale), -1) / scale[:, None]).reshape(dw.shape)
        pw = pw * scale.reshape((1, -1) + (1,) * (pw.ndim - 2))
        for node, values in ((depthwise, dw), (pointwise, pw)):
            node.input(1).replace_source_output(opset13.constant(values, ov.Type.f32).output(0))
    model.validate_nodes_and_infer_types()
    return len(pairs)


def _producer(node: Any) -> Any:
    """The node that computes ``node``'s first non-constant input."""
    for value in node.input_values():
        if value.get_node().get_type_name() != "Constant":
            return value.get_node()
    raise ValueError(f"{node.get_friendly_name()} has only constant inputs")


def float_convolutions(model: ov.Model) -> list[str]:
    """Names of the convolutions that int8 leaves in float: in each stage branch (a chain of
    convolutions from a concatenation or a fork to a map output, i.e. a biased convolution
    without ReLU), all but the first full convolution.

    Measured on MobileNet-thin: int8 weights and activations in the backbone and in each
    branch's first pointwise convolution (921 -> 64 channels, most of a stage's multiply-adds)
    cost maps about as much as bf16 does; quantising the rest of the stages as well gives maps
    off by 0.025 on average and COCO AP 0.19 instead of 0.26.
    """
    names = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Add" or _producer(node).get_type_name() != "Convolution":
            continue
        if any(target.get_node().get_type_name() == "Relu"
               for target in node.output(0).get_target_inputs()):
            continue
        chain, current = [], _producer(node)
        while current.get_type_name() not in ("Concat", "Parameter"):
            if current.get_type_name() in ("Convolution", "GroupConvolution"):
                chain.append(current)
            source = _producer(current)
            if len(source.output(0).get_target_inputs()) > 1:
                break
            current = source
        first = [n for n in chain if n.get_type_name() == "Convolution"][-1:]
        names += [n.get_friendly_name() for n in chain if n not in first]
    return names


def quantize_int8(model: ov.Model, batches: Sequence[np.ndarray]) -> ov.Model:
    """Post-training int8 quantisation of an fp32 OpenVINO model by NNCF over ``batches``,
    after ``equalize_depthwise``, leaving ``float_convolutions`` in float."""
    try:
        import nncf
    except ImportError as e:
        raise OpenVinoError(f"int8 needs NNCF: {INSTALL}") from e
    batches = list(batches)
    equalize_depthwise(model, batches)
    logging.getLogger("nncf").setLevel(logging.WARNING)  # one INFO line per float layer
    return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                         fast_bias_correction=True,
                         ignored_scope=nncf.IgnoredScope(names=float_convolutions(model)))


def _write_ir(model: ov.Model, path: Path, info: dict[str, str]) -> Path:
    """Save ``model`` with ``info`` as ``path`` (.xml), its .bin and their SHA-256
    (``digest_path``), each under a temporary name in the same folder then renamed, .bin
    first, the hashes last (an IR interrupted half-way does not match them)."""
    ov = import_openvino()
    for key, value in info.items():
        model.set_rt_info(value, ["rtpose", key])
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        names = (path.name, path.with_suffix(".bin").name)
        (tmp / "model.sha256").write_text(_digests(tmp / "model.xml", names), encoding="utf-8")
        os.replace(tmp / "model.bin", path.with_suffix(".bin"))
        os.replace(tmp / "model.xml", path)
        os.replace(tmp / "model.sha256", digest_path(path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _temporary_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rtpose-openvino-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def openvino_ir(
    arch: Architecture | str,
    weights: str | Path | None = None,
    model: keras.Model | None = None,
    precision: str = "fp32",
    calibration: str | Path | Iterable[np.ndarray] | None = None,
) -> Path:
    """The IR of the model at ``precision``: the cache beside ``weights`` if it was made from
    them, else a fresh conversion written there (or, without ``weights`` or a writable folder,
    in a temporary folder removed when the process exits).

    ``arch``: the architecture or its name (a name keeps Keras and TensorFlow unimported while
    the cache is fresh). ``model``: the Keras model, if already loaded; else it is loaded from
    ``weights`` only when a conversion is needed. ``calibration`` (int8): a folder of training
    images or the batches themselves (default ``DEFAULT_CALIBRATION``, COCO train2017 as
    ``dataset/get_dataset.sh`` downloads it).
    """
    _check_precision(precision)
    import_openvino()
    if weights is None and model is None:
        raise OpenVinoError("the openvino runtime needs the weights file or the Keras model")
    if weights is not None and not Path(weights).is_file():
        raise OpenVinoError(f"weights file not found: {weights}")
    cache = openvino_cache_path(weights, precision) if weights is not None else None
    if cache is not None and cache_is_fresh(cache, weights, precision):
        return cache
    if isinstance(arch, str):
        from rtpose.models import get_architecture

        arch = get_architecture(arch)
    if model is None:
        from rtpose.models import load_model

        model, arch = load_model(arch.name, weights)
    converted = convert_keras(model, arch)
    info = {"format": CACHE_FORMAT, "precision": _ir_precision(precision), "arch": arch.name}
    if precision == "int8":
        if calibration is None:
            calibration = DEFAULT_CALIBRATION
        if isinstance(calibration, (str, Path)):
            info["calibration"] = str(calibration)
            calibration = calibration_batches(calibration, arch.stride)
        batches = list(calibration)
        info["calibration_images"] = str(len(batches))
        converted = quantize_int8(converted, batches)
    if cache is not None:
        info.update(weights_fingerprint(weights))
        if os.access(cache.parent, os.W_OK):
            try:
                return _write_ir(converted, cache, info)
            except OSError as e:  # immutable files, a folder in the cache's place, a full disk
                print(f"warning: cannot replace the OpenVINO cache {cache} "
                      f"({e.strerror or e}); this run uses a temporary copy", file=sys.stderr)
        target = _temporary_folder() / cache.name
    else:
        target = _temporary_folder() / f"{arch.name}.openvino.xml"
    try:
        return _write_ir(converted, target, info)
    except OSError as e:
        raise OpenVinoError(f"cannot write the OpenVINO model to {target.parent}: "
                            f"{e.strerror or e}") from e


def cached_openvino_network(
    weights: str | Path,
    precision: str = "fp32",
    threads: int | None = None,
    hint: str = "latency",
    **options: Any,
) -> OpenVinoNetwork | None:
    """``OpenVinoNetwork`` of the IR cached beside ``weights`` at ``precision`` if it is fresh,
    else None (also without OpenVINO). Reads the IR once, and imports neither Keras nor
    TensorFlow nor h5py: the architecture is the one the IR records."""
    if not Path(weights).is_file():
        return None
    path = openvino_cache_path(weights, precision)
    try:
        import_openvino()  # the process's Core, once made, would not notice it missing
    except OpenVinoError:
        return None
    model = _fresh_cache(path, weights, precision)
    if model is None:
        return None
    return OpenVinoNetwork(path, precision, threads, hint, model=model, **options)


def openvino_network(
    arch: Architecture | str,
    weights: str | Path | None = None,
    model: keras.Model | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    hint: str = "latency",
    calibration: str | Path | Iterable[np.ndarray] | None = None,
    **options: Any,
) -> OpenVinoNetwork:
    """``OpenVinoNetwork`` of ``openvino_ir(arch, weights, model, precision, calibration)``;
    ``threads``, ``hint`` and ``options`` (``in_flight``, ``static_shapes``) go to it."""
    if weights is not None:
        cached = cached_openvino_network(weights, precision, threads, hint, **options)
        if cached is not None:
            return cached
    if isinstance(arch, str):
        from rtpose.models import get_architecture

        arch = get_architecture(arch)
    path = openvino_ir(arch, weights, model, precision, calibration)
    return OpenVinoNetwork(path, precision, threads, hint, **options)
