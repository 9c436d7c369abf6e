"""Train a PAF network (CMU or MobileNet-thin) on batches from the ZeroMQ dataset servers.

The CMU solver of Cao et al. (2017), in Keras 3: Caffe's SGD with momentum 0.9, learning-rate
multipliers (``lr_multipliers`` of the architecture), weight decay 5e-4 on kernels, the "step"
policy (``4e-5 * 0.333 ** floor(iteration / 136106)``) and the Euclidean loss on the 12 masked
stage outputs; 600000 iterations of 10 samples. An epoch is ``train_samples // batch_size``
iterations, as in the original Keras port; validation runs after every epoch.

Resuming: when the weights directory holds ``last.keras`` (the training model with its
optimiser state), training continues from it at the epoch after the last one in
``training.csv``; the optimiser settings stored in it win over the flags. ``--no-resume``
starts over and replaces the log (once its first epoch ends).

Faults: one training at a time per weights directory (a lock); every file is written under a
temporary name and renamed (temporaries of killed runs are removed at the next start); SIGTERM
stops a run as Ctrl+C does (``KeyboardInterrupt``), and neither harms ``last.keras``; a NaN or
infinite loss stops the run (:class:`~rtpose.train.callbacks.TrainingDiverged`) before anything
of that epoch is saved.

Backends: training runs on every Keras 3 backend (``KERAS_BACKEND`` = ``tensorflow``, ``jax`` or
``torch``); batches reach ``Model.fit`` through a ``keras.utils.PyDataset``
(:class:`BatchFeed`), and the TensorBoard log is written only where TensorFlow is installed.

``--distribute``: data parallel training; on TensorFlow with ``tf.distribute.MirroredStrategy`` on
all local GPUs (on all logical CPUs when there is no GPU), or, when ``TF_CONFIG`` describes a
cluster of several hosts (:mod:`rtpose.train.cluster`), ``MultiWorkerMirroredStrategy`` on the
local GPUs (else one CPU) of each; on JAX with ``keras.distribution.DataParallel`` over all
devices (see :func:`data_parallel`). Each batch of ``--batch-size`` samples (the global batch)
is split across the devices and their gradients summed, which gives the same update as one
device with the whole batch; the batch size should divide by the device count. With several
hosts, every host runs the same command and pulls from the servers only its devices' share of
each batch (``--batch-size`` must divide by the device count); the chief writes
``--weights-dir`` and the others their own sub-folders, and every host must resume from the same
epoch (checked across the hosts before the first step).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

from rtpose.errors import RtposeError, WeightsError
from rtpose.files import FolderLock, remove_stale_temporaries, sigterm_as_interrupt
from rtpose.models import Architecture, get_architecture
from rtpose.train import callbacks as cb
from rtpose.train.cluster import Cluster, read_tf_config
from rtpose.train.config import TrainConfig
from rtpose.train.init import (
    copy_weights_by_name,
    imagenet_vgg19,
    read_vgg19_h5,
    set_vgg19_weights,
)
from rtpose.train.loss import stage_losses
from rtpose.train.optimizer import MultiSGD
from rtpose.train.schedule import StepDecay


def make_strategy(distribute: bool, cluster: Cluster | None = None):
    """TensorFlow: when asked, MultiWorkerMirroredStrategy on ``cluster`` (the ``TF_CONFIG`` of
    this process) or MirroredStrategy over the GPUs (else the logical CPUs); else the default
    strategy."""
    import tensorflow as tf

    if not distribute:
        return tf.distribute.get_strategy()
    if cluster is not None:
        return _multi_worker_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` (it reads ``TF_CONFIG``) that Keras 3's
    ``fit`` can use: ``fit`` hands ``reduce`` a whole nested batch, and scalar logs with
    ``axis=0``, which this strategy takes only one tensor at a time and along an existing axis
    (keras-team/keras#20585); here each leaf is reduced in turn, scalars across replicas."""
    import tensorflow as tf

    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            reduce_leaf = super().reduce

            def leaf(v):
                rank = self.experimental_local_results(v)[0].shape.rank
                return reduce_leaf(reduce_op, v, None if rank == 0 else axis)

            return tf.nest.map_structure(leaf, value)

    return MultiWorkerStrategy()


def data_parallel(distribute: bool, cluster: Cluster | None = None
                  ) -> tuple[contextlib.AbstractContextManager, int]:
    """The scope to build and compile the model in, and the number of devices sharing a batch.

    TensorFlow: :func:`make_strategy` (``cluster``: the ``TF_CONFIG`` of this process, for
    several hosts). JAX: ``keras.distribution.DataParallel`` over all the devices (of all hosts,
    after ``keras.distribution.initialize()`` when the ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
    ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` variables describe
    several hosts). PyTorch: one device.
    """
    backend = keras.backend.backend()
    if cluster is not None:
        _require_tensorflow()
    if backend == "tensorflow":
        strategy = make_strategy(distribute, cluster)
        return strategy.scope(), strategy.num_replicas_in_sync
    if not distribute:
        return contextlib.nullcontext(), 1
    if backend != "jax":
        raise RtposeError(f"--distribute needs KERAS_BACKEND=tensorflow or jax, not {backend}")
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return contextlib.nullcontext(), len(devices)


def _require_tensorflow() -> None:
    """A ``TF_CONFIG`` cluster trains on TensorFlow only."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RtposeError(f"TF_CONFIG describes a TensorFlow cluster but KERAS_BACKEND is "
                          f"{backend}; unset TF_CONFIG (JAX: KERAS_DISTRIBUTION_* variables)")


def build_training_model(config: TrainConfig, architecture: Architecture) -> keras.Model:
    """The training variant at the crop size, initialised as the flags say."""
    crop = config.crop_size
    model = architecture.build(training=True, stages=config.stages, input_shape=(crop, crop, 3))
    if config.init_weights is not None:
        testing = architecture.build(stages=config.stages)
        architecture.load_weights(testing, config.init_weights)
        copy_weights_by_name(testing, model)
        print(f"initialised from {config.init_weights}")
    elif config.from_scratch:
        print("training from scratch (random initialisation)")
    elif architecture.name == "cmu":
        vgg = read_vgg19_h5(config.vgg_weights) if config.vgg_weights else imagenet_vgg19()
        set_vgg19_weights(model, vgg)
        print("initialised conv1_1 .. conv4_2 from ImageNet VGG19")
    else:
        print(f"{architecture.name}: no ImageNet initialisation available, training from scratch "
              "(pass --init-weights to fine-tune)")
    return model


def compile_for_training(model: keras.Model, config: TrainConfig,
                         architecture: Architecture) -> None:
    """Caffe SGD (multipliers, kernel decay, step policy) and the Euclidean stage losses."""
    optimizer = MultiSGD(
        StepDecay(config.base_lr, config.gamma, config.stepsize),
        momentum=config.momentum,
        lr_multipliers=architecture.lr_multipliers(model),
        l2_decay=config.weight_decay,
    )
    model.compile(optimizer=optimizer, loss=stage_losses(model.output_names))
    # Its slots now, not inside the first traced step: on TensorFlow a step function that makes
    # variables is traced twice (about 10 s more before MobileNet-thin's first step).
    optimizer.build(model.trainable_variables)


def damaged_checkpoint(path: Path, reason: str) -> WeightsError:
    """The error for a ``last.keras`` that cannot be read, saying how to go on without it."""
    epochs = sorted(path.parent.glob(cb.EPOCH_WEIGHTS.replace("{epoch:04d}", "[0-9]" * 4)))
    way_on = (f"move it away and run again with --init-weights {epochs[-1]} to go on from those "
              "weights (with a new optimiser state and log), or " if epochs else "move it away or ")
    return WeightsError(f"{path} is damaged ({reason}), so training cannot resume from it; "
                        f"{way_on}run again with --no-resume to start over")


def check_checkpoint(path: Path) -> None:
    """Fail early, before connecting to servers, on an empty, truncated or corrupted
    ``last.keras`` (every member of the archive is read and its CRC checked)."""
    if path.stat().st_size == 0:
        raise damaged_checkpoint(path, "0 bytes")
    if not zipfile.is_zipfile(path):
        raise damaged_checkpoint(path, "not a complete .keras archive")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise damaged_checkpoint(path, str(e).splitlines()[0] or type(e).__name__) from e
    if bad is not None:
        raise damaged_checkpoint(path, f"its member {bad} fails its check")


def load_checkpoint(path: Path, architecture: Architecture, stages: int) -> keras.Model:
    """The training model of ``last.keras``, compiled, with its optimiser state."""
    check_checkpoint(path)
    try:
        model = keras.saving.load_model(path)
    except (ValueError, OSError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise damaged_checkpoint(path, str(e).splitlines()[0] or type(e).__name__) from e
    fits = any(tuple(w.shape) == architecture.first_kernel_shape for w in model.weights)
    if not fits or len(model.outputs) != 2 * stages:
        raise WeightsError(f"{path} holds {model.name} with {len(model.outputs)} outputs, not the "
                           f"{architecture.name} training model with {2 * stages}; use "
                           "--no-resume or another --weights-dir")
    return model


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


def per_device_batch(batch_size: int, devices: int) -> int:
    """Each device's share of a ``batch_size`` batch; a one-line error unless it divides."""
    if batch_size % devices:
        raise RtposeError(f"--batch-size {batch_size} does not divide among the {devices} "
                          f"devices of the cluster: use a multiple of {devices}")
    return batch_size // devices


def per_device_feed(stream: BatchStream, strategy):
    """Several hosts: ``stream``'s batches (one device's share each) as a distributed dataset of
    the ``tf.distribute`` ``strategy``, every batch going whole to one local device."""
    import tensorflow as tf

    signature = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), stream.peek())
    return strategy.distribute_datasets_from_function(
        lambda _: tf.data.Dataset.from_generator(lambda: iter(stream),
                                                 output_signature=signature))


def same_epoch_on_every_host(epoch: int | None) -> None:
    """Check across the hosts of the current multi-worker strategy that all resume at ``epoch``
    (``None``: not known before the checkpoint is loaded); on every host the same one-line error
    otherwise (a host left behind would train other steps than the rest)."""
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    value = tf.constant([-1 if epoch is None else epoch], tf.int64)

    @tf.function
    def gather():
        return strategy.run(
            lambda: tf.distribute.get_replica_context().all_gather(value, axis=0))

    epochs = strategy.experimental_local_results(gather())[0].numpy().tolist()
    if len(set(epochs)) > 1:
        raise RtposeError(
            "the hosts resume from different epochs (per device: "
            f"{', '.join('?' if e < 0 else str(e + 1) for e in epochs)}): give every host the "
            "same state (copy the chief's last.keras and training.csv into each worker<N> "
            "sub-folder), or --no-resume on all")


def train(config: TrainConfig) -> keras.callbacks.History | None:
    """Run (or resume) the training described by ``config``; returns Keras' history.

    Holds the weights directory's lock throughout; SIGTERM raises ``KeyboardInterrupt``. With
    ``distribute`` on TensorFlow, a ``TF_CONFIG`` variable makes this process one task of a
    multi-worker cluster; a task other than the chief writes into its own sub-folders of the
    weights and logs directories (see :mod:`rtpose.train.cluster`).
    """
    cluster = read_tf_config(os.environ.get("TF_CONFIG")) if config.distribute else None
    if cluster is not None:
        _require_tensorflow()  # before this task's folders are made
        config = dataclasses.replace(config, weights_dir=cluster.folder(config.weights_dir),
                                     logs_dir=cluster.folder(config.logs_dir))
    weights_dir = Path(config.weights_dir)
    with FolderLock(weights_dir, "training", "another --weights-dir"), sigterm_as_interrupt():
        for path in remove_stale_temporaries(weights_dir):
            print(f"removed {path}, left by a killed run")
        try:
            return _train(config, weights_dir, cluster)
        except cb.TrainingDiverged as e:
            kept = (f"{config.checkpoint} still holds the last good epoch"
                    if config.checkpoint.is_file() else "no checkpoint was saved")
            raise cb.TrainingDiverged(f"{e}; stopped without saving that epoch, {kept} (a lower "
                                      "--base-lr, or a look at the data, may help)") from e


def _train(config: TrainConfig, weights_dir: Path,
           cluster: Cluster | None) -> keras.callbacks.History | None:
    architecture = get_architecture(config.arch)
    log_path = weights_dir / cb.TRAINING_LOG
    checkpoint = config.checkpoint
    resuming = config.resume and checkpoint.is_file()
    if resuming:
        check_checkpoint(checkpoint)
    log = cb.read_log(log_path) if resuming else []
    epochs = config.total_epochs
    if cb.next_epoch(log) >= epochs:
        print(f"{log_path} already records {cb.next_epoch(log)} of {epochs} epochs; nothing to do")
        return None

    scope, replicas = data_parallel(config.distribute, cluster)
    # Several hosts: each pulls only its devices' share of a batch, one device's at a time.
    pulled = per_device_batch(config.batch_size, replicas) if cluster else config.batch_size
    train_batches = BatchStream(config.train_servers, pulled, config.crop_size, config.stages,
                                config.timeout)
    val_batches = None
    try:
        val_batches = BatchStream(config.val_servers, pulled, config.crop_size, config.stages,
                                  config.timeout)
        # The log says which epoch comes next, as in the original; without one, the
        # optimiser's iteration count does (known once the checkpoint is loaded).
        initial_epoch = cb.next_epoch(log) if log or not resuming else None
        with scope:
            if cluster is not None:  # before any variable: their creation is collective too
                same_epoch_on_every_host(initial_epoch)
            if resuming:
                model = load_checkpoint(checkpoint, architecture, config.stages)
            else:
                model = build_training_model(config, architecture)
                compile_for_training(model, config, architecture)
            if initial_epoch is None:
                initial_epoch = int(model.optimizer.iterations) // config.iterations_per_epoch
                if cluster is not None:
                    same_epoch_on_every_host(initial_epoch)
        if resuming:
            print(f"resuming from {checkpoint} at epoch {initial_epoch + 1} of {epochs}")
        if cluster is not None:
            print(f"data parallel on {replicas} devices of {cluster.size} hosts (this is task "
                  f"{cluster.task}, writing to {weights_dir}), "
                  f"{config.batch_size} samples per step in all, {pulled} per device")
        elif config.distribute:
            print(f"data parallel on {replicas} devices, "
                  f"{config.batch_size} samples per step in all")
        callbacks = [
            cb.StopOnNonFinite(),
            cb.LearningRateLogger(),
            cb.Checkpoints(weights_dir, architecture.build(stages=config.stages),
                           best=cb.best_loss(log, "val_loss")),
            cb.TrainingLog(log_path, log),
            cb.LossPlot(log_path, weights_dir / cb.LOSS_PLOT),
        ]
        if importlib.util.find_spec("tensorflow") is not None:  # Keras' writer is tf.summary
            callbacks.append(keras.callbacks.TensorBoard(str(config.logs_dir), write_graph=False))
        if cluster is None:
            train_feed, val_feed = train_batches.dataset(), val_batches.dataset()
        else:
            train_feed, val_feed = (per_device_feed(stream, model.distribute_strategy)
                                    for stream in (train_batches, val_batches))
        try:
            return model.fit(
                train_feed,
                steps_per_epoch=config.iterations_per_epoch,
                epochs=epochs,
                initial_epoch=initial_epoch,
                shuffle=False,  # the servers shuffle
                validation_data=val_feed,
                validation_steps=config.validation_steps,
                callbacks=callbacks,
                verbose=1,
            )
        except Exception as e:  # TensorFlow rewraps the client's error
            error = train_batches.error or val_batches.error
            if error is not None and error is not e:
                raise error from e
            raise
    finally:
        train_batches.stop()
        if val_batches is not None:
            val_batches.stop()
