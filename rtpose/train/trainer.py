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

``--distribute``: data parallel training with ``tf.distribute.MirroredStrategy`` on all local
GPUs (on all logical CPUs when there is no GPU). Each batch of ``--batch-size`` samples (the
global batch) is split across the devices and their gradients summed, which gives the same
update as one device with the whole batch; the batch size should divide by the device count.
"""

from __future__ import annotations

import itertools
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


def make_strategy(distribute: bool):
    """MirroredStrategy over the GPUs (else the logical CPUs) when asked, else the default."""
    import tensorflow as tf

    if not distribute:
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


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


def batch_dataset(batches: Iterator[Batch]):
    """A ``tf.data.Dataset`` over an endless iterator of ``(inputs, labels)`` batches.

    Used instead of handing ``fit`` the Python iterator: Keras' generator adapter replays the
    batches it peeked at whenever a new iterator is made over it, and ``MirroredStrategy``
    makes an extra one, so batches would repeat. Here every call of the dataset's generator
    function returns the same iterator, so no batch is used twice. With a strategy, Keras splits
    each (global) batch across the replicas; the extra iterator that ``MirroredStrategy`` opens
    and drops at the start takes a few batches with it, which loses nothing but a few random
    augmentations of a server's stream.
    """
    import tensorflow as tf

    first = next(batches)
    stream = itertools.chain([first], batches)
    spec = keras.tree.map_structure(
        lambda a: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)), first)
    return tf.data.Dataset.from_generator(lambda: stream, output_signature=spec)


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

    def dataset(self):
        """The stream as a ``tf.data.Dataset`` for ``Model.fit`` (see :func:`batch_dataset`)."""
        return batch_dataset(iter(self))

    def stop(self) -> None:
        self.client.stop()


def train(config: TrainConfig) -> keras.callbacks.History | None:
    """Run (or resume) the training described by ``config``; returns Keras' history.

    Holds the weights directory's lock throughout; SIGTERM raises ``KeyboardInterrupt``.
    """
    weights_dir = Path(config.weights_dir)
    with FolderLock(weights_dir, "training", "another --weights-dir"), sigterm_as_interrupt():
        for path in remove_stale_temporaries(weights_dir):
            print(f"removed {path}, left by a killed run")
        try:
            return _train(config, weights_dir)
        except cb.TrainingDiverged as e:
            kept = (f"{config.checkpoint} still holds the last good epoch"
                    if config.checkpoint.is_file() else "no checkpoint was saved")
            raise cb.TrainingDiverged(f"{e}; stopped without saving that epoch, {kept} (a lower "
                                      "--base-lr, or a look at the data, may help)") from e


def _train(config: TrainConfig, weights_dir: Path) -> keras.callbacks.History | None:
    import tensorflow as tf

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

    train_batches = BatchStream(config.train_servers, config.batch_size, config.crop_size,
                                config.stages, config.timeout)
    val_batches = None
    try:
        val_batches = BatchStream(config.val_servers, config.batch_size, config.crop_size,
                                  config.stages, config.timeout)
        strategy = make_strategy(config.distribute)
        with strategy.scope():
            if resuming:
                model = load_checkpoint(checkpoint, architecture, config.stages)
            else:
                model = build_training_model(config, architecture)
                compile_for_training(model, config, architecture)
        # The log says which epoch comes next, as in the original; without one, the
        # optimiser's iteration count does.
        initial_epoch = (cb.next_epoch(log) if log or not resuming
                         else int(model.optimizer.iterations) // config.iterations_per_epoch)
        if resuming:
            print(f"resuming from {checkpoint} at epoch {initial_epoch + 1} of {epochs}")
        if config.distribute:
            print(f"data parallel on {strategy.num_replicas_in_sync} devices, "
                  f"{config.batch_size} samples per step in all")
        callbacks = [
            cb.StopOnNonFinite(),
            cb.LearningRateLogger(),
            cb.Checkpoints(weights_dir, architecture.build(stages=config.stages),
                           best=cb.best_loss(log, "val_loss")),
            cb.TrainingLog(log_path, log),
            keras.callbacks.TensorBoard(str(config.logs_dir), write_graph=False),
            cb.LossPlot(log_path, weights_dir / cb.LOSS_PLOT),
        ]
        try:
            return model.fit(
                train_batches.dataset(),
                steps_per_epoch=config.iterations_per_epoch,
                epochs=epochs,
                initial_epoch=initial_epoch,
                validation_data=val_batches.dataset(),
                validation_steps=config.validation_steps,
                callbacks=callbacks,
                verbose=1,
            )
        except tf.errors.OpError as e:
            error = train_batches.error or val_batches.error
            if error is not None:
                raise error from e
            raise
    finally:
        train_batches.stop()
        if val_batches is not None:
            val_batches.stop()
