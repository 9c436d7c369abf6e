"""Exported models compute what the Keras model computes: SavedModel, ONNX and TFLite on
ski.jpg with the real MobileNet-thin weights; the CMU model's two outputs keep their order."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from helpers import demo_input

from export import main
from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime.export import ExportError, export_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mobilenet(mobilenet_weights):
    model, _ = load_model("mobilenet_thin", mobilenet_weights)
    return model


@pytest.fixture(scope="module")
def ski(shared_data):
    return demo_input(cv2.imread(str(shared_data / "sample_images" / "ski.jpg")))


def keras_outputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(t) for t in tf.nest.flatten(model(x, training=False))]


def run_onnx(path, x: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    return session.run(None, {"image": x})


def run_tflite(path, x: np.ndarray) -> list[np.ndarray]:
    interpreter = tf.lite.Interpreter(model_path=str(path))
    outputs = interpreter.get_signature_runner("serving_default")(image=x)
    return [outputs[f"output_{i}"] for i in range(len(outputs))]


def assert_close(outputs: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert [o.shape for o in outputs] == [e.shape for e in expected]
    for out, ref in zip(outputs, expected, strict=True):
        assert np.abs(out - ref).max() < TOLERANCE
    assert max(np.abs(e).max() for e in expected) > 0.1  # maps that say something


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--arch", "--weights", "--format", "--output", "--input-size"):
        assert flag in usage


def test_missing_weights_is_one_line_error(tmp_path):
    missing = tmp_path / "none.weights.h5"
    with pytest.raises(SystemExit) as info:
        main(["--weights", str(missing), "--format", "onnx", "--output", str(tmp_path / "m")])
    assert info.value.code == f"error: weights file not found: {missing}"
    assert not (tmp_path / "m").exists()


def test_unknown_format(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--format", "caffe", "--output", str(tmp_path / "m")])
    assert info.value.code == 2
    assert "invalid choice: 'caffe'" in capsys.readouterr().err
    with pytest.raises(ExportError, match="unknown format 'caffe'"):
        export_model(keras.Sequential(), "caffe", tmp_path / "m")


def test_onnx_script_equals_keras(mobilenet, mobilenet_weights, ski, tmp_path, capsys):
    output = tmp_path / "out" / "mobilenet_thin.onnx"
    main(["--weights", str(mobilenet_weights), "--format", "onnx", "--output", str(output)])
    assert f"wrote {output}" in capsys.readouterr().out
    assert_close(run_onnx(output, ski), keras_outputs(mobilenet, ski))
    smaller = ski[:, :184, :200]  # batch, height and width stay free
    assert_close(run_onnx(output, smaller), keras_outputs(mobilenet, smaller))
    assert sorted(p.name for p in output.parent.iterdir()) == ["mobilenet_thin.onnx"]


def test_saved_model_equals_keras(mobilenet, ski, tmp_path):
    path = export_model(mobilenet, "saved_model", tmp_path / "saved")
    loaded = tf.saved_model.load(str(path))
    for x in (ski, ski[:, :184, :200]):
        assert_close([np.asarray(loaded.serve(x))], keras_outputs(mobilenet, x))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_equals_keras(mobilenet, ski, tmp_path):
    path = export_model(mobilenet, "tflite", tmp_path / "m.tflite", input_size=ski.shape[1:3])
    assert_close(run_tflite(path, ski), keras_outputs(mobilenet, ski))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_cmu_outputs_keep_their_order(tmp_path):
    """A 2-stage CMU model with He-scaled random weights: PAFs then heatmaps in every format."""
    model = ARCHITECTURES["cmu"].build(stages=2)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape)
                       if w.ndim == 4 else np.full(w.shape, 0.01) for w in model.get_weights()])
    x = rng.uniform(0, 255, (1, 64, 80, 3)).astype(np.float32)
    expected = keras_outputs(model, x)
    assert [e.shape[-1] for e in expected] == [38, 19]
    assert_close(run_onnx(export_model(model, "onnx", tmp_path / "cmu.onnx"), x), expected)
    tflite = export_model(model, "tflite", tmp_path / "cmu.tflite", input_size=(64, 80))
    assert_close(run_tflite(tflite, x), expected)
