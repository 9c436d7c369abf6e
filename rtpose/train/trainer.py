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
(:class:`~rtpose.train.feed.BatchFeed`), and the TensorBoard log is written only where
TensorFlow is installed.

``--distribute``: data parallel training (:mod:`rtpose.train.distribute`); with several hosts
(``TF_CONFIG``), every host runs the same command, the chief writes ``--weights-dir`` and the
others their own sub-folders. The pieces apart from the fit loop: batches in
:mod:`rtpose.train.feed`, the checkpoint a run resumes from in :mod:`rtpose.train.checkpoints`,
initial weights in :mod:`rtpose.train.initial_weights`, per-epoch files in
:mod:`rtpose.train.callbacks`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import keras

from rtpose.files import FolderLock, remove_stale_temporaries, sigterm_as_interrupt
from rtpose.models import Architecture, get_architecture
from rtpose.train import callbacks as cb
from rtpose.train.checkpoints import check_checkpoint, load_checkpoint
from rtpose.train.cluster import Cluster, read_tf_config
from rtpose.train.config import TrainConfig
from rtpose.train.distribute import (
    data_parallel,
    per_device_batch,
    per_device_feed,
    require_tensorflow,
    same_epoch_on_every_host,
)
from rtpose.train.feed import BatchStream, batch_streams
from rtpose.train.initial_weights import (
    copy_weights_by_name,
    imagenet_vgg19,
    read_vgg19_h5,
    set_vgg19_weights,
)
from rtpose.train.loss import stage_losses
from rtpose.train.optimizer import MultiSGD
from rtpose.train.schedule import StepDecay


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


def train(config: TrainConfig) -> keras.callbacks.History | None:
    """Run (or resume) the training described by ``config``; returns Keras' history.

    Holds the weights directory's lock throughout; SIGTERM raises ``KeyboardInterrupt``. With
    ``distribute`` on TensorFlow, a ``TF_CONFIG`` variable makes this process one task of a
    multi-worker cluster; a task other than the chief writes into its own sub-folders of the
    weights and logs directories (see :mod:`rtpose.train.cluster`).
    """
    cluster = read_tf_config(os.environ.get("TF_CONFIG")) if config.distribute else None
    if cluster is not None:
        require_tensorflow()  # before this task's folders are made
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
    """The run within the lock: where to start, the devices, the batches, then ``fit``."""
    architecture = get_architecture(config.arch)
    log_path = weights_dir / cb.TRAINING_LOG
    resuming = config.resume and config.checkpoint.is_file()
    if resuming:
        check_checkpoint(config.checkpoint)
    log = cb.read_log(log_path) if resuming else []
    epochs = config.total_epochs
    if cb.next_epoch(log) >= epochs:
        print(f"{log_path} already records {cb.next_epoch(log)} of {epochs} epochs; nothing to do")
        return None

    scope, replicas = data_parallel(config.distribute, cluster)
    # Several hosts: each pulls only its devices' share of a batch, one device's at a time.
    pulled = per_device_batch(config.batch_size, replicas) if cluster else config.batch_size
    with batch_streams(config, pulled) as streams:
        with scope:
            model, initial_epoch = _model_to_fit(config, architecture, resuming, log, cluster)
        if resuming:
            print(f"resuming from {config.checkpoint} at epoch {initial_epoch + 1} of {epochs}")
        if cluster is not None:
            print(f"data parallel on {replicas} devices of {cluster.size} hosts (this is task "
                  f"{cluster.task}, writing to {weights_dir}), "
                  f"{config.batch_size} samples per step in all, {pulled} per device")
        elif config.distribute:
            print(f"data parallel on {replicas} devices, "
                  f"{config.batch_size} samples per step in all")
        callbacks = _callbacks(config, architecture, weights_dir, log)
        return _fit(model, streams, config, initial_epoch, callbacks, cluster)


def _model_to_fit(config: TrainConfig, architecture: Architecture, resuming: bool,
                  log: list[dict[str, float]], cluster: Cluster | None) -> tuple[keras.Model, int]:
    """The compiled training model (``last.keras``'s when resuming, else a new one) and the
    0-based epoch it starts at; within the distribution scope."""
    # The log says which epoch comes next, as in the original; without one, the
    # optimiser's iteration count does (known once the checkpoint is loaded).
    initial_epoch = cb.next_epoch(log) if log or not resuming else None
    if cluster is not None:  # before any variable: their creation is collective too
        same_epoch_on_every_host(initial_epoch)
    if resuming:
        model = load_checkpoint(config.checkpoint, architecture, config.stages)
    else:
        model = build_training_model(config, architecture)
        compile_for_training(model, config, architecture)
    if initial_epoch is None:
        initial_epoch = int(model.optimizer.iterations) // config.iterations_per_epoch
        if cluster is not None:
            same_epoch_on_every_host(initial_epoch)
    return model, initial_epoch


def _callbacks(config: TrainConfig, architecture: Architecture, weights_dir: Path,
               log: list[dict[str, float]]) -> list[keras.callbacks.Callback]:
    """The per-epoch bookkeeping (:mod:`rtpose.train.callbacks`), and TensorBoard's log."""
    log_path = weights_dir / cb.TRAINING_LOG
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
    return callbacks


def _fit(model: keras.Model, streams: tuple[BatchStream, BatchStream], config: TrainConfig,
         initial_epoch: int, callbacks: list[keras.callbacks.Callback],
         cluster: Cluster | None) -> keras.callbacks.History:
    """``model.fit`` on the two streams; a client's error is raised as itself."""
    if cluster is None:
        train_feed, val_feed = (stream.dataset() for stream in streams)
    else:
        train_feed, val_feed = (per_device_feed(stream, model.distribute_strategy)
                                for stream in streams)
    try:
        return model.fit(
            train_feed,
            steps_per_epoch=config.iterations_per_epoch,
            epochs=config.total_epochs,
            initial_epoch=initial_epoch,
            shuffle=False,  # the servers shuffle
            validation_data=val_feed,
            validation_steps=config.validation_steps,
            callbacks=callbacks,
            verbose=1,
        )
    except Exception as e:  # TensorFlow rewraps the client's error
        error = streams[0].error or streams[1].error
        if error is not None and error is not e:
            raise error from e
        raise
