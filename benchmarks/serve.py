"""The HTTP server under load on loopback, beside the pipeline's own speed in the same run.

    python -m benchmarks.serve [--clients 1 4 16] [--rounds 3] [--seconds 5] [--scales 1]
                               [--workers 2] [--queue 8] [--image sample_images/ski.jpg]
                               [--model PATH]

The machine is shared, so its speed drifts: the measurements are interleaved in ``--rounds``
rounds of ``--seconds`` each, and each row sums its rounds. A round measures the pipeline alone,
``PosePipeline.run`` on the decoded image in a loop, one at a time (one OpenVINO stream using
every core, as ``demo_image.py``) and ``--workers`` at a time (one stream each, as the server
runs it), images/s, the reference being the better of the two; then ``rtpose serve`` (API
only, in its own process) under each count of clients: that many threads, each with one
keep-alive connection, POSTing the image's file (raw body); a client answered 503 waits the
``Retry-After`` it was given. Per count: requests/s answered 200, their latency p50 and p99,
the 503s (refused: the queue was full) and the errors (anything else, or no answer); and the
latency that the queue bounds: the requests in hand (the clients, at most workers + queue) at
the rate measured in that row.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.machine import machine_header
from rtpose.models import find_default_weights
from rtpose.pipeline import PosePipeline
from rtpose.serve.models import Models, PoseRequest
from tests.serve_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0


def alone(weights: Path, scales: str, workers: int) -> PosePipeline:
    """The pipeline as the benchmark runs it alone: ``workers`` > 1 on OpenVINO's
    ``throughput`` hint (one stream per worker, as the server), else its ``latency`` hint."""
    models = Models({"model": weights}, hint="throughput" if workers > 1 else "latency")
    scale_values = tuple(float(s) for s in scales.split(","))
    return models.pipeline(models.check(PoseRequest("model", scales=scale_values)))


def run_alone(pipeline: PosePipeline, image: np.ndarray, seconds: float,
              workers: int) -> tuple[int, float]:
    """Images done by ``workers`` threads each running ``pipeline`` in a loop, and seconds."""
    done = [0] * workers
    start = time.perf_counter()

    def loop(index: int) -> None:
        while time.perf_counter() - start < seconds:
            pipeline.run(image)
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done), time.perf_counter() - start


def start_server(weights: Path, port: int, workers: int, queue: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "rtpose.tools.serve", "--model", f"model={weights}", "--port",
         str(port), "--workers", str(workers), "--queue", str(queue), "--no-page"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit("error: the server did not start")
        time.sleep(0.2)


def load(port: int, body: bytes, scales: str, clients: int, seconds: float) -> dict:
    """``clients`` threads POSTing ``body`` for ``seconds``: the 200s' latencies, the seconds,
    the 503s and the errors."""
    latencies: list[float] = []
    refused, errors = [0], [0]
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        while time.perf_counter() < end:
            start = time.perf_counter()
            try:
                connection.request("POST", f"/v1/pose?scales={scales}", body,
                                   {"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                response.read()
                status, retry = response.status, response.getheader("Retry-After")
            except OSError:
                status, retry = 0, None
                connection.close()
            took = time.perf_counter() - start
            with lock:
                if status == 200:
                    latencies.append(took)
                elif status == 503:
                    refused[0] += 1
                else:
                    errors[0] += 1
            if status == 503:
                time.sleep(min(float(retry or 1), max(end - time.perf_counter(), 0)))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "seconds": time.perf_counter() - start,
            "refused": refused[0], "errors": errors[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="seconds of each measurement in a round")
    parser.add_argument("--scales", default="1", help="the requests' scales (default 1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--image", type=Path, default=REPO / "sample_images" / "ski.jpg")
    parser.add_argument("--model", type=Path, default=None,
                        help="weights (default: the default weights file)")
    args = parser.parse_args(argv)
    weights = args.model or find_default_weights()[1]
    body = args.image.read_bytes()
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)

    print(machine_header())
    capacity = args.workers + args.queue
    print(f"{args.image.name} {image.shape[1]}x{image.shape[0]}, scales {args.scales}, "
          f"{weights.name}; server: {args.workers} workers, queue {args.queue} (capacity "
          f"{capacity}); {args.rounds} rounds of {args.seconds:g} s per row")
    pipelines = {w: alone(weights, args.scales, w) for w in sorted({1, args.workers})}
    for pipeline in pipelines.values():
        pipeline.run(image)  # warm-up
    own = {w: [0, 0.0] for w in pipelines}
    rows = {c: {"latencies": [], "seconds": 0.0, "refused": 0, "errors": 0}
            for c in args.clients}
    port = free_port()
    server = start_server(weights, port, args.workers, args.queue)
    try:
        load(port, body, args.scales, 1, min(args.seconds, 2.0))  # warm-up
        for _ in range(args.rounds):
            for workers, pipeline in pipelines.items():
                done, seconds = run_alone(pipeline, image, args.seconds, workers)
                own[workers][0] += done
                own[workers][1] += seconds
            for clients, row in rows.items():
                for key, value in load(port, body, args.scales, clients, args.seconds).items():
                    row[key] += value
    finally:
        server.terminate()
        server.wait(START_TIMEOUT_S)
    rates = {w: done / seconds for w, (done, seconds) in own.items()}
    reference = max(rates.values())
    print(f"pipeline alone: {rates[1]:.2f} images/s one at a time, {rates[args.workers]:.2f} "
          f"with {args.workers} at a time\n")
    print("| clients | requests/s | vs pipeline | p50 ms | p99 ms | queue bound ms | "
          "refused (503) | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for clients, row in rows.items():
        ms = np.array(row["latencies"]) * 1000
        rate = len(ms) / row["seconds"]
        bound = min(clients, capacity) / rate * 1000 if rate else float("inf")
        p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (0, 0)
        print(f"| {clients} | {rate:.2f} | {rate / reference:.0%} | {p50:.0f} | {p99:.0f} | "
              f"{bound:.0f} | {row['refused']} | {row['errors']} |")


if __name__ == "__main__":
    main()
