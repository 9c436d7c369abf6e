"""Caffe's "step" learning-rate policy as a serialisable Keras schedule.

``lr = base_lr * gamma ** floor(iteration / stepsize)``, the policy of the original CMU solver
(``base_lr 4e-5``, ``gamma 0.333``, ``stepsize 136106``). The iteration is the optimiser's
step counter (0 for the first update), so the learning rate follows the updates themselves,
not the epochs.
"""

from __future__ import annotations

import keras
from keras import ops

BASE_LR = 4e-5
GAMMA = 0.333
STEPSIZE = 136106


@keras.saving.register_keras_serializable(package="rtpose")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Multiply the learning rate by ``gamma`` every ``stepsize`` iterations.

    Example:
        >>> schedule = StepDecay(4e-5, gamma=0.333, stepsize=136106)
        >>> lr = schedule(136106)  # 4e-5 * 0.333 = 1.332e-5
    """

    def __init__(self, base_lr: float = BASE_LR, gamma: float = GAMMA,
                 stepsize: int = STEPSIZE) -> None:
        if stepsize <= 0:
            raise ValueError(f"stepsize must be positive, got {stepsize}")
        self.base_lr = float(base_lr)
        self.gamma = float(gamma)
        self.stepsize = int(stepsize)

    def __call__(self, step):
        # Integer division on the integer counter: floor(136106 / 136106) must be exactly 1,
        # which float32 division does not promise for large counts.
        # int32 (JAX's default integers) holds 2**31 iterations.
        steps_done = ops.floor_divide(ops.cast(step, "int32"), self.stepsize)
        exponent = ops.cast(steps_done, "float32")
        return ops.multiply(ops.cast(self.base_lr, "float32"), ops.power(self.gamma, exponent))

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "gamma": self.gamma, "stepsize": self.stepsize}
