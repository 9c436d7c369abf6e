"""The CMU model against its Caffe definition, both variants' outputs, and weights loading."""

from __future__ import annotations

import numpy as np
import pytest
from weight_files import write_keras2_h5

from rtpose.convert.prototxt import read_prototxt
from rtpose.errors import WeightsError
from rtpose.models.cmu import (
    OUTPUT_ORDER,
    build_cmu_model,
    conv_layers,
    load_cmu_weights,
    lr_multipliers,
)

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def coco_net(shared_data):
    return read_prototxt(shared_data / "caffe" / "_trained_COCO" / "pose_deploy.prototxt")


@pytest.fixture(scope="module")
def model():
    return build_cmu_model()


@pytest.fixture(scope="module")
def small_model():
    return build_cmu_model(stages=2)


def _inbound(model) -> dict[str, list[str]]:
    """Layer name -> names of the layers that feed it, from the functional config."""
    inbound = {}
    for layer in model.get_config()["layers"]:
        for node in layer["inbound_nodes"]:
            args = node["args"][0]
            args = args if isinstance(args, list) else [args]
            inbound[layer["name"]] = [a["config"]["keras_history"][0] for a in args]
    return inbound


def _randomize(model) -> None:
    for layer in conv_layers(model):
        layer.set_weights([RNG.normal(0, 0.05, v.shape).astype("float32") for v in layer.weights])


def test_committed_prototxt_is_the_reference(repo_root, shared_data):
    for net in ("_trained_COCO", "_trained_MPI"):
        committed = (repo_root / "model" / net / "pose_deploy.prototxt").read_bytes()
        assert committed == (shared_data / "caffe" / net / "pose_deploy.prototxt").read_bytes()


def test_convolutions_match_the_prototxt(model, coco_net):
    convs = coco_net.convolutions()
    layers = conv_layers(model)
    assert [layer.name for layer in layers] == [conv.name for conv in convs]
    for layer, conv in zip(layers, convs, strict=True):
        kh, kw = conv.kernel_size
        assert tuple(layer.kernel.shape) == (kh, kw, conv.in_channels, conv.num_output)
        assert conv.stride == (1, 1) and conv.pad == ((kh - 1) // 2, (kw - 1) // 2)  # "same"
    assert model.count_params() == sum(conv.param_count for conv in convs)
    assert 52_000_000 < model.count_params() < 53_000_000


def test_graph_follows_the_prototxt(model, coco_net):
    """Every convolution, pooling and concat reads the prototxt's bottoms, in its order."""
    inbound = _inbound(model)
    keras_name = {"data": "input_normalization"}
    checked = 0
    for layer in coco_net.layers:
        if layer.type in ("Convolution", "Pooling", "Concat"):
            assert inbound[layer.name] == [keras_name.get(b, b) for b in layer.bottoms]
            checked += 1
    assert checked == 92 + 3 + 5


def test_testing_outputs(model):
    assert OUTPUT_ORDER == ("paf", "heatmap")
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, None, None, 38),
        (None, None, None, 19),
    ]
    paf, heatmap = model(np.zeros((2, 64, 48, 3), "float32"))
    assert paf.shape == (2, 8, 6, 38) and heatmap.shape == (2, 8, 6, 19)
    paf, heatmap = model(np.zeros((1, 66, 50, 3), "float32"))  # Caffe pooling rounds up
    assert paf.shape == (1, 9, 7, 38) and heatmap.shape == (1, 9, 7, 19)


def test_input_normalization(model):
    normalize = model.get_layer("input_normalization")
    out = np.asarray(normalize(np.array([[[[0.0, 128.0, 256.0]]]], "float32")))
    np.testing.assert_allclose(out.ravel(), [-0.5, 0.0, 0.5])


def test_training_outputs_are_masked_stage_outputs(model):
    training = build_cmu_model(training=True, input_shape=(64, 48, 3))
    assert [i.name for i in training.inputs] == ["image", "paf_mask", "heat_mask"]
    names = [f"weight_stage{s}_L{b}" for s in range(1, 7) for b in (1, 2)]
    assert training.output_names == names
    _randomize(model)
    for layer in conv_layers(training):
        layer.set_weights(model.get_layer(layer.name).get_weights())

    image = RNG.uniform(0, 255, (1, 64, 48, 3)).astype("float32")
    paf_mask = (RNG.uniform(size=(1, 8, 6, 38)) > 0.5).astype("float32")
    heat_mask = (RNG.uniform(size=(1, 8, 6, 19)) > 0.5).astype("float32")
    outputs = [np.asarray(o) for o in training([image, paf_mask, heat_mask])]
    assert [o.shape[-1] for o in outputs] == [38, 19] * 6
    assert all(o.shape[:3] == (1, 8, 6) for o in outputs)
    paf, heatmap = (np.asarray(o) for o in model(image))
    assert np.abs(paf).max() > 0
    np.testing.assert_allclose(outputs[-2], paf * paf_mask, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(outputs[-1], heatmap * heat_mask, rtol=1e-4, atol=1e-6)
    assert np.all(outputs[0][paf_mask == 0] == 0) and np.all(outputs[1][heat_mask == 0] == 0)


def test_training_masks_follow_input_size():
    training = build_cmu_model(training=True, stages=1)
    assert [tuple(i.shape) for i in training.inputs[1:]] == [
        (None, None, None, 38),
        (None,) * 3 + (19,),
    ]
    assert len(training.outputs) == 2


def test_lr_multipliers_follow_the_prototxt(model, coco_net):
    multipliers = lr_multipliers(model)
    assert set(multipliers) == {v.path for v in model.trainable_variables}
    for conv in coco_net.convolutions():
        assert (
            multipliers[f"{conv.name}/kernel"],
            multipliers[f"{conv.name}/bias"],
        ) == conv.lr_mult
    assert set(multipliers.values()) == {1.0, 2.0, 4.0, 8.0}


def test_weight_decay_penalises_kernels_only():
    decayed = build_cmu_model(stages=1, weight_decay=5e-4)
    layers = conv_layers(decayed)
    assert len(decayed.losses) == len(layers) == 22
    expected = sum(5e-4 * np.sum(np.square(layer.get_weights()[0])) for layer in layers)
    assert float(sum(np.asarray(loss) for loss in decayed.losses)) == pytest.approx(
        expected, rel=1e-4
    )
    assert not build_cmu_model(stages=1).losses


def test_stages_must_be_positive():
    with pytest.raises(ValueError, match="stages"):
        build_cmu_model(stages=0)


def _later_port_name(name: str) -> str:
    """The later original port's names for stage 1: Mconv{i}_stage1_L{b}."""
    if name.startswith("conv5_") and "_CPM_L" in name:
        return f"Mconv{name[6]}_stage1_L{name[-1]}"
    return name


@pytest.mark.parametrize(
    ("full_model", "rename"), [(True, lambda n: n), (False, lambda n: n), (True, _later_port_name)]
)
def test_load_keras2_h5(tmp_path, small_model, full_model, rename):
    weights = {
        layer.name: tuple(RNG.normal(size=v.shape).astype("float32") for v in layer.weights)
        for layer in conv_layers(small_model)
    }
    path = tmp_path / "model.h5"
    write_keras2_h5(path, weights, full_model, rename)
    load_cmu_weights(small_model, path)
    for layer in conv_layers(small_model):
        kernel, bias = layer.get_weights()
        np.testing.assert_array_equal(kernel, weights[layer.name][0])
        np.testing.assert_array_equal(bias, weights[layer.name][1])


def test_keras2_h5_with_a_wrong_shape_names_the_layer(tmp_path, small_model):
    weights = {layer.name: [v.numpy() for v in layer.weights] for layer in conv_layers(small_model)}
    weights["conv3_2"][0] = weights["conv3_2"][0][:, :, :128]
    write_keras2_h5(tmp_path / "model.h5", weights, full_model=True)
    with pytest.raises(WeightsError, match="layer conv3_2 has weights of shapes"):
        load_cmu_weights(small_model, tmp_path / "model.h5")
    del weights["Mconv7_stage2_L2"]
    weights["conv3_2"][0] = np.zeros((3, 3, 256, 256), "float32")
    write_keras2_h5(tmp_path / "model.h5", weights, full_model=False)
    with pytest.raises(WeightsError, match="no weights for layer Mconv7_stage2_L2"):
        load_cmu_weights(small_model, tmp_path / "model.h5")


def test_training_weights_load_into_the_testing_model(tmp_path, small_model):
    training = build_cmu_model(training=True, stages=2)
    _randomize(training)
    training.save_weights(tmp_path / "trained.weights.h5")
    load_cmu_weights(small_model, tmp_path / "trained.weights.h5")
    for layer in conv_layers(small_model):
        np.testing.assert_array_equal(
            layer.get_weights()[0], training.get_layer(layer.name).get_weights()[0]
        )


def test_unfit_weights_files_are_refused(tmp_path, small_model):
    with pytest.raises(WeightsError, match="not found"):
        load_cmu_weights(small_model, tmp_path / "absent.weights.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(WeightsError, match="not an HDF5"):
        load_cmu_weights(small_model, tmp_path / "text.h5")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match="expected a .weights.h5"):
        load_cmu_weights(small_model, tmp_path / "weights.npz")
    build_cmu_model(stages=1).save_weights(tmp_path / "one_stage.weights.h5")
    with pytest.raises(WeightsError, match="cannot load") as error:
        load_cmu_weights(small_model, tmp_path / "one_stage.weights.h5")
    assert "\n" not in str(error.value)
