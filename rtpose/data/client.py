"""The dataset client: batches for training from one or more dataset servers.

``DataGeneratorClient`` is the original ``training/ds_generator_client.py`` class: one ZeroMQ PULL
socket (receive high-water mark 160) connected to every server endpoint, which share the load.
``gen()`` yields ``(inputs, outputs)`` batches for the training model:

* ``inputs = [image, paf_mask, heat_mask]``: image ``(B, H, W, 3)`` float32 BGR 0..255; the
  sample's mask repeated to ``(B, h, w, 38)`` and ``(B, h, w, 19)``;
* ``outputs``: ``[paf, heat] * stages``, i.e. ``2 * stages`` arrays (stage 1 PAF, stage 1
  heatmaps, stage 2 PAF, ...), the same ``(B, h, w, 38)`` and ``(B, h, w, 19)`` labels (already
  masked on the wire) for every stage. All float32.

Shapes come from the messages' headers, so any crop size works. When no sample arrives within
``timeout`` seconds, ``gen()`` raises :class:`DataServerTimeout` instead of waiting forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import zmq

from rtpose.data.wire import decode_message
from rtpose.errors import RtposeError
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS

RECV_HWM = 160  # the original client's high-water mark

Batch = tuple[list[np.ndarray], list[np.ndarray]]


class DataServerTimeout(RtposeError):
    """No sample arrived from the dataset server(s) in time."""


class DataGeneratorClient:
    """Pull samples from dataset servers and group them into training batches.

    ``DataGeneratorClient("localhost", 5555)`` or, for several servers,
    ``DataGeneratorClient(endpoints=[("host1", 5555), ("host2", 5555)])``. Call :meth:`start`
    (or use ``with``), iterate :meth:`gen`, then :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 5555,
        hwm: int = RECV_HWM,
        batch_size: int = 10,
        timeout: float = 60.0,
        stages: int = 6,
        endpoints: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        if batch_size < 1 or stages < 1:
            raise RtposeError(f"batch size and stages must be at least 1, got {batch_size} "
                              f"and {stages}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise RtposeError(f"timeout must be a positive number of seconds, got {timeout}")
        self.endpoints = list(endpoints) if endpoints else [(host, port)]
        for server, server_port in self.endpoints:
            if not 1 <= int(server_port) <= 65535:
                raise RtposeError(f"port must be in 1..65535, got {server}:{server_port}")
        self.hwm = hwm
        self.batch_size = batch_size
        self.timeout = timeout
        self.stages = stages
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None

    @property
    def addresses(self) -> list[str]:
        return [f"tcp://{host}:{port}" for host, port in self.endpoints]

    def start(self) -> DataGeneratorClient:
        """Connect the PULL socket to every endpoint (connecting succeeds without a server)."""
        self.stop()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.RCVHWM, self.hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        for address in self.addresses:
            self._socket.connect(address)
        return self

    def stop(self) -> None:
        """Close the socket; :meth:`start` may be called again."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def restart(self) -> None:
        self.start()

    def __enter__(self) -> DataGeneratorClient:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def receive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sample as sent: image (3, H, W) uint8, mask (h, w), label (57, h, w)."""
        if self._socket is None:
            raise RtposeError("DataGeneratorClient is not started; call start() first")
        if not self._socket.poll(max(int(self.timeout * 1000), 1), zmq.POLLIN):
            raise DataServerTimeout(
                f"no sample from {', '.join(self.addresses)} within {self.timeout:g} s; "
                f"is the dataset server running (training/dataset_server.py)?"
            )
        frames = self._socket.recv_multipart(copy=False)
        return decode_message([frame.buffer for frame in frames])

    def gen(self) -> Iterator[Batch]:
        """Endless batches ``([image, paf_mask, heat_mask], [paf, heat] * stages)``."""
        while True:
            samples = [self.receive() for _ in range(self.batch_size)]
            image = np.stack([s[0] for s in samples]).transpose(0, 2, 3, 1).astype(np.float32)
            mask = np.stack([s[1] for s in samples]).astype(np.float32)[..., None]
            label = np.stack([s[2] for s in samples]).transpose(0, 2, 3, 1).astype(np.float32)
            paf = np.ascontiguousarray(label[..., :NUM_PAFS])
            heat = np.ascontiguousarray(label[..., NUM_PAFS:])
            inputs = [
                image,
                np.repeat(mask, NUM_PAFS, axis=-1),
                np.repeat(mask, NUM_HEATMAPS, axis=-1),
            ]
            yield inputs, [paf, heat] * self.stages
