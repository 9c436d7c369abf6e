"""StepDecay: Caffe's "step" policy with the CMU solver's constants."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rtpose.train.schedule import StepDecay


@pytest.mark.parametrize(("iteration", "expected"), [
    (0, 4e-5),
    (136105, 4e-5),
    (136106, 4e-5 * 0.333),
    (272211, 4e-5 * 0.333),
    (272212, 4e-5 * 0.333**2),
    (599999, 4e-5 * 0.333**4),
])
def test_original_rates(iteration, expected):
    lr = float(StepDecay(4e-5, 0.333, 136106)(iteration))
    assert lr == pytest.approx(expected, rel=1e-6)


def test_defaults_are_the_cmu_solver():
    schedule = StepDecay()
    assert (schedule.base_lr, schedule.gamma, schedule.stepsize) == (4e-5, 0.333, 136106)


def test_optimiser_follows_its_iterations():
    opt = keras.optimizers.SGD(StepDecay(1.0, 0.5, 2))
    var = keras.Variable(np.zeros(3, "float32"))
    rates = []
    for _ in range(5):
        rates.append(float(opt.learning_rate))
        opt.apply([np.ones(3, "float32")], [var])
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_serialises():
    schedule = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(StepDecay(1e-3, 0.1, 10)))
    assert isinstance(schedule, StepDecay)
    assert schedule.get_config() == {"base_lr": 1e-3, "gamma": 0.1, "stepsize": 10}


def test_stepsize_must_be_positive():
    with pytest.raises(ValueError, match="stepsize"):
        StepDecay(stepsize=0)
