"""Inputs shared by several test modules: the original demo's network input for an image, the
saved MobileNet-thin outputs on ski.jpg (``original_formats/ski_mobilenet_thin_netout.npz``),
plain functions as networks (run at once or asynchronously), a pipeline that sees one person
per frame without a model, a clock that tests advance, the processes, ports and one-line
errors of the fault tests, and a script prelude that hides TensorFlow."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_people, render_maps

from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.decode.faithful import average_maps
from rtpose.geometry import Geometry, prepare_input, scale_factors
from rtpose.pipeline import PosePipeline
from rtpose.skeleton import NUM_HEATMAPS

SKI_SHAPE = (674, 712, 3)
STRIDE = 8  # both architectures'


class FunctionNetwork:
    """A ``rtpose.runtime.Network`` from a function ``batch -> (heat, paf)``."""

    runtime = "function"
    architecture = "test"

    def __init__(self, function: Callable, stride: int = STRIDE) -> None:
        self.function = function
        self.stride = stride

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.function(batch)


class AsyncFunctionNetwork(FunctionNetwork):
    """A ``FunctionNetwork`` that also runs batches asynchronously (``submit``), each in a
    thread of its own, so that they may finish out of order; ``most_in_flight``: the most
    batches it ever held at once."""

    def __init__(self, function: Callable, stride: int = STRIDE) -> None:
        super().__init__(function, stride)
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def submit(self, batch: np.ndarray) -> PendingCall:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return PendingCall(self, batch.copy())


class PendingCall:
    """A batch running in its own thread: ``result()`` waits for the function's maps."""

    def __init__(self, network: AsyncFunctionNetwork, batch: np.ndarray) -> None:
        self.network_s = 0.0
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        self._thread = threading.Thread(target=self._run, args=(network, batch))
        self._thread.start()

    def _run(self, network: AsyncFunctionNetwork, batch: np.ndarray) -> None:
        start = time.perf_counter()
        try:
            self._maps = network.function(batch)
        finally:
            self.network_s = time.perf_counter() - start
            with network._lock:
                network.in_flight -= 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._thread.join()
        if self._maps is None:
            raise RuntimeError("the network failed")
        return self._maps


def full_maps(image: np.ndarray, network: Callable, params: InferenceParams):
    """Heatmaps (H, W, 19) and PAFs (H, W, 38) of a function network, averaged over the scales
    in the image frame (the faithful method's maps)."""
    inferred = PosePipeline(FunctionNetwork(network), params, CMU_GROUPING).infer(image)
    return average_maps(inferred.outputs, inferred.geometry)


def demo_input(image: np.ndarray, height: int = 368) -> np.ndarray:
    """The original demo's network input: bicubic resize to ``height``, pad 128 to x8, batch
    of one, float32."""
    padded, _ = prepare_input(image, height / image.shape[0], STRIDE)
    return padded[np.newaxis].astype(np.float32)


def ski_outputs(shared_data: Path, scales: tuple[float, ...]):
    """The saved outputs at ``scales`` as per scale (heatmaps, PAFs), and their geometry."""
    saved = np.load(shared_data / "original_formats" / "ski_mobilenet_thin_netout.npz")
    params = InferenceParams(scales=scales)
    outputs, pads = [], []
    for scale, factor in zip(scales, scale_factors(SKI_SHAPE[0], params), strict=True):
        # Pads follow from resizing the image; a blank image of the ski size gives them.
        padded, pad = prepare_input(np.zeros(SKI_SHAPE, np.uint8), factor, STRIDE)
        assert padded.shape[:2] == tuple(saved[f"in_hw_{scale}"])
        raw = saved[f"s{scale}"][0]
        outputs.append((raw[..., :NUM_HEATMAPS], raw[..., NUM_HEATMAPS:]))
        pads.append(pad)
    return outputs, Geometry(SKI_SHAPE[:2], tuple(pads), STRIDE)


def person_network(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A network that sees one standing person whose place follows the input's mean green
    level: each frame of a video whose colour changes gets its own person. Ideal maps
    (``synthetic.render_maps``) at stride 8, in the padded input's frame."""
    h, w = batch.shape[1] // STRIDE, batch.shape[2] // STRIDE
    level = float(batch[0, :, :, 1].mean()) / 255
    people = make_people([[w * (0.3 + 0.4 * level), h * 0.25]], [h * 0.6])
    heat, paf = render_maps(people, (h, w), sigma=1.0, limb_width=1.0)
    return heat[np.newaxis], paf[np.newaxis]


def person_pipeline(args, threads: int | None = None) -> PosePipeline:
    """``rtpose.tools.common.pipeline_from_args``'s stand-in: ``person_network`` at the
    flags' boxsize and scales, without a model."""
    params = InferenceParams(boxsize=args.boxsize or 184, scales=args.scales)
    return PosePipeline(FunctionNetwork(person_network), params, CMU_GROUPING)


def crashing_network(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``person_network``, but the process exits (code 3) on a bright green input, as a
    decoder's crash would."""
    if batch[0, :, :, 1].mean() > 190:
        os._exit(3)
    return person_network(batch)


def crashing_pipeline(args, threads: int | None = None) -> PosePipeline:
    """``person_pipeline`` with ``crashing_network``."""
    params = InferenceParams(boxsize=args.boxsize or 184, scales=args.scales)
    return PosePipeline(FunctionNetwork(crashing_network), params, CMU_GROUPING)


def stalling_network(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``person_network``, but the process stops itself (``SIGSTOP``, as a read that never
    returns would stall it) on a bright red input."""
    if batch[0, :, :, 2].mean() > 190:
        os.kill(os.getpid(), signal.SIGSTOP)
    return person_network(batch)


def stalling_pipeline(args, threads: int | None = None) -> PosePipeline:
    """``person_pipeline`` with ``stalling_network``."""
    params = InferenceParams(boxsize=args.boxsize or 184, scales=args.scales)
    return PosePipeline(FunctionNetwork(stalling_network), params, CMU_GROUPING)


class FakeClock:
    """``time.perf_counter`` that a test moves on: the real clock plus every ``advance``, so
    that a stand-in network "takes" seconds without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real = time.perf_counter

    def __call__(self) -> float:
        return self._real() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(repo_root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root, as a user would."""
    return subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(repo_root)})


def one_line_error(stderr: str, start: str = "error: ") -> str:
    """The last line of ``stderr``, checked to be the one-line message (no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(start), stderr[-3000:]
    return last


def exit_message(excinfo: pytest.ExceptionInfo[SystemExit]) -> str:
    """The message of a ``SystemExit``, checked to be one ``error: `` line."""
    message = str(excinfo.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def temporaries(folder: Path) -> list[str]:
    """Names of the temporaries in ``folder`` (``rtpose.files``' and converters' ``.partial``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-")
                  or p.name.endswith(".partial"))


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def use_person_pipeline(monkeypatch, *tools) -> list:
    """Give each tool module ``person_pipeline`` for its ``pipeline_from_args``; returns the list
    of the flags it is called with, to see whether (and when) a tool built its model."""
    calls = []

    def pipeline(args, *_, **__):
        calls.append(args)
        return person_pipeline(args)

    for tool in tools:
        monkeypatch.setattr(tool, "pipeline_from_args", pipeline)
    return calls


# Python run with ``-c``: this prelude makes TensorFlow unimportable, as on the inference install.
NO_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):  # as if TensorFlow were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
"""
