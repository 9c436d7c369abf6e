"""Training-data throughput: the transformer alone, and the dataset server with 1 and 2 workers.

    python -m benchmarks.dataset_server [--coco ../shared/data/coco_mini] [--samples 200]

Builds the HDF5 training file of coco_mini (train + val, 54 samples, masks included) in a
temporary folder with the package's writer, then measures samples per second of
* reading + decoding a sample from the HDF5 file,
* the transformer (augmentation + labels), one thread, for both resampling methods (also per
  second of CPU time, which a busy machine does not distort),
* the server with 1 and 2 worker processes, pulled by a client over loopback (after warm-up).
The original C++ server made 55-105 samples/s on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO

from benchmarks.machine import machine_header
from rtpose.coco.hdf5_dataset import HDF5Dataset, write_hdf5
from rtpose.coco.masks import write_masks
from rtpose.coco.selection import image_records
from rtpose.data.augment import AugmentParams
from rtpose.data.client import DataGeneratorClient
from rtpose.data.transformer import transform

REPO = Path(__file__).resolve().parents[1]
COCO_MINI = REPO.parent / "shared" / "data" / "coco_mini"


def build_hdf5(coco_dir: Path, out_dir: Path) -> Path:
    records = []
    for split in ("train2017", "val2017"):
        coco = COCO(str(coco_dir / "annotations" / f"person_keypoints_{split}.json"))
        masks = out_dir / f"mask{split}"
        write_masks(coco, coco_dir / split, masks, progress=False)
        records += image_records(coco, coco_dir / split, masks)
    train = out_dir / "train_dataset.h5"
    write_hdf5(records, train, out_dir / "val_dataset.h5", val_size=0, progress=False)
    return train


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}"


def bench_read(path: Path) -> tuple[str, list]:
    with HDF5Dataset(path) as dataset:
        start = time.perf_counter()
        loaded = [dataset[i] for i in range(len(dataset))]
        return rate(len(loaded), time.perf_counter() - start), loaded


def bench_transformer(loaded: list, samples: int, method: str) -> tuple[str, str]:
    """Samples per second of wall time and per second of this process's CPU time."""
    rng = np.random.default_rng(0)
    params = AugmentParams(method=method)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(samples):
        transform(loaded[i % len(loaded)], rng, params)
    return rate(samples, time.perf_counter() - start), rate(samples, time.process_time() - cpu)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_server(path: Path, samples: int, workers: int, method: str) -> str:
    port = free_port()
    path_list = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path_list))
    server = subprocess.Popen(
        [sys.executable, "-m", "rtpose.data.server", str(path), str(port), "--quiet",
         "--workers", str(workers), "--method", method, "--seed", "0"],
        env=env, stderr=subprocess.DEVNULL,
    )
    try:
        with DataGeneratorClient("127.0.0.1", port, timeout=120) as client:
            for _ in range(10 * workers):  # warm-up: workers started and busy
                client.receive()
            start = time.perf_counter()
            for _ in range(samples):
                client.receive()
            return rate(samples, time.perf_counter() - start)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, default=COCO_MINI, help="coco_mini folder")
    parser.add_argument("--samples", type=int, default=200, help="samples per measurement")
    parser.add_argument("--methods", nargs="+", default=["steps", "affine"],
                        choices=["steps", "affine"], help="resampling methods to measure")
    args = parser.parse_args(argv)
    print(machine_header())
    cv2.setNumThreads(1)  # one core, as each server worker
    with tempfile.TemporaryDirectory() as tmp:
        path = build_hdf5(args.coco, Path(tmp))
        read, loaded = bench_read(path)
        rows = [f"| HDF5 read + decode ({len(loaded)} samples) | - | - | {read} | - |"]
        for method in args.methods:
            alone, per_cpu = bench_transformer(loaded, args.samples, method)
            rows.append(f"| transformer alone, one thread | {method} | - | {alone} | {per_cpu} |")
            for workers in (1, 2):
                served = bench_server(path, args.samples, workers, method)
                rows.append(f"| server + client (loopback) | {method} | {workers} | {served} | - |")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load}\n")
    print("| what | method | workers | samples/s | samples per CPU-second |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
