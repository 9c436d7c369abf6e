"""Batches for ``Model.fit`` from the ZeroMQ dataset servers (:mod:`rtpose.data.client`).

A batch is ``(inputs, labels)``: ``(image, paf_mask, heat_mask)`` and ``(paf, heat) * stages``,
the images (N, crop, crop, 3) and the rest (N, h, w, 38 or 19) at the network's stride, all
float32. :class:`BatchStream` pulls them from servers and :class:`BatchFeed` hands them to
``fit`` as a ``keras.utils.PyDataset``, on every Keras backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import keras
import numpy as np

from rtpose.errors import RtposeError
from rtpose.train.config import TrainConfig

Batch = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]


class BatchFeed(keras.utils.PyDataset):
    """An endless iterator of ``(inputs, labels)`` batches as a ``PyDataset``, for ``Model.fit``
    on any backend.

    The index Keras asks for is ignored: every call takes the iterator's next batch, so no batch
    is used twice, even when Keras opens more than one iterator over the feed (TensorFlow's
    adapter peeks at two batches for their shapes, and ``MirroredStrategy`` opens and drops an
    extra iterator: that loses a few random augmentations of a server's stream, nothing else).
    """

    def __init__(self, batches: Iterator[Batch]) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self._batches = batches

    @property
    def num_batches(self) -> None:
        return None  # endless: fit's steps_per_epoch and validation_steps say how many

    def __getitem__(self, index: int) -> Batch:
        return next(self._batches)


class BatchStream:
    """Batches from dataset servers, one label pair per model stage.

    The first batch is fetched at construction, so a server that is not there fails before
    training starts, and its crop size is checked against the model's. An error of the
    client while ``fit`` runs is kept in ``error`` (TensorFlow rewraps it).
    """

    def __init__(self, servers: Sequence[str], batch_size: int, crop_size: int, stages: int,
                 timeout: float) -> None:
        from rtpose.data.client import DataGeneratorClient

        self.servers = list(servers)
        self.error: RtposeError | None = None
        endpoints = [(host, int(port)) for host, _, port in (s.rpartition(":") for s in servers)]
        self.client = DataGeneratorClient(endpoints=endpoints, batch_size=batch_size,
                                          timeout=timeout, stages=stages)
        self.client.start()
        self._batches = self.client.gen()
        try:
            self._first: Batch | None = self._next()
            size = tuple(self._first[0][0].shape[1:3])
            if size != (crop_size, crop_size):
                raise RtposeError(f"{', '.join(self.servers)} sends {size[0]}x{size[1]} crops "
                                  f"but --crop-size is {crop_size}")
        except RtposeError:
            self.stop()
            raise

    def _next(self) -> Batch:
        try:
            inputs, labels = next(self._batches)
        except RtposeError as e:
            self.error = e
            raise
        return tuple(inputs), tuple(labels)

    def __iter__(self) -> Iterator[Batch]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while True:
            yield self._next()

    def peek(self) -> Batch:
        """The batch that comes first (kept for the iteration)."""
        if self._first is None:
            self._first = self._next()
        return self._first

    def dataset(self) -> BatchFeed:
        """The stream as a ``PyDataset`` for ``Model.fit`` (see :class:`BatchFeed`)."""
        return BatchFeed(iter(self))

    def stop(self) -> None:
        self.client.stop()


@contextmanager
def batch_streams(config: TrainConfig, batch_size: int
                  ) -> Iterator[tuple[BatchStream, BatchStream]]:
    """The training and validation streams of ``config``, ``batch_size`` samples a batch, both
    stopped when the block ends (the first too when the second cannot start)."""
    streams: list[BatchStream] = []
    try:
        for servers in (config.train_servers, config.val_servers):
            streams.append(BatchStream(servers, batch_size, config.crop_size, config.stages,
                                       config.timeout))
        yield streams[0], streams[1]
    finally:
        for stream in streams:
            stream.stop()
