"""The dataset server: augmented samples over ZeroMQ, a drop-in for the C++ rmpe_dataset_server.

The main process binds the public ZeroMQ PUSH socket on ``tcp://BIND:PORT`` (send high-water mark
160, as the original) and a private PULL socket on a random loopback port. ``BIND`` is the
loopback interface (127.0.0.1) unless ``--bind`` says otherwise: serving other machines takes
``--bind 0.0.0.0`` (every interface, as the C++ server's ``tcp://*``) or one of this machine's
addresses; anyone who can reach the port can pull the training data. ``workers`` spawned
processes each open the HDF5 file, transform their share of every epoch (:mod:`transformer`) and
push the messages (:mod:`wire`) to the main process, which forwards them to whichever clients are
connected and shows the progress of the epoch. Every epoch visits the samples in a new random
order; worker ``k`` of ``N`` takes positions ``k, k + N, ...`` of it.

``augment=False`` (``--no-augment``) serves a fixed set, for validation: the samples in file
order, each scaled to the target size and cropped around its main person, without the random
scale, rotation, offset or flip. With one worker, any ``len(dataset)`` consecutive messages hold
every sample once, so a validation loss over that many samples is the same in every epoch and
measures the model alone, not the draw of augmentations.

Seeds: ``seed`` fixes the epoch orders and each worker's augmentation stream, so with one worker
the stream of messages repeats exactly; with several, each worker's messages repeat but their
interleaving depends on timing.

Stopping: Ctrl+C or SIGTERM stop the main process, which terminates and joins the workers; a
worker also stops when the main process is gone.
"""

from __future__ import annotations

import errno
import ipaddress
import multiprocessing as mp
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zmq
from tqdm import tqdm

from rtpose.coco.hdf5_dataset import HDF5Dataset
from rtpose.data.augment import DEFAULT_PARAMS, Augmentation, AugmentParams
from rtpose.data.transformer import transform, transform_with
from rtpose.data.wire import encode_message
from rtpose.errors import RtposeError

SEND_HWM = 160  # the original server's ZMQ_SNDHWM
_WORKER_HWM = 4  # messages queued per worker before it waits
_POLL_MS = 200
_WORKER_ERROR_EXIT = 3
LOOPBACK = "127.0.0.1"


class DataServerError(RtposeError):
    """The dataset server cannot start or a worker failed."""


@dataclass(frozen=True)
class ServerConfig:
    """What to serve and how: dataset file, public port, worker processes, seed, augmentation,
    and the address to listen on."""

    dataset: Path
    port: int
    workers: int = 1
    seed: int | None = None
    params: AugmentParams = DEFAULT_PARAMS
    progress: bool = True
    augment: bool = True
    bind: str = LOOPBACK

    @property
    def endpoint(self) -> str:
        """The public ZeroMQ endpoint, ``tcp://ADDRESS:PORT`` (IPv6 addresses in brackets)."""
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"tcp://{host}:{self.port}"

    @property
    def local_only(self) -> bool:
        """Whether only this machine can connect (a loopback address)."""
        if self.bind == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:  # an interface name or '*'
            return False


def epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of ``epoch`` (the same in every worker)."""
    return np.random.default_rng([seed, 0, epoch]).permutation(num_samples)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _send(sock: zmq.Socket, frames: list[bytes]) -> None:
    """Send, waiting while the main process's queue is full; exit if the main process is gone."""
    parent = mp.parent_process()
    while not sock.poll(1000, zmq.POLLOUT):
        if parent is not None and not parent.is_alive():
            raise SystemExit(0)
    sock.send_multipart(frames, copy=False)


def _worker(
    path: Path, endpoint: str, index: int, count: int, seed: int, params: AugmentParams,
    augment: bool,
) -> None:
    """Worker process: transform this worker's share of every epoch and push it to ``endpoint``
    (in file order and without random augmentation when ``augment`` is false)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    cv2.setNumThreads(1)  # one core per worker, like the original server
    rng = np.random.default_rng([seed, 1, index])
    context = zmq.Context()
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, _WORKER_HWM)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        with HDF5Dataset(path) as dataset:
            epoch = 0
            while True:
                order = (epoch_order(len(dataset), seed, epoch) if augment
                         else np.arange(len(dataset)))
                for i in order[index::count]:
                    sample = dataset[int(i)]
                    arrays = (transform(sample, rng, params) if augment
                              else transform_with(sample, Augmentation(), params))
                    _send(sock, encode_message(*arrays))
                epoch += 1
    except RtposeError as err:
        print(f"error: worker {index}: {err}", file=sys.stderr, flush=True)
        sys.exit(_WORKER_ERROR_EXIT)
    finally:
        sock.close()
        context.term()


def _bind_public(sock: zmq.Socket, config: ServerConfig) -> None:
    if ":" in config.bind:
        sock.setsockopt(zmq.IPV6, 1)
    try:
        sock.bind(config.endpoint)
    except zmq.ZMQError as err:
        if err.errno == errno.EADDRINUSE:
            raise DataServerError(
                f"port {config.port} is already in use (another server?)") from err
        raise DataServerError(f"cannot listen on {config.endpoint}: {err}") from err


def _check_dataset(config: ServerConfig) -> int:
    """Open the dataset once in this process so a bad file fails here, with one message."""
    if not 1 <= config.port <= 65535:
        raise DataServerError(f"port must be in 1..65535, got {config.port}")
    params = config.params
    if params.crop_size <= 0 or params.crop_size % params.stride:
        raise DataServerError(
            f"crop size {params.crop_size} must be a positive multiple of stride {params.stride}"
        )
    if config.workers < 1:
        raise DataServerError(f"need at least one worker, got {config.workers}")
    with HDF5Dataset(config.dataset) as dataset:
        if len(dataset) == 0:
            raise DataServerError(f"{config.dataset} holds no samples")
        dataset[0]  # decodes: a malformed first sample fails now, not in a worker
        return len(dataset)


@contextmanager
def _workers(
    config: ServerConfig, endpoint: str, count: int, seed: int
) -> Iterator[list[mp.process.BaseProcess]]:
    """Start ``count`` worker processes; on exit terminate and join every one of them."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker,
            args=(config.dataset, endpoint, k, count, seed, config.params, config.augment),
            name=f"rtpose-dataset-worker-{k}",
            daemon=True,
        )
        for k in range(count)
    ]
    try:
        # started with SIGINT ignored, the workers never see Ctrl+C: the main process stops them
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in procs:
                proc.start()
        finally:
            signal.signal(signal.SIGINT, previous_int)
        yield procs
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _check_alive(procs: Sequence[mp.process.BaseProcess]) -> None:
    for k, proc in enumerate(procs):
        if proc.exitcode is not None:
            raise DataServerError(f"worker {k} stopped (exit code {proc.exitcode})")


def serve(config: ServerConfig) -> None:
    """Serve samples until interrupted (Ctrl+C, SIGTERM); raises DataServerError on failure."""
    num_samples = _check_dataset(config)
    seed = secrets.randbits(63) if config.seed is None else config.seed
    count = min(config.workers, num_samples)
    context = zmq.Context()
    public = context.socket(zmq.PUSH)
    public.setsockopt(zmq.SNDHWM, SEND_HWM)
    public.setsockopt(zmq.LINGER, 0)
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.LINGER, 0)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _bind_public(public, config)
        inbox_port = inbox.bind_to_random_port("tcp://127.0.0.1")
        reach = ("this machine only; --bind 0.0.0.0 serves others" if config.local_only
                 else "reachable from other machines")
        tqdm.write(
            f"serving {num_samples} samples of {config.dataset} on {config.endpoint} ({reach}) "
            f"with {count} worker(s), pid {os.getpid()}",
            file=sys.stderr,
        )
        with _workers(config, f"tcp://127.0.0.1:{inbox_port}", count, seed) as procs:
            _forward(inbox, public, procs, num_samples, config.progress)
    except KeyboardInterrupt:
        tqdm.write("dataset server stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        public.close()
        inbox.close()
        context.term()


def _forward(
    inbox: zmq.Socket, public: zmq.Socket, procs: Sequence[mp.process.BaseProcess],
    num_samples: int, progress: bool,
) -> None:
    """Pass the workers' messages to the clients, one epoch's worth of messages per bar."""
    epoch, sent = 1, 0
    with tqdm(total=num_samples, desc="epoch 1", unit="sample", disable=not progress) as bar:
        pending = None
        while True:
            if pending is None:
                if inbox.poll(_POLL_MS, zmq.POLLIN):
                    pending = inbox.recv_multipart(copy=False)
                else:
                    _check_alive(procs)
            elif public.poll(_POLL_MS, zmq.POLLOUT):
                public.send_multipart(pending, copy=False)
                pending = None
                sent += 1
                bar.update()
                if sent == num_samples:
                    epoch, sent = epoch + 1, 0
                    bar.reset(num_samples)
                    bar.set_description(f"epoch {epoch}")
            else:
                _check_alive(procs)
