"""Fast networks equal the eager Keras model: one compiled graph for every input size, and the
onnxruntime network with its export cached beside the weights."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import cv2
import numpy as np
import pytest
from helpers import demo_input

from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime import RuntimeUnavailableError, make_network
from rtpose.runtime.onnx_runtime import onnx_cache_path
from rtpose.tools.common import add_model_args

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mobilenet(mobilenet_weights):
    return load_model("mobilenet_thin", mobilenet_weights)


@pytest.fixture(scope="module")
def ski_inputs(shared_data):
    """ski.jpg (674 high) at the demo's scales 1 and 0.5: (1, 368, 392, 3), (1, 184, 200, 3)."""
    image = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    return [demo_input(image, 368), demo_input(image, 184)]


def eager(model, arch, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.asarray(t) for t in arch.split_outputs(model(x, training=False)))


def assert_same_maps(got, expected, x: np.ndarray) -> None:
    h, w = x.shape[1] // 8, x.shape[2] // 8
    assert [g.shape for g in got] == [(1, h, w, 19), (1, h, w, 38)]
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.float32 and g.flags.c_contiguous
        assert np.abs(g - e).max() < TOLERANCE
    assert np.abs(expected[0]).max() > 0.1


def test_keras_network_is_one_graph_for_all_sizes(mobilenet, ski_inputs):
    model, arch = mobilenet
    network = make_network(model, arch)
    assert network.runtime == "keras"
    for x in ski_inputs:
        assert_same_maps(network(x), eager(model, arch, x), x)
    assert network.traces == 1


def test_onnx_network_caches_its_export(mobilenet, mobilenet_weights, ski_inputs, tmp_path):
    model, arch = mobilenet
    weights = shutil.copy(mobilenet_weights, tmp_path / "mobilenet_thin.weights.h5")
    cache = tmp_path / "mobilenet_thin.onnx"
    cache.write_bytes(b"stale")  # older than the weights: must be exported again
    os.utime(cache, (0, 0))
    network = make_network(model, arch, "onnx", weights=weights)
    assert network.runtime == "onnx" and network.path == cache
    for x in ski_inputs:
        assert_same_maps(network(x), eager(model, arch, x), x)
    exported = cache.stat().st_mtime_ns
    again = make_network(model, arch, "onnx", weights=weights, threads=1)
    assert again.path == cache and cache.stat().st_mtime_ns == exported
    assert_same_maps(again(ski_inputs[1]), eager(model, arch, ski_inputs[1]), ski_inputs[1])


@pytest.mark.slow
def test_cmu_networks_split_paf_and_heat():
    """A 2-stage CMU model with He-scaled random weights; its outputs come PAFs first."""
    model = ARCHITECTURES["cmu"].build(stages=2)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape)
                       if w.ndim == 4 else np.full(w.shape, 0.01) for w in model.get_weights()])
    arch = ARCHITECTURES["cmu"]
    x = rng.uniform(0, 255, (1, 64, 80, 3)).astype(np.float32)
    for runtime in ("keras", "onnx"):
        assert_same_maps(make_network(model, arch, runtime)(x), eager(model, arch, x), x)


def test_unknown_runtime(mobilenet):
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'tensorrt'"):
        make_network(*mobilenet, runtime="tensorrt")


def test_onnx_cache_path():
    assert onnx_cache_path("model/keras/mobilenet_thin.weights.h5").as_posix() == (
        "model/keras/mobilenet_thin.onnx")
    assert onnx_cache_path("model/keras/model.h5").as_posix() == "model/keras/model.onnx"


def test_runtime_flag():
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    assert parser.parse_args([]).runtime == "auto"
    assert parser.parse_args(["--runtime", "onnx"]).runtime == "onnx"
    with pytest.raises(SystemExit):
        parser.parse_args(["--runtime", "xla"])


def test_auto_runtime_is_openvino_on_a_cpu_with_tensorflow(monkeypatch, tmp_path):
    """The default: OpenVINO where it is installed on a CPU, Keras on another backend, on an
    NVIDIA GPU or without OpenVINO; a lower precision always asks for OpenVINO."""
    from rtpose import runtime

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(runtime, "NVIDIA_GPUS", tmp_path / "none")
    assert runtime.resolve_runtime("auto") == "openvino"
    assert runtime.resolve_runtime("onnx") == "onnx"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert runtime.resolve_runtime("auto") == "keras"
    assert runtime.resolve_runtime("auto", "bf16") == "openvino"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    monkeypatch.setattr(runtime, "NVIDIA_GPUS", tmp_path / "gpus")
    assert runtime.resolve_runtime("auto") == "keras"
    monkeypatch.setattr(runtime, "NVIDIA_GPUS", tmp_path / "none")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    assert runtime.resolve_runtime("auto") == "keras"
