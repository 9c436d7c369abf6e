"""Seconds per training step and samples per second, CMU and MobileNet-thin, synthetic batches.

The full training step of ``training/train_pose.py`` (training model with masks, 12 Euclidean
losses, Caffe SGD with multipliers and decay), on random images and labels: no server needed.
The first step (tracing) is timed apart. Example::

    python -m benchmarks.train_step --crop-size 368 --batch-size 10 --steps 3
    python -m benchmarks.train_step --backend tensorflow jax torch   # one process each

Without ``--backend`` it runs on the backend of ``KERAS_BACKEND``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_header
from rtpose.models import ARCHITECTURES, get_architecture
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS
from rtpose.train.config import TrainConfig
from rtpose.train.trainer import build_training_model, compile_for_training

BACKENDS = ("tensorflow", "jax", "torch")


def synthetic_batch(batch: int, crop: int, stages: int, seed: int = 0):
    """Images, all-ones masks and masked-label-like maps of the server's shapes (NHWC)."""
    rng = np.random.default_rng(seed)
    side = crop // 8
    image = rng.uniform(0, 255, (batch, crop, crop, 3)).astype("float32")
    masks = tuple(np.ones((batch, side, side, c), "float32") for c in (NUM_PAFS, NUM_HEATMAPS))
    labels = (rng.normal(0, 0.1, (batch, side, side, NUM_PAFS)).astype("float32"),
              rng.uniform(0, 1, (batch, side, side, NUM_HEATMAPS)).astype("float32"))
    return (image, *masks), labels * stages


def time_steps(arch: str, batch: int, crop: int, steps: int) -> tuple[float, float]:
    """(first step seconds, mean seconds of the following ``steps``)."""
    config = TrainConfig(arch=arch, crop_size=crop, batch_size=batch, from_scratch=True)
    architecture = get_architecture(arch)
    model = build_training_model(config, architecture)
    compile_for_training(model, config, architecture)
    x, y = synthetic_batch(batch, crop, config.stages)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return first, (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", choices=sorted(ARCHITECTURES),
                   default=["mobilenet_thin", "cmu"])
    p.add_argument("--crop-size", type=int, default=368)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    p.add_argument("--backend", nargs="+", choices=BACKENDS,
                   help="Keras backends to compare, each in its own process "
                        "(default: this process's KERAS_BACKEND)")
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # a backend process's rows
    args = p.parse_args(argv)
    print(machine_header())
    if args.backend:
        rows = [row for backend in args.backend for row in run_backend(backend, args)]
    else:
        import keras

        rows = []
        for arch in args.archs:
            first, per_step = time_steps(arch, args.batch_size, args.crop_size, args.steps)
            rows.append((keras.backend.backend(), arch, first, per_step))
            print(f"{arch}: first step {first:.1f} s, then {per_step:.2f} s/step", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows))
            return
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"peak memory {peak_gib:.1f} GiB")
    print(f"\n{machine_header()}")
    print(f"crop {args.crop_size}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'backend':<12}{'architecture':<16}{'first step s':>14}{'s/step':>10}"
          f"{'samples/s':>11}")
    for backend, arch, first, per_step in rows:
        print(f"{backend:<12}{arch:<16}{first:>14.1f}{per_step:>10.2f}"
              f"{args.batch_size / per_step:>11.2f}")


def run_backend(backend: str, args: argparse.Namespace) -> list[list]:
    """This benchmark's rows from a process with ``KERAS_BACKEND=backend``."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        command = [sys.executable, "-m", "benchmarks.train_step", "--archs", *args.archs,
                   "--crop-size", str(args.crop_size), "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--json", str(out)]
        print(f"--- {backend}", flush=True)
        done = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend})
        if done.returncode != 0:
            sys.exit(f"error: the {backend} run failed (exit {done.returncode})")
        return json.loads(out.read_text())


if __name__ == "__main__":
    main()
