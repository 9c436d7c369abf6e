"""Caffe -> Keras without Caffe: prototxt parsing, caffemodel decoding, dump, conversion, errors.

The caffemodels are written by the tests' own protobuf encoder (``weight_files``, independent of
the decoder), with random weights, in the current (``layer``, BlobShape, packed) and the old
(``layers``, num/channels/height/width, unpacked) forms.
"""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from weight_files import caffemodel_bytes, cut_prototxt, random_layers

from rtpose.convert.caffe import conv_weights
from rtpose.convert.caffemodel import CaffeFormatError, read_caffemodel
from rtpose.convert.prototxt import read_prototxt
from rtpose.models.cmu import build_cmu_model, load_cmu_weights

RNG = np.random.default_rng(1)


# --- fixtures ---------------------------------------------------------------------------------

TINY_PROTOTXT = """
name: "tiny"  # comment
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv_a" type: "Convolution" bottom: "data" top: "conv_a"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 pad: 1 kernel_size: 3 } }
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" }
layers { name: "conv_b" type: CONVOLUTION bottom: "conv_a" top: "conv_b"
  convolution_param { num_output: 2 kernel_h: 1 kernel_w: 3 pad_h: 0 pad_w: 1 } }
"""


def _script(repo_root, name: str):
    spec = importlib.util.spec_from_file_location(name, repo_root / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts(repo_root):
    return _script(repo_root, "dump_caffe_layers"), _script(repo_root, "caffe_to_keras")


@pytest.fixture(scope="module")
def coco_prototxt(shared_data):
    return shared_data / "caffe" / "_trained_COCO" / "pose_deploy.prototxt"


@pytest.fixture(scope="module")
def two_stage(coco_prototxt, tmp_path_factory):
    """The real prototxt cut after stage 2, its random caffemodel, and the caffemodel's layers."""
    root = tmp_path_factory.mktemp("two_stage")
    prototxt = cut_prototxt(coco_prototxt, 2, root / "pose_deploy.prototxt")
    layers = random_layers(read_prototxt(prototxt), RNG)
    caffemodel = root / "model.caffemodel"
    caffemodel.write_bytes(caffemodel_bytes(layers))
    return prototxt, caffemodel, {name: blobs for name, _, blobs in layers if blobs}


@pytest.fixture(scope="module")
def converted(two_stage, scripts, tmp_path_factory):
    """The two-stage model dumped to .npy and converted to .weights.h5 by the scripts."""
    prototxt, caffemodel, _ = two_stage
    root = tmp_path_factory.mktemp("converted")
    dump, convert = scripts
    dump.main(_dump_args(prototxt, caffemodel, root / "layers"))
    output = root / "keras" / "model.weights.h5"
    convert.main(["--layers-dir", str(root / "layers"), "--output", str(output), "--stages", "2"])
    model = build_cmu_model(stages=2)
    load_cmu_weights(model, output)
    return root / "layers", model


def _dump_args(prototxt, caffemodel, output_dir) -> list[str]:
    return ["--prototxt", str(prototxt), "--caffemodel", str(caffemodel),
            "--output-dir", str(output_dir)]  # fmt: skip


def _exit_message(main, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


# --- prototxt ---------------------------------------------------------------------------------


def test_full_coco_prototxt(coco_prototxt):
    net = read_prototxt(coco_prototxt)
    assert net.inputs == {"data": 3}
    convs = {c.name: c for c in net.convolutions()}
    assert len(convs) == 92 and len(net.layers) == 180
    assert sum(c.param_count for c in convs.values()) == 52_311_446
    assert convs["conv1_1"].weight_shape == (64, 3, 3, 3)
    assert convs["conv4_4_CPM"].weight_shape == (128, 256, 3, 3)
    assert convs["conv5_4_CPM_L1"].weight_shape == (512, 128, 1, 1)
    assert convs["conv5_5_CPM_L2"].weight_shape == (19, 512, 1, 1)
    assert convs["Mconv1_stage2_L1"].weight_shape == (128, 38 + 19 + 128, 7, 7)
    assert convs["Mconv1_stage6_L2"].pad == (3, 3) and convs["Mconv6_stage6_L2"].pad == (0, 0)
    assert convs["Mconv7_stage6_L1"].weight_shape == (38, 128, 1, 1)
    assert convs["conv4_2"].lr_mult == (1.0, 2.0) and convs["Mconv3_stage4_L1"].lr_mult == (4, 8)
    concat = next(layer for layer in net.layers if layer.name == "concat_stage4")
    assert concat.bottoms == ("Mconv7_stage3_L1", "Mconv7_stage3_L2", "conv4_4_CPM")


def test_mpi_prototxt(shared_data):
    net = read_prototxt(shared_data / "caffe" / "_trained_MPI" / "pose_deploy.prototxt")
    convs = {c.name: c for c in net.convolutions()}
    assert net.inputs == {"image": 3}
    assert convs["Mconv7_stage6_L1"].num_output == 28 and convs["Mconv7_stage6_L2"].num_output == 16
    assert convs["Mconv1_stage3_L2"].in_channels == 28 + 16 + 128


def test_tiny_prototxt_forms(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(TINY_PROTOTXT)
    conv_a, conv_b = read_prototxt(path).convolutions()
    assert (conv_a.weight_shape, conv_a.pad, conv_a.lr_mult) == ((4, 3, 3, 3), (1, 1), (1, 2))
    assert (conv_b.weight_shape, conv_b.pad, conv_b.lr_mult) == ((2, 4, 1, 3), (0, 1), (1, 1))


def test_bad_prototxts(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('layer { name: "a" type: "Convolution" bottom: "nowhere" top: "a" }')
    with pytest.raises(CaffeFormatError, match="layer a: input 'nowhere' is not defined"):
        read_prototxt(path).convolutions()
    path.write_text('input: "data" input_dim: 1 input_dim: 3\nlayer { name: "a" ')
    with pytest.raises(CaffeFormatError, match="unbalanced braces"):
        read_prototxt(path)
    with pytest.raises(CaffeFormatError, match="prototxt not found"):
        read_prototxt(tmp_path / "absent.prototxt")


# --- caffemodel -------------------------------------------------------------------------------


@pytest.mark.parametrize("old_form", [False, True])
def test_read_both_caffemodel_forms(tmp_path, old_form):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY_PROTOTXT)
    net = read_prototxt(prototxt)
    layers = random_layers(net, RNG)
    path = tmp_path / "tiny.caffemodel"
    path.write_bytes(caffemodel_bytes(layers, old_form))
    read = read_caffemodel(path, progress=False)
    assert sorted(read) == ["conv_a", "conv_b"]  # the ReLU has no blobs
    assert read["conv_a"].type == "Convolution"
    expected_bias_shape = (1, 1, 1, 4) if old_form else (4,)
    assert read["conv_a"].blobs[1].shape == expected_bias_shape
    weights = conv_weights(read, net)
    for name, _, blobs in layers:
        if blobs:
            np.testing.assert_array_equal(weights[name][0], blobs[0])
            np.testing.assert_array_equal(weights[name][1], blobs[1])


def test_dump_writes_the_caffe_arrays(two_stage, converted):
    _, _, blobs = two_stage
    layers_dir, _ = converted
    assert len(list(layers_dir.glob("W_*.npy"))) == len(list(layers_dir.glob("b_*.npy"))) == 36
    for name in ("conv1_1", "conv5_5_CPM_L2", "Mconv1_stage2_L1"):
        np.testing.assert_array_equal(np.load(layers_dir / f"W_{name}.npy"), blobs[name][0])
        np.testing.assert_array_equal(np.load(layers_dir / f"b_{name}.npy"), blobs[name][1])


def _caffe_conv(x_chw: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Caffe's convolution (a cross-correlation) in NCHW, stride 1, then ReLU."""
    padded = np.pad(x_chw, ((0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, w.shape[2:], axis=(1, 2))
    out = np.einsum("oikl,iyxkl->oyx", w, windows, optimize=True) + b[:, None, None]
    return np.maximum(out, 0)


def test_converted_layers_compute_what_caffe_computes(two_stage, converted):
    _, _, blobs = two_stage
    _, model = converted
    # A 7x7 layer on a non-square input, through the Keras layer alone.
    w, b = blobs["Mconv1_stage2_L1"]
    x = RNG.normal(size=(1, 11, 6, 185)).astype("float32")
    keras_out = np.asarray(model.get_layer("Mconv1_stage2_L1")(x))[0].transpose(2, 0, 1)
    np.testing.assert_allclose(keras_out, _caffe_conv(x[0].transpose(2, 0, 1), w, b, 3), atol=2e-4)
    # The first layer from the BGR image, through the model's own input normalisation.
    w, b = blobs["conv1_1"]
    image = RNG.uniform(0, 255, (1, 9, 5, 3)).astype("float32")
    first = keras.Model(model.input, model.get_layer("conv1_1").output)
    keras_out = np.asarray(first(image))[0].transpose(2, 0, 1)
    caffe_in = (image[0] / 256 - 0.5).transpose(2, 0, 1)
    np.testing.assert_allclose(keras_out, _caffe_conv(caffe_in, w, b, 1), atol=1e-5)


def test_convert_to_a_full_legacy_h5(converted, scripts, tmp_path):
    layers_dir, model = converted
    output = tmp_path / "model.h5"
    scripts[1].main(["--layers-dir", str(layers_dir), "--output", str(output), "--stages", "2"])
    image = RNG.uniform(0, 255, (1, 32, 24, 3)).astype("float32")
    expected = [np.asarray(o) for o in model(image)]
    from_keras = keras.models.load_model(output, compile=False)
    from_rtpose = build_cmu_model(stages=2)
    load_cmu_weights(from_rtpose, output)
    for loaded in (from_keras, from_rtpose):
        for out, exp in zip(loaded(image), expected, strict=True):
            np.testing.assert_allclose(np.asarray(out), exp, rtol=1e-5, atol=1e-6)


# --- errors -----------------------------------------------------------------------------------


def test_truncated_caffemodel_is_refused(two_stage, scripts, tmp_path):
    prototxt, caffemodel, _ = two_stage
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(caffemodel.read_bytes()[:-1000])
    message = _exit_message(scripts[0].main, _dump_args(prototxt, truncated, tmp_path))
    assert "truncated or not a caffemodel" in message and "only" in message
    assert not list(tmp_path.glob("*.npy"))


def test_other_files_are_refused(two_stage, scripts, shared_data, tmp_path):
    prototxt, _, _ = two_stage
    dump = scripts[0].main
    for path, expected in (
        (shared_data / "sample_images" / "ski.jpg", "truncated or not a caffemodel"),
        (tmp_path / "absent.caffemodel", "caffemodel not found"),
        (prototxt, "not a caffemodel"),
    ):
        assert expected in _exit_message(dump, _dump_args(prototxt, path, tmp_path))
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    message = _exit_message(dump, _dump_args(prototxt, empty, tmp_path))
    assert "no layers with weights" in message


def test_caffemodel_that_does_not_fit_the_prototxt(tmp_path, scripts):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY_PROTOTXT)
    layers = random_layers(read_prototxt(prototxt), RNG)
    argv = _dump_args(prototxt, tmp_path / "m.caffemodel", tmp_path / "layers")
    wrong = [
        (name, kind, [blobs[0].transpose(1, 0, 2, 3), blobs[1]] if name == "conv_b" else blobs)
        for name, kind, blobs in layers
    ]
    (tmp_path / "m.caffemodel").write_bytes(caffemodel_bytes(wrong))
    message = _exit_message(scripts[0].main, argv)
    assert "layer conv_b: weights (4, 2, 1, 3)" in message and "(2, 4, 1, 3)" in message
    without_a = [lr for lr in layers if lr[0] != "conv_a"]
    (tmp_path / "m.caffemodel").write_bytes(caffemodel_bytes(without_a))
    assert "layer conv_a of the prototxt is not in the caffemodel" in _exit_message(
        scripts[0].main, argv
    )


def test_layer_dump_that_does_not_fit_the_model(converted, scripts, tmp_path):
    layers_dir, _ = converted
    broken = tmp_path / "layers"
    broken.mkdir()
    for path in layers_dir.glob("*.npy"):
        (broken / path.name).symlink_to(path)
    convert = scripts[1].main
    argv = ["--layers-dir", str(broken), "--output", str(tmp_path / "m.weights.h5"), "--stages"]
    assert "layer Mconv1_stage3_L1" in _exit_message(convert, [*argv, "3"])
    (broken / "W_conv3_2.npy").unlink()
    np.save(broken / "W_conv3_2.npy", np.zeros((256, 256, 3, 1), "float32"))
    message = _exit_message(convert, [*argv, "2"])
    assert "layer conv3_2: Caffe weights (256, 256, 3, 1)" in message
    assert not (tmp_path / "m.weights.h5").exists()


@pytest.mark.parametrize("index", [0, 1])
def test_help(scripts, capsys, index):
    with pytest.raises(SystemExit) as exit_info:
        scripts[index].main(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
