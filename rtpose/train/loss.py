"""Caffe's Euclidean loss for the 12 masked stage outputs.

Caffe's ``EuclideanLoss`` layer gives ``sum((y_pred - y_true)**2) / N / 2`` over a batch of
``N``. Here the per-sample loss is ``0.5 * sum over (h, w, c)``, and Keras' default
``"sum_over_batch_size"`` reduction divides the sum of the per-sample losses by ``N``, so the
value (and its gradient) is exactly Caffe's. Keras' ``MeanSquaredError`` is not used because it
also divides by ``h * w * c`` (46 * 46 * 38 = 80408 for a PAF output at crop 368), which would
scale every gradient by about 1/80000 and make the original learning rates useless.

Labels from the data server are already multiplied by the mask and the model multiplies its
stage outputs by the same mask, so no mask appears here.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rtpose")
class EuclideanLoss(keras.losses.Loss):
    """``0.5 * sum((y_pred - y_true)**2)`` per sample; the batch mean is Caffe's value.

    Inputs are ``(N, H, W, C)`` maps (or any rank); the per-sample loss has shape ``(N,)``.
    """

    def __init__(self, name: str = "euclidean_loss", **kwargs) -> None:
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        squared = ops.square(ops.subtract(y_pred, y_true))
        return 0.5 * ops.sum(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=-1)


def stage_losses(output_names: list[str]) -> dict[str, EuclideanLoss]:
    """One Euclidean loss per named output (``weight_stage1_L1`` ... ``weight_stage6_L2``)."""
    return {name: EuclideanLoss() for name in output_names}
