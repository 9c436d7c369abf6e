"""Data parallel training: the scope a model is built in, and how a batch is shared.

On TensorFlow, ``tf.distribute.MirroredStrategy`` on all local GPUs (on all logical CPUs when
there is no GPU), or, when ``TF_CONFIG`` describes a cluster of several hosts
(:mod:`rtpose.train.cluster`), ``MultiWorkerMirroredStrategy`` on the local GPUs (else one CPU)
of each; on JAX, ``keras.distribution.DataParallel`` over all devices (:func:`data_parallel`).
Each batch of ``--batch-size`` samples (the global batch) is split across the devices and their
gradients summed, which gives the same update as one device with the whole batch. With several
hosts, every host pulls from the servers only its devices' share of each batch
(:func:`per_device_batch`, :func:`per_device_feed`), and every host must resume from the same
epoch (:func:`same_epoch_on_every_host`).
"""

from __future__ import annotations

import contextlib
import os

import keras

from rtpose.errors import RtposeError
from rtpose.train.cluster import Cluster
from rtpose.train.feed import BatchStream


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
        require_tensorflow()
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


def require_tensorflow() -> None:
    """A ``TF_CONFIG`` cluster trains on TensorFlow only."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RtposeError(f"TF_CONFIG describes a TensorFlow cluster but KERAS_BACKEND is "
                          f"{backend}; unset TF_CONFIG (JAX: KERAS_DISTRIBUTION_* variables)")


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
