"""EuclideanLoss: Caffe's sum((pred - label)**2) / N / 2 through Keras' batch reduction."""

from __future__ import annotations

import keras
import numpy as np

from rtpose.train.loss import EuclideanLoss, stage_losses


def test_value_is_caffe_euclidean_sum_over_batch():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(3, 6, 5, 4)).astype("float32")
    y_pred = rng.normal(size=(3, 6, 5, 4)).astype("float32")
    expected = np.sum((y_pred.astype("float64") - y_true) ** 2) / 3 / 2
    loss = EuclideanLoss()
    assert abs(float(loss(y_true, y_pred)) - expected) < 1e-5 * expected
    per_sample = keras.ops.convert_to_numpy(loss.call(y_true, y_pred))
    np.testing.assert_allclose(per_sample, 0.5 * np.sum((y_pred - y_true) ** 2, axis=(1, 2, 3)),
                               rtol=1e-5)


def test_known_batch_by_hand():
    y_true = np.zeros((2, 2, 2, 1), "float32")
    y_pred = np.array([[[[1.0], [2.0]], [[0.0], [0.0]]],
                       [[[0.0], [0.0]], [[0.0], [3.0]]]], "float32")
    # squares: 1 + 4 in the first sample, 9 in the second; (14) / 2 samples / 2 = 3.5
    assert float(EuclideanLoss()(y_true, y_pred)) == 3.5


def test_compiled_model_reports_the_sum_of_stage_losses():
    inputs = keras.Input((4, 4, 2))
    outputs = [keras.layers.Identity(name=f"weight_stage{s}_L{b}")(inputs)
               for s in (1, 2) for b in (1, 2)]
    model = keras.Model(inputs, outputs)
    model.compile(loss=stage_losses(model.output_names))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 4, 4, 2)).astype("float32")
    labels = [rng.normal(size=x.shape).astype("float32") for _ in outputs]
    result = model.evaluate(x, labels, batch_size=4, return_dict=True, verbose=0)
    per_output = [np.sum((x - y) ** 2) / 4 / 2 for y in labels]
    np.testing.assert_allclose(result["loss"], sum(per_output), rtol=1e-5)
    np.testing.assert_allclose(result["weight_stage2_L1_loss"], per_output[2], rtol=1e-5)


def test_serialises():
    loss = keras.losses.deserialize(keras.losses.serialize(EuclideanLoss()))
    assert isinstance(loss, EuclideanLoss)
