"""Milliseconds per network call, per architecture and runtime, at 1 scale and at 4 scales.

Runtimes: ``predict`` (Keras ``model.predict``, the original demo's call), ``keras`` (one
``tf.function`` graph), ``xla`` (the same, ``jit_compile=True``) and ``onnx`` (onnxruntime),
all from ``rtpose.runtime`` except ``predict``. The input is built as the original demo does:
resized by ``m * 368 / H`` (bicubic) and padded right and down to a multiple of 8, for
``m = 1`` (1 scale) and ``m = 0.5, 1, 1.5, 2`` (4 scales: four sequential calls, and the four
calls in four threads). Runs are interleaved across runtimes so a busy machine slows them
alike; the median of ``--runs`` after one warm-up pass is printed, wall-clock time and the
process's CPU time (the steadier figure on a shared machine). Timing depends only on the
input's size, so without ``--image`` a 640x480 frame (a typical COCO image) of noise is used.
CMU runs with random weights, MobileNet-thin with its real converted weights::

    python -m benchmarks.network --mobilenet-weights model/keras/mobilenet_thin.weights.h5
    python -m benchmarks.network --arch mobilenet_thin --runtime keras onnx --runs 20

``--backend tensorflow jax torch`` times the ``keras`` runtime on each Keras backend, each in
its own process (the other runtimes are TensorFlow's or none), in one table; ``--frame 1280x720``
sets the noise frame's size (368x656 network input at scale 1; ``368x368`` gives 368x368)::

    python -m benchmarks.network --backend tensorflow jax torch --tasks 1scale --frame 368x368
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rtpose.errors import RtposeError
from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime.export import export_model
from rtpose.runtime.keras_runtime import KerasNetwork
from rtpose.runtime.onnx_runtime import OnnxNetwork

SCALES = (0.5, 1.0, 1.5, 2.0)
BOXSIZE, STRIDE, PAD_VALUE = 368, 8, 128
RUNTIMES = ("predict", "keras", "xla", "onnx")
TASKS = ("1scale", "4scales", "4threads")
BACKENDS = ("tensorflow", "jax", "torch")


def network_input(image: np.ndarray, m: float) -> np.ndarray:
    """The original demo's input at scale ``m``: (1, H', W', 3) float32."""
    factor = m * BOXSIZE / image.shape[0]
    x = cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    h, w = x.shape[:2]
    x = cv2.copyMakeBorder(x, 0, -h % STRIDE, 0, -w % STRIDE, cv2.BORDER_CONSTANT,
                           value=(PAD_VALUE,) * 3)
    return x[np.newaxis].astype(np.float32)


def make_calls(model, arch, runtimes: list[str], folder: Path) -> dict:
    """One ``batch -> outputs`` callable per runtime."""
    calls = {}
    for runtime in runtimes:
        if runtime == "predict":
            calls[runtime] = lambda x, model=model: model.predict(x, verbose=0)
        elif runtime in ("keras", "xla"):
            calls[runtime] = KerasNetwork(model, arch, jit_compile=runtime == "xla")
        else:
            start = time.perf_counter()
            path = export_model(model, "onnx", folder / f"{arch.name}.onnx")
            print(f"{arch.name}: ONNX export {time.perf_counter() - start:.1f} s")
            calls[runtime] = OnnxNetwork(path, arch)
    return calls


def measure(calls: dict, inputs: list[np.ndarray], tasks: list[str], runs: int,
            desc: str) -> dict:
    """Median (wall, CPU) seconds of each task per runtime."""
    scale1 = inputs[SCALES.index(1.0)]
    pool = ThreadPoolExecutor(len(inputs))
    jobs = {
        "1scale": lambda call: call(scale1),
        "4scales": lambda call: [call(x) for x in inputs],
        "4threads": lambda call: list(pool.map(call, inputs)),
    }
    for name, call in calls.items():  # warm-up: traces and compiles every shape
        start = time.perf_counter()
        jobs["4scales"](call)
        print(f"{desc} {name}: first pass (all scales) {time.perf_counter() - start:.1f} s")
    times = {(name, task): [] for name in calls for task in tasks}
    for _ in tqdm(range(runs), desc=desc):
        for task in tasks:
            for name, call in calls.items():
                wall, cpu = time.perf_counter(), time.process_time()
                jobs[task](call)
                times[name, task].append((time.perf_counter() - wall, time.process_time() - cpu))
    pool.shutdown()
    return {key: np.median(value, axis=0) for key, value in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--mobilenet-weights", type=Path,
                        default=Path("model/keras/mobilenet_thin.weights.h5"))
    parser.add_argument("--image", type=Path, help="input image (default: 640x480 noise)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                        help="1scale: one call at scale 1; 4scales: the 4 scales in turn; "
                             "4threads: the 4 scales in 4 threads")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default %(default)s)")
    parser.add_argument("--frame", default="640x480",
                        help="WxH of the noise frame without --image (default %(default)s)")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS,
                        help="time the keras runtime on these Keras backends, one process each")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # a backend process's rows
    args = parser.parse_args(argv)
    if args.backend:
        return compare_backends(args, argv if argv is not None else sys.argv[1:])

    if args.image is None:
        width, height = (int(v) for v in args.frame.split("x"))
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif (image := cv2.imread(str(args.image))) is None:
        sys.exit(f"error: cannot read image {args.image}")
    inputs = [network_input(image, m) for m in SCALES]
    print(f"image {image.shape[1]}x{image.shape[0]}, network inputs (HxW): "
          + ", ".join(f"{x.shape[1]}x{x.shape[2]}" for x in inputs))

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.arch:
            try:
                if name == "mobilenet_thin":
                    model, arch = load_model(name, args.mobilenet_weights)
                else:
                    arch = ARCHITECTURES[name]
                    model = arch.build()
                calls = make_calls(model, arch, args.runtime, Path(folder))
            except RtposeError as e:
                sys.exit(f"error: {e}")
            result = measure(calls, inputs, args.tasks, args.runs, name)
            rows += [(name, runtime, [result[runtime, task] for task in args.tasks])
                     for runtime in calls]
    if args.json:
        args.json.write_text(json.dumps([(n, r, [[float(v) for v in t] for t in s])
                                         for n, r, s in rows]))
        return

    print(f"\nmedian ms, wall / CPU (all threads of the process), {args.runs} runs after warm-up")
    print(f"{'arch':<16}{'runtime':<9}" + "".join(f"{task:>18}" for task in args.tasks))
    for name, runtime, seconds in rows:
        print(f"{name:<16}{runtime:<9}"
              + "".join(f"{1000 * wall:>10.0f} /{1000 * cpu:>6.0f}" for wall, cpu in seconds))



def compare_backends(args: argparse.Namespace, argv: list[str]) -> None:
    """Run this benchmark's ``keras`` runtime once per backend, in its own process; one table."""
    drop = {"--backend", "--runtime"}
    passed, skipping = [], False
    for arg in argv:
        if arg.startswith("--"):
            skipping = arg.split("=")[0] in drop
        if not skipping:
            passed.append(arg)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backend:
            out = Path(folder) / f"{backend}.json"
            print(f"--- {backend}", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.network", *passed, "--runtime", "keras",
                 "--json", str(out)], env={**os.environ, "KERAS_BACKEND": backend})
            if done.returncode != 0:
                sys.exit(f"error: the {backend} run failed (exit {done.returncode})")
            rows += [(name, backend, seconds) for name, _, seconds in json.loads(out.read_text())]
    print(f"\nkeras runtime per backend: median ms, wall / CPU, {args.runs} runs after warm-up")
    print(f"{'arch':<16}{'backend':<11}" + "".join(f"{task:>18}" for task in args.tasks))
    for name, backend, seconds in rows:
        print(f"{name:<16}{backend:<11}"
              + "".join(f"{1000 * wall:>10.0f} /{1000 * cpu:>6.0f}" for wall, cpu in seconds))


if __name__ == "__main__":
    main()
