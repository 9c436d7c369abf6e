"""Milliseconds per network call, per architecture, runtime and precision, at 1 scale and at 4.

Runtimes: ``predict`` (Keras ``model.predict``, the original demo's call), ``keras`` (one
``tf.function`` graph), ``xla`` (the same, ``jit_compile=True``), ``onnx`` (onnxruntime),
``openvino`` (OpenVINO Runtime, ``rtpose.runtime.openvino``) and ``litert`` (LiteRT with its
XNNPACK delegate, measured here only). Precisions (``--precision``), each where the runtime
has it: ``fp32`` (all), ``bf16`` (openvino), ``int8`` (openvino: NNCF; litert: the TFLite
converter's full-integer quantisation) and ``fp16`` (litert: fp16 weights). int8 is calibrated
on coco_mini train2017 images (MobileNet-thin: all of them, as ``rtpose.runtime.calibration``
reads them; random-weight CMU and LiteRT: 8, as only the speed counts).

``--openvino-modes`` adds OpenVINO variants: ``latency`` (one compiled model for every input
size, the default), ``static`` (one compiled model per input size) and ``throughput`` (the
throughput hint: one stream per core).

The input is built as the original demo does: resized by ``m * 368 / H`` (bicubic) and padded
right and down to a multiple of 8, for ``m = 1`` (1 scale) and ``m = 0.5, 1, 1.5, 2``. Tasks:
``1scale`` (one call), ``4scales`` (four sequential calls), ``4threads`` (the four calls in four
threads) and ``stream`` (``STREAM_FRAMES`` calls at scale 1 with two in flight where the
runtime can, as a video stream would; the figure is per frame). Runs are interleaved across
networks so a busy machine slows them alike; the median of ``--runs`` after one warm-up pass is
printed, wall-clock time and the process's CPU time (the steadier figure on a shared machine).
Timing depends only on the input's size, so without ``--image`` a 640x480 frame (a typical COCO
image) of noise is used; ``--size`` runs noise inputs of given sizes at scale 1 instead, one
table row each (``--size 368 368x656``: the CMU model's 368x368, and a 16:9 video frame's
368x656). CMU runs with random weights, MobileNet-thin with its real converted weights::

    python -m benchmarks.network --mobilenet-weights model/keras/mobilenet_thin.weights.h5
    python -m benchmarks.network --arch mobilenet_thin --runtime keras openvino \\
        --precision fp32 bf16 int8 --runs 20
    python -m benchmarks.network --arch cmu --size 368 --tasks 1scale --runtime keras openvino

``--backend tensorflow jax torch`` runs the benchmark once per Keras backend, each in its own
process (``KERAS_BACKEND`` is read at ``import keras``), and prints one table; there the
defaults are the ``keras`` runtime, the ``1scale`` task and ``--size 368 368x656``::

    python -m benchmarks.network --backend tensorflow jax torch --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.coco_mini import COCO_MINI
from benchmarks.machine import machine_header
from rtpose.errors import RtposeError
from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime.calibration import CalibrationImages, calibration_batches
from rtpose.runtime.export import export_model
from rtpose.runtime.keras_runtime import KerasNetwork
from rtpose.runtime.onnx_runtime import OnnxNetwork
from rtpose.runtime.openvino.cache import openvino_ir
from rtpose.runtime.openvino.network import OpenVinoNetwork
from rtpose.store import resolve

SCALES = (0.5, 1.0, 1.5, 2.0)
BOXSIZE, STRIDE, PAD_VALUE = 368, 8, 128
RUNTIMES = ("predict", "keras", "xla", "onnx", "openvino", "litert")
PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "litert": ("fp32", "fp16", "int8")}
OPENVINO_MODES = ("latency", "static", "throughput")
TASKS = ("1scale", "4scales", "4threads", "stream")
BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_SIZES = ("368x368", "368x656")
STREAM_FRAMES = 8
SPEED_ONLY_CALIBRATION = 8
LITERT_INSTALL = "pip install ai-edge-litert"
CALIBRATION = COCO_MINI / "train2017"


def network_input(image: np.ndarray, m: float) -> np.ndarray:
    """The original demo's input at scale ``m``: (1, H', W', 3) float32."""
    factor = m * BOXSIZE / image.shape[0]
    x = cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    h, w = x.shape[:2]
    x = cv2.copyMakeBorder(x, 0, -h % STRIDE, 0, -w % STRIDE, cv2.BORDER_CONSTANT,
                           value=(PAD_VALUE,) * 3)
    return x[np.newaxis].astype(np.float32)


class LiteRtNetwork:
    """The model as a LiteRT (TFLite) file run by the XNNPACK delegate: exported once at the
    first input's size, and re-planned (``resize_tensor_input``) for each new size. Returns the
    model's raw outputs; one call at a time."""

    def __init__(self, model, precision: str, folder: Path, first_shape: tuple[int, ...]):
        import tensorflow as tf
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RtposeError(f"the litert runtime needs LiteRT: {LITERT_INSTALL}") from e

        self._interpreter_class = Interpreter
        options = {}
        if precision == "fp16":
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "target_spec": {"supported_types": [tf.float16]}}
        elif precision == "int8":
            size = (first_shape[2], first_shape[1])
            # Resized to the exported input's size: no padding (stride 1) is needed first.
            samples = [cv2.resize(b[0], size)[np.newaxis] for b in
                       calibration_batches(CALIBRATION, 1, SPEED_ONLY_CALIBRATION)]
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "representative_dataset": lambda: ([s] for s in samples)}
        path = folder / f"{model.name}-{precision}.tflite"
        model.export(str(path), format="litert", verbose=False,
                     input_signature=[tf.TensorSpec(first_shape, tf.float32, name="image")],
                     **options)
        self._content = path.read_bytes()
        self._interpreters: dict[tuple[int, ...], object] = {}
        self._lock = threading.Lock()

    def _interpreter(self, shape: tuple[int, ...]):
        if shape not in self._interpreters:
            interpreter = self._interpreter_class(model_content=self._content,
                                                  num_threads=os.cpu_count())
            interpreter.resize_tensor_input(0, list(shape))
            interpreter.allocate_tensors()
            self._interpreters[shape] = interpreter
        return self._interpreters[shape]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            interpreter = self._interpreter(batch.shape)
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
            interpreter.invoke()
            return [interpreter.get_tensor(d["index"])
                    for d in interpreter.get_output_details()]


def make_calls(model, arch, weights: Path | None, args, folder: Path,
               first_shape: tuple[int, ...]) -> dict:
    """One ``batch -> outputs`` callable per runtime, precision and OpenVINO mode."""
    calls = {}
    irs: dict[str, Path] = {}  # OpenVINO IR per IR precision (fp32 serves bf16)
    for runtime in args.runtime:
        precisions = [p for p in args.precision if p in PRECISIONS.get(runtime, ("fp32",))]
        for precision in precisions:
            label = runtime if runtime not in PRECISIONS else f"{runtime} {precision}"
            start = time.perf_counter()
            if runtime == "predict":
                calls[label] = lambda x, model=model: model.predict(x, verbose=0)
            elif runtime in ("keras", "xla"):
                calls[label] = KerasNetwork(model, arch, jit_compile=runtime == "xla")
            elif runtime == "onnx":
                path = export_model(model, "onnx", folder / f"{arch.name}.onnx")
                calls[label] = OnnxNetwork(path, arch)
            elif runtime == "litert":
                calls[label] = LiteRtNetwork(model, precision, folder, first_shape)
            else:
                calibration = CalibrationImages(CALIBRATION, arch.stride)
                if precision == "int8" and weights is None:
                    calibration = calibration_batches(CALIBRATION, arch.stride,
                                                      SPEED_ONLY_CALIBRATION)
                # One IR for every mode, and fp32's for bf16 too (converted once without
                # weights to cache it beside).
                kind = "int8" if precision == "int8" else "fp32"
                if kind not in irs:
                    irs[kind] = openvino_ir(arch, weights, model, kind, calibration)
                for mode in args.openvino_modes:
                    name = label if mode == "latency" else f"{label} {mode}"
                    calls[name] = OpenVinoNetwork(
                        irs[kind], precision,
                        hint="throughput" if mode == "throughput" else "latency",
                        static_shapes=mode == "static")
            if runtime in ("onnx", "litert", "openvino"):
                print(f"{arch.name} {label}: ready in {time.perf_counter() - start:.1f} s "
                      "(export, conversion or cache)")
    return calls


def stream(call, x: np.ndarray) -> None:
    """``STREAM_FRAMES`` calls on ``x``, two in flight where the network can submit."""
    if hasattr(call, "submit"):
        pending = [call.submit(x) for _ in range(STREAM_FRAMES)]
        for p in pending:
            p.result()
    else:
        for _ in range(STREAM_FRAMES):
            call(x)


def measure(calls: dict, inputs: list[np.ndarray], tasks: list[str], runs: int,
            desc: str) -> dict:
    """Median (wall, CPU) seconds of each task per network (``stream``: per frame)."""
    scale1 = inputs[SCALES.index(1.0)]
    pool = ThreadPoolExecutor(len(inputs))
    jobs = {
        "1scale": lambda call: call(scale1),
        "4scales": lambda call: [call(x) for x in inputs],
        "4threads": lambda call: list(pool.map(call, inputs)),
        "stream": lambda call: stream(call, scale1),
    }
    per_call = {"stream": STREAM_FRAMES}
    scales = set(tasks) & {"4scales", "4threads"}
    for name, call in calls.items():  # warm-up: traces and compiles every shape used
        start = time.perf_counter()
        jobs["4scales" if scales else "1scale"](call)
        print(f"{desc} {name}: first pass ({'all scales' if scales else 'scale 1'}) "
              f"{time.perf_counter() - start:.1f} s")
    times = {(name, task): [] for name in calls for task in tasks}
    for _ in tqdm(range(runs), desc=desc):
        for task in tasks:
            for name, call in calls.items():
                wall, cpu = time.perf_counter(), time.process_time()
                jobs[task](call)
                n = per_call.get(task, 1)
                times[name, task].append(((time.perf_counter() - wall) / n,
                                          (time.process_time() - cpu) / n))
    pool.shutdown()
    return {key: np.median(value, axis=0) for key, value in times.items()}


def input_size(text: str) -> tuple[int, int]:
    """``N`` (N x N) or ``HxW``, as (H, W)."""
    try:
        sides = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        sides = ()
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < STRIDE:
        raise argparse.ArgumentTypeError(f"expected N or HxW (at least {STRIDE}), got {text!r}")
    return sides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES,
                        help="runtimes to time (default: all; with --backend: keras)")
    parser.add_argument("--precision", nargs="+", default=["fp32"],
                        choices=("fp32", "bf16", "int8", "fp16"),
                        help="precisions to run, each where the runtime has it (default fp32)")
    parser.add_argument("--openvino-modes", nargs="+", choices=OPENVINO_MODES,
                        default=["latency"],
                        help="latency: one model for all sizes (default); static: one per "
                             "size; throughput: the throughput hint")
    parser.add_argument("--mobilenet-weights", type=Path, default=None,
                        help="default: rtpose.store's mobilenet_thin (checkout, then store)")
    parser.add_argument("--image", type=Path, help="input image (default: 640x480 noise)")
    parser.add_argument("--size", nargs="+", type=input_size,
                        help="noise inputs at scale 1, N (square) or HxW, one row each "
                             "(default: the image's; with --backend: 368 368x656)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS,
                        help="1scale: one call at scale 1; 4scales: the 4 scales in turn; "
                             "4threads: the 4 scales in 4 threads; stream: calls at scale 1, "
                             "two in flight where possible (default: all; with --backend: "
                             "1scale)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default %(default)s)")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS,
                        help="Keras backends to compare, one process each, in one table "
                             "(default: this process's KERAS_BACKEND)")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # a backend process's rows
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.mobilenet_weights is None and "mobilenet_thin" in args.arch:
        args.mobilenet_weights = resolve("mobilenet_thin", fetch_missing=False)
    if args.backend:
        compare_backends(args)
        return
    args.runtime = args.runtime or list(RUNTIMES)
    args.tasks = args.tasks or list(TASKS)

    print(machine_header())
    rng = np.random.default_rng(0)
    if args.size:
        input_sets = [[rng.uniform(0, 255, (1, round(m * h) // 8 * 8, round(m * w) // 8 * 8, 3))
                       .astype(np.float32) for m in SCALES] for h, w in args.size]
    else:
        if args.image is None:
            image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        elif (image := cv2.imread(str(args.image))) is None:
            sys.exit(f"error: cannot read image {args.image}")
        input_sets = [[network_input(image, m) for m in SCALES]]
    for inputs in input_sets:
        print("network inputs (HxW): " + ", ".join(f"{x.shape[1]}x{x.shape[2]}" for x in inputs))

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.arch:
            try:
                if name == "mobilenet_thin":
                    weights = args.mobilenet_weights
                    model, arch = load_model(name, weights)
                else:
                    arch, weights = ARCHITECTURES[name], None
                    model = arch.build()
                first = input_sets[0][SCALES.index(1.0)].shape
                calls = make_calls(model, arch, weights, args, Path(folder), first)
            except RtposeError as e:
                sys.exit(f"error: {e}")
            for inputs in input_sets:
                shape = inputs[SCALES.index(1.0)].shape
                size = f"{shape[1]}x{shape[2]}"
                result = measure(calls, inputs, args.tasks, args.runs, f"{name} {size}")
                rows += [(name, size, label, [[float(v) for v in result[label, task]]
                                              for task in args.tasks]) for label in calls]
    if args.json:
        args.json.write_text(json.dumps(rows))
        return
    print(f"\n{machine_header()}")
    print_table(rows, "runtime", args)


def print_table(rows: list, column: str, args: argparse.Namespace) -> None:
    """Median ms, wall / CPU, one row per (arch, scale-1 input, ``column``)."""
    print(f"median ms per image, wall / CPU (all threads of the process), {args.runs} runs after "
          f"warm-up; stream: per frame")
    width = max(len(label) for _, _, label, _ in rows) + 2
    print(f"{'arch':<16}{'input':<10}{column:<{width}}"
          + "".join(f"{task:>18}" for task in args.tasks))
    for name, size, label, seconds in rows:
        print(f"{name:<16}{size:<10}{label:<{width}}"
              + "".join(f"{1000 * wall:>10.1f} /{1000 * cpu:>6.0f}" for wall, cpu in seconds))


def compare_backends(args: argparse.Namespace) -> None:
    """This benchmark once per backend, each in a process with ``KERAS_BACKEND`` set; one
    table."""
    args.runtime = args.runtime or ["keras"]
    args.tasks = args.tasks or ["1scale"]
    sizes = [f"{h}x{w}" for h, w in args.size] if args.size else \
        [] if args.image else list(BACKEND_SIZES)
    command = [sys.executable, "-m", "benchmarks.network", "--arch", *args.arch,
               "--runtime", *args.runtime, "--precision", *args.precision,
               "--openvino-modes", *args.openvino_modes,
               "--mobilenet-weights", str(args.mobilenet_weights), "--tasks", *args.tasks,
               "--runs", str(args.runs),
               *(["--size", *sizes] if sizes else ["--image", str(args.image)])]
    print(machine_header())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backend:
            out = Path(folder) / f"{backend}.json"
            print(f"--- {backend}", flush=True)
            done = subprocess.run([*command, "--json", str(out)],
                                  env={**os.environ, "KERAS_BACKEND": backend})
            if done.returncode != 0:
                sys.exit(f"error: the {backend} run failed (exit {done.returncode})")
            rows += [(name, size, f"{backend} {label}", seconds)
                     for name, size, label, seconds in json.loads(out.read_text())]
    rows.sort(key=lambda row: (args.arch.index(row[0]), row[1]))
    print(f"\n{machine_header()}")
    print_table(rows, "backend runtime", args)


if __name__ == "__main__":
    main()
