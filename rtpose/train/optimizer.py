"""Caffe's SGD: momentum, per-variable learning-rate multipliers, weight decay on kernels.

The update implemented is Caffe's ``SGDSolver``, exactly, for each variable ``w`` with
gradient ``g``::

    g = g + l2_decay * decay_mult * w        # Caffe "Regularize" (L2, decay_mult per blob)
    v = momentum * v + lr * lr_mult * g      # Caffe "ComputeUpdateValue" (history blob)
    w = w - v

Keras' own ``SGD`` keeps the negated velocity (``v = momentum * v - lr * g; w = w + v``). Both
fold the learning rate of each step into the velocity when the gradient is added, so the two are
the same (up to the sign of ``v``) even when the learning rate drops at a step boundary: the
history accumulated at the old rate decays with the momentum and is not rescaled. The form that
does differ after a drop is ``v = momentum * v + g; w = w - lr * v`` (PyTorch), which applies the
new rate to the whole history at once. The momentum slots here hold Caffe's ``v`` with Caffe's
sign, so they can be compared to a Caffe solver state.

Weight decay is inside the optimiser (not a Keras regulariser and not Keras' decoupled
``weight_decay``), added to the gradient before the learning-rate multiplier as Caffe does;
the default ``decay_mult`` is 1 for kernels and 0 for everything else (biases), as in the CMU
prototxt. Build the model without kernel regularisers when using ``l2_decay`` here.

Multipliers are keyed by the Keras 3 variable path (``variable.path``, e.g.
``"Mconv1_stage2_L1/kernel"``); a variable without an entry has multiplier 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops


def default_decay_multiplier(name: str) -> float:
    """Caffe's ``decay_mult`` of the CMU prototxt: 1 for kernels, 0 for biases and the rest."""
    return 1.0 if name.endswith("kernel") else 0.0


@keras.saving.register_keras_serializable(package="rtpose")
class MultiSGD(keras.optimizers.SGD):
    """SGD with momentum as in Caffe, with per-variable learning-rate and decay multipliers.

    Args:
        learning_rate: float or schedule (e.g. ``rtpose.train.schedule.StepDecay``).
        momentum: Caffe's ``momentum`` (0.9 in the CMU solver).
        lr_multipliers: variable path -> Caffe ``lr_mult``; missing paths use 1.
        l2_decay: Caffe's solver ``weight_decay`` (5e-4 in the CMU solver).
        decay_multipliers: variable path -> Caffe ``decay_mult``; missing paths use
            ``default_decay_multiplier`` of the variable's name (1 for kernels, 0 otherwise).
        **kwargs: other ``keras.optimizers.Optimizer`` arguments (name, clipnorm, ...).

    Example:
        >>> from rtpose.train.schedule import StepDecay
        >>> opt = MultiSGD(StepDecay(), momentum=0.9, l2_decay=5e-4,
        ...                lr_multipliers={"Mconv1_stage2_L1/kernel": 4.0})
    """

    def __init__(
        self,
        learning_rate=4e-5,
        momentum: float = 0.9,
        lr_multipliers: Mapping[str, float] | None = None,
        l2_decay: float = 0.0,
        decay_multipliers: Mapping[str, float] | None = None,
        name: str = "multi_sgd",
        **kwargs,
    ) -> None:
        if kwargs.pop("nesterov", False):
            raise ValueError("MultiSGD implements Caffe's SGD, which has no Nesterov momentum")
        super().__init__(learning_rate=learning_rate, momentum=float(momentum), nesterov=False,
                         name=name, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
        self.l2_decay = float(l2_decay)
        self.decay_multipliers = (
            None if decay_multipliers is None
            else {str(k): float(v) for k, v in decay_multipliers.items()}
        )

    def build(self, variables) -> None:
        if self.built:
            return
        paths = [v.path for v in variables]
        unknown = sorted(set(self.lr_multipliers) - set(paths))
        if unknown:
            raise ValueError(
                f"lr_multipliers name {len(unknown)} variables the model does not train, "
                f"e.g. {unknown[0]!r} (model variables look like {paths[0]!r})"
            )
        super().build(variables)
        decay = self.decay_multipliers or {}
        # Plain tuples, indexed like the optimiser's own slots (see `_get_variable_index`):
        # inside a distributed update the variable is a tf.Variable without a Keras path.
        self._lr_mults = tuple(self.lr_multipliers.get(p, 1.0) for p in paths)
        self._decay_mults = tuple(decay.get(v.path, default_decay_multiplier(v.name))
                                  for v in variables)

    def update_step(self, gradient, variable, learning_rate) -> None:
        index = self._get_variable_index(variable)
        gradient = ops.cast(gradient, variable.dtype)
        local_decay = self.l2_decay * self._decay_mults[index]
        if local_decay:
            gradient = ops.add(gradient, ops.multiply(ops.cast(local_decay, variable.dtype),
                                                      variable))
        local_rate = ops.multiply(ops.cast(learning_rate, variable.dtype),
                                  ops.cast(self._lr_mults[index], variable.dtype))
        step = ops.multiply(local_rate, gradient)
        if self.momentum:
            history = self.momentums[index]
            self.assign(history, ops.add(ops.multiply(history, ops.cast(self.momentum,
                                                                          variable.dtype)), step))
            self.assign_sub(variable, history)
        else:
            self.assign_sub(variable, step)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "lr_multipliers": dict(self.lr_multipliers),
            "l2_decay": self.l2_decay,
            "decay_multipliers": self.decay_multipliers,
        })
        return config
