"""The network on OpenVINO Runtime (CPU), at an explicit precision: fp32, bf16 or int8.

``OpenVinoNetwork(path)`` runs an OpenVINO IR of the model with the interface of
``rtpose.runtime``'s networks: ``network(batch) -> (heat, paf)``, batch float32 BGR 0..255
``(1, H, W, 3)`` (H and W multiples of 8), heatmaps ``(1, H/8, W/8, 19)`` and PAFs
``(1, H/8, W/8, 38)``, float32, C-contiguous. The IR's input ``image`` has free batch, H and W
(one compiled model for every size; ``static_shapes=True`` compiles one per input size
instead, a few per cent faster per call but a quarter of a second for each new size), and its
outputs are already split: ``heat`` then ``paf``, whatever the architecture's own order.

Precisions (``rtpose.runtime.PRECISIONS``), each set explicitly as the CPU plugin's
``INFERENCE_PRECISION_HINT`` (on AMX and AVX512_BF16 machines its default is bf16; it is never
left to choose):

- ``fp32``: the Keras model's maps to about 1e-5;
- ``bf16``: the fp32 IR computed in bfloat16, only on a CPU that has bf16 instructions;
- ``int8``: a separate IR quantised by ``rtpose.runtime.openvino.quantize``; the layers NNCF
  leaves unquantised run in f32.

OpenVINO's own cache of compiled blobs (``CACHE_DIR``) is not used: compiling MobileNet-thin's
IR takes about 0.2 s, importing its blob no less.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.errors import RtposeError, first_line
from rtpose.runtime import PRECISIONS

if TYPE_CHECKING:
    import openvino as ov

HINTS = ("latency", "throughput")
INSTALL_OPENVINO = "pip install 'openvino>=2026.0,<2027'"
OUTPUTS = ("heat", "paf")
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVinoError(RtposeError):
    """OpenVINO is missing, or cannot convert, load or run the model at the asked precision."""


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line ``OpenVinoError`` saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise OpenVinoError(f"the openvino runtime needs OpenVINO: {INSTALL_OPENVINO}") from e
    return openvino


def check_precision(precision: str) -> None:
    """A one-line ``OpenVinoError`` unless ``precision`` is one of ``PRECISIONS``."""
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
        check_precision(precision)
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
        if self.info.get("precision", ir_precision(precision)) != ir_precision(precision):
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


def read_info(model: Any) -> dict[str, str]:
    """What rtpose recorded in an IR (``rt_info`` under ``rtpose``); empty if nothing."""
    if not model.has_rt_info(["rtpose"]):
        return {}
    info = model.get_rt_info(["rtpose"])
    return {str(key): value.astype(str) for key, value in info.astype(dict).items()}


def ir_precision(precision: str) -> str:
    """The precision of the IR that runs at ``precision``: ``int8``, else ``fp32``."""
    return "int8" if precision == "int8" else "fp32"
