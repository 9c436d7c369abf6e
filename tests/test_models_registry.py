"""The architecture registry: default weights order, architecture inference, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from rtpose.errors import ModelNotFoundError, RtposeError, WeightsError
from rtpose.models import (
    ARCHITECTURES,
    find_default_weights,
    get_architecture,
    infer_architecture,
    load_model,
)

CMU_FILES = ("model/keras/model.weights.h5", "model/keras/model.h5")
MOBILENET_FILE = "model/keras/mobilenet_thin.weights.h5"


def touch(root: Path, relative: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def keras2_cmu_h5(path: Path) -> Path:
    """A file laid out like the original port's Keras 2 ``model.h5`` (first layers only)."""
    with h5py.File(path, "w") as file:
        for name, shape in (("conv1_1", (3, 3, 3, 64)), ("conv1_2", (3, 3, 64, 64))):
            group = file.create_group(name).create_group(name)
            group["kernel:0"] = np.zeros(shape, np.float32)
            group["bias:0"] = np.zeros(shape[-1], np.float32)
    return path


def test_default_weights_order(tmp_path):
    for relative in (*CMU_FILES, MOBILENET_FILE):
        touch(tmp_path, relative)
    expected = [("cmu", CMU_FILES[0]), ("cmu", CMU_FILES[1]), ("mobilenet_thin", MOBILENET_FILE)]
    for name, relative in expected:
        architecture, path = find_default_weights(repo_root=tmp_path)
        assert (architecture.name, path) == (name, tmp_path / relative)
        path.unlink()
    with pytest.raises(ModelNotFoundError):
        find_default_weights(repo_root=tmp_path)


def test_default_weights_of_a_named_architecture(tmp_path):
    touch(tmp_path, CMU_FILES[1])
    touch(tmp_path, MOBILENET_FILE)
    architecture, path = find_default_weights("mobilenet_thin", repo_root=tmp_path)
    assert (architecture.name, path) == ("mobilenet_thin", tmp_path / MOBILENET_FILE)
    (tmp_path / MOBILENET_FILE).unlink()
    with pytest.raises(ModelNotFoundError, match="no mobilenet_thin weights"):
        find_default_weights("mobilenet_thin", repo_root=tmp_path)


def test_missing_weights_message_names_the_fetch_commands(tmp_path):
    with pytest.raises(ModelNotFoundError) as error:
        load_model(repo_root=tmp_path)
    message = str(error.value)
    assert "bash model/get_cmu_model.sh" in message
    assert "bash model/get_mobilenet_thin.sh" in message
    assert "bash model/get_keras_model.sh" in message
    assert "\n" not in message and isinstance(error.value, RtposeError)


def test_load_model_from_default_and_explicit_weights(tmp_path, mobilenet_weights, shared_data):
    import cv2

    target = tmp_path / MOBILENET_FILE
    target.parent.mkdir(parents=True)
    shutil.copy(mobilenet_weights, target)
    model, architecture = load_model(repo_root=tmp_path)
    assert architecture is ARCHITECTURES["mobilenet_thin"]

    image = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    x = cv2.resize(image, (96, 88), interpolation=cv2.INTER_AREA).astype(np.float32)[None]
    raw = np.asarray(model(x))
    heatmaps, pafs = (np.asarray(t) for t in architecture.split_outputs(model(x)))
    assert heatmaps.shape == (1, 11, 12, 19) and pafs.shape == (1, 11, 12, 38)
    np.testing.assert_array_equal(np.concatenate([heatmaps, pafs], axis=-1), raw)

    again, inferred = load_model(weights=target)  # the architecture read off the file
    assert inferred is architecture
    np.testing.assert_array_equal(np.asarray(again(x)), raw)


def test_cmu_outputs_are_split_into_heatmaps_and_pafs():
    architecture = get_architecture("cmu")
    model = architecture.build(stages=1, input_shape=(32, 40, 3))
    heatmaps, pafs = architecture.split_outputs(model.predict(np.zeros((2, 32, 40, 3)), verbose=0))
    assert heatmaps.shape == (2, 4, 5, 19) and pafs.shape == (2, 4, 5, 38)


def test_architecture_inference(tmp_path, mobilenet_weights):
    assert infer_architecture(mobilenet_weights).name == "mobilenet_thin"
    assert infer_architecture(keras2_cmu_h5(tmp_path / "model.h5")).name == "cmu"


def test_weights_of_another_architecture_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="holds cmu weights, not mobilenet_thin"):
        load_model("mobilenet_thin", keras2_cmu_h5(tmp_path / "model.h5"))


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "unknown"])
def test_bad_weights_files_are_clear_errors(tmp_path, mobilenet_weights, kind):
    path = tmp_path / "bad.weights.h5"
    if kind == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    elif kind == "truncated":
        path.write_bytes(mobilenet_weights.read_bytes()[:100_000])
    elif kind == "unknown":
        with h5py.File(path, "w") as file:
            file["layers/dense/vars/0"] = np.zeros((4, 2), np.float32)
    with pytest.raises(WeightsError) as error:
        load_model(weights=path)
    message = str(error.value)
    assert message.startswith(str(path)) or message.endswith(str(path))
    expected = {"missing": "not found", "text": "not a readable HDF5", "truncated": "truncated",
                "unknown": "cannot tell which architecture"}[kind]
    assert expected in message and "\n" not in message


def test_explicit_architecture_with_unfit_weights(tmp_path):
    path = tmp_path / "dense.weights.h5"
    with h5py.File(path, "w") as file:
        file["layers/dense/vars/0"] = np.zeros((4, 2), np.float32)
    with pytest.raises(WeightsError, match="not MobileNet-thin weights"):
        load_model("mobilenet_thin", path)


def test_unknown_architecture():
    with pytest.raises(RtposeError, match="unknown architecture 'resnet'"):
        load_model("resnet")
