"""MobileNet-thin: the Keras model against the original frozen graph; variants; converter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from rtpose.convert.tf_graph import (
    convert_mobilenet_thin,
    graph_constants,
    load_frozen_graph,
    read_graph_def,
)
from rtpose.errors import ConversionError, WeightsError
from rtpose.models.mobilenet_thin import (
    build_mobilenet_thin,
    graph_scope,
    load_mobilenet_thin_weights,
    lr_multipliers,
)
from rtpose.skeleton import BACKGROUND, NUM_HEATMAPS, NUM_PAFS


@pytest.fixture(scope="module")
def frozen(mobilenet_graph: Path):
    return load_frozen_graph(mobilenet_graph)


@pytest.fixture(scope="module")
def model(mobilenet_weights: Path):
    net = build_mobilenet_thin()
    load_mobilenet_thin_weights(net, mobilenet_weights)
    return net


@pytest.fixture(scope="module")
def ski(shared_data: Path) -> np.ndarray:
    return cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))


def demo_resize(image: np.ndarray, scale: float) -> np.ndarray:
    """The original demo's resize: height to ``scale * 368``, bicubic, aspect kept."""
    factor = scale * 368 / image.shape[0]
    return cv2.resize(image, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_keras_model_equals_frozen_graph_on_ski(frozen, model, ski, scale):
    x = demo_resize(ski, scale).astype(np.float32)[None]
    assert x.shape[2] % 16 != 0  # 368 x 389 and 184 x 194: SAME padding is asymmetric
    expected = frozen(x)
    got = np.asarray(model(x))
    assert got.shape == expected.shape == (1, -(-x.shape[1] // 8), -(-x.shape[2] // 8), 57)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # Real maps, not zeros: the background dominates, a few part peaks stand out.
    assert got[..., BACKGROUND].mean() > 0.5
    assert got[..., :BACKGROUND].max() > 0.5


def test_odd_sizes_and_batches_match_the_graph(frozen, model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 37, 51, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), frozen(x), rtol=0, atol=1e-4)


def test_matches_the_original_pipelines_recorded_output(model, ski, shared_data):
    """The recorded outputs of the original demo's padded inputs (128 right and down)."""
    recorded = np.load(shared_data / "original_formats" / "ski_mobilenet_thin_netout.npz")
    for scale in ("0.5", "1.0"):
        resized = demo_resize(ski, float(scale))
        padded = np.full((*recorded[f"in_hw_{scale}"], 3), 128, np.uint8)
        padded[: resized.shape[0], : resized.shape[1]] = resized
        got = np.asarray(model(padded[None].astype(np.float32)))
        np.testing.assert_allclose(got, recorded[f"s{scale}"], rtol=0, atol=1e-4)


def test_layers_map_one_to_one_to_graph_tensors(mobilenet_graph):
    constants = graph_constants(read_graph_def(mobilenet_graph))
    weights = {n: v for n, v in constants.items() if not n.endswith("/axis")}
    net = build_mobilenet_thin()
    used = []
    for layer in net.layers:
        for variable in layer.weights:
            suffix = {"kernel": "weights", "bias": "Conv2D_bn_offset"}[variable.name]
            if layer.__class__.__name__ == "DepthwiseConv2D":
                suffix = "depthwise_weights"
            tensor = f"{graph_scope(layer.name)}/{suffix}"
            assert weights[tensor].shape == tuple(variable.shape), tensor
            used.append(tensor)
    assert sorted(used) == sorted(weights)
    assert net.count_params() == sum(v.size for v in weights.values()) == 1_930_872


def test_training_variant_outputs_masked_stage_maps(model, mobilenet_weights):
    net = build_mobilenet_thin(training=True, input_shape=(64, 56, 3))
    load_mobilenet_thin_weights(net, mobilenet_weights)
    names = [f"weight_stage{s}_L{b}" for s in range(1, 7) for b in (1, 2)]
    assert net.output_names == names
    assert [tuple(o.shape[1:]) for o in net.outputs] == [(8, 7, NUM_PAFS), (8, 7, NUM_HEATMAPS)] * 6

    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 56, 3)).astype(np.float32)
    paf_mask = np.ones((2, 8, 7, NUM_PAFS), np.float32)
    heat_mask = np.ones((2, 8, 7, NUM_HEATMAPS), np.float32)
    paf_mask[0, :4] = heat_mask[1, :, :3] = 0
    outputs = [np.asarray(o) for o in net([x, paf_mask, heat_mask])]
    test_out = np.asarray(model(x))
    np.testing.assert_allclose(outputs[-1], test_out[..., :NUM_HEATMAPS] * heat_mask, atol=1e-5)
    np.testing.assert_allclose(outputs[-2], test_out[..., NUM_HEATMAPS:] * paf_mask, atol=1e-5)
    assert not outputs[0][0, :4].any() and outputs[0][0, 4:].any()
    assert not np.allclose(outputs[0], outputs[-2])  # stage 1 differs from stage 6


def test_small_training_variant_and_lr_multipliers():
    net = build_mobilenet_thin(training=True, stages=2, weight_decay=5e-4)
    assert net.output_names == ["weight_stage1_L1", "weight_stage1_L2",
                                "weight_stage2_L1", "weight_stage2_L2"]
    assert len(net.losses) == len([w for w in net.trainable_weights if "kernel" in w.path])
    multipliers = lr_multipliers(net)
    assert set(multipliers) == {w.path for w in net.trainable_weights}
    biases = [p for p in multipliers if p.endswith("/bias")]
    assert {multipliers[p] for p in biases} == {2.0}
    assert {v for p, v in multipliers.items() if p not in biases} == {1.0}
    assert len(biases) == 1 + 11 + 2 * 2 * 5  # Conv2d_0, 11 backbone and 20 stage pointwise


def test_loading_wrong_weights_is_a_clear_error(model, tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "dense.weights.h5")
    with pytest.raises(WeightsError, match="not MobileNet-thin weights"):
        load_mobilenet_thin_weights(model, tmp_path / "dense.weights.h5")
    with pytest.raises(WeightsError, match="not found"):
        load_mobilenet_thin_weights(model, tmp_path / "absent.weights.h5")


def _write_graph(path: Path, constants: dict[str, np.ndarray]) -> Path:
    graph_def = graph_pb2.GraphDef()
    for name, value in constants.items():
        node = graph_def.node.add(name=name, op="Const")
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        node.attr["dtype"].type = node.attr["value"].tensor.dtype
    path.write_bytes(graph_def.SerializeToString())
    return path


def test_converter_rejects_a_file_that_is_not_a_graph(tmp_path, shared_data):
    with pytest.raises(ConversionError, match="not a TensorFlow GraphDef"):
        convert_mobilenet_thin(shared_data / "sample_images" / "ski.jpg", tmp_path / "m.weights.h5")
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(ConversionError, match="not a TensorFlow GraphDef"):
        convert_mobilenet_thin(tmp_path / "empty.pb", tmp_path / "m.weights.h5")


def test_converter_names_a_missing_tensor(tmp_path):
    graph = _write_graph(tmp_path / "tiny.pb", {
        "MobilenetV1/Conv2d_0/weights": np.zeros((3, 3, 3, 24), np.float32),
    })
    with pytest.raises(ConversionError, match="no tensor 'MobilenetV1/Conv2d_0/Conv2D_bn_offset'"):
        convert_mobilenet_thin(graph, tmp_path / "m.weights.h5")
    assert not (tmp_path / "m.weights.h5").exists()


def test_converter_names_a_shape_mismatch(tmp_path, mobilenet_graph):
    constants = graph_constants(read_graph_def(mobilenet_graph))
    constants["Openpose/MConv_Stage3_L2_5_pointwise/weights"] = np.zeros((1, 1, 64, 18), "f4")
    graph = _write_graph(tmp_path / "bad.pb", constants)
    with pytest.raises(ConversionError, match=r"shape mismatch for 'Openpose/MConv_Stage3_L2_5_"
                                              r"pointwise/weights': graph \(1, 1, 64, 18\)"):
        convert_mobilenet_thin(graph, tmp_path / "m.weights.h5")


def test_script_exits_with_one_line_errors(tmp_path, repo_root, shared_data):
    path = repo_root / "convert_tf_pose.py"
    spec = importlib.util.spec_from_file_location("convert_tf_pose", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tiny = _write_graph(tmp_path / "tiny.pb", {"x": np.zeros(3, np.float32)})
    for graph, message in ((shared_data / "sample_images" / "ski.jpg", "not a TensorFlow GraphDef"),
                           (tiny, "no tensor 'MobilenetV1/Conv2d_0/weights'")):
        with pytest.raises(SystemExit) as exit_info:
            script.main(["--graph", str(graph), "--output", str(tmp_path / "m.weights.h5")])
        code = exit_info.value.code
        assert isinstance(code, str) and code.startswith("error: ") and message in code
        assert "\n" not in code
