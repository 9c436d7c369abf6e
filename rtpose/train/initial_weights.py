"""Initial weights for training: ImageNet VGG19 for the CMU front, or any compatible weights.

The CMU model's ``conv1_1`` .. ``conv4_2`` are VGG19's first ten convolutions. They start from
the ImageNet weights that Keras publishes (``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``,
a Keras 2 HDF5 file), either a file given by the user or the one ``keras.applications`` fetches.

Colour order: those Keras VGG19 weights were converted from Caffe's VGG19 and expect BGR input
(Keras' "caffe" preprocessing), and the CMU network is fed BGR, as the original CMU training fed
BGR to the Caffe VGG19 it started from. Scale: the CMU model normalises its input to
``x / 256 - 0.5`` while VGG19 was trained on mean-subtracted 0..255 pixels; the original Caffe
training started from the same mismatch, and the front layers adapt while training.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np

from rtpose.errors import WeightsError
from rtpose.train.config import VGG19_FILE

# CMU (Caffe) layer name -> Keras VGG19 layer name
VGG19_LAYERS = {
    "conv1_1": "block1_conv1", "conv1_2": "block1_conv2",
    "conv2_1": "block2_conv1", "conv2_2": "block2_conv2",
    "conv3_1": "block3_conv1", "conv3_2": "block3_conv2",
    "conv3_3": "block3_conv3", "conv3_4": "block3_conv4",
    "conv4_1": "block4_conv1", "conv4_2": "block4_conv2",
}  # fmt: skip


def _read_keras2_layer(path: Path, file: h5py.File, name: str) -> list[np.ndarray]:
    """A layer's arrays from a Keras 2 HDF5 file, kernel first (``weight_names`` order)."""
    root = file["model_weights"] if "model_weights" in file else file
    if name not in root:
        raise WeightsError(f"{path}: no layer {name} (is this the VGG19 no-top weights file?)")
    group = root[name]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", ())]
    if not names:
        group.visit(lambda n: names.append(n) if isinstance(group[n], h5py.Dataset) else None)
    return sorted((np.asarray(group[n]) for n in names), key=lambda a: -a.ndim)


def read_vgg19_h5(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The ten VGG19 convolutions of a Keras 2 weights file, by CMU layer name: [kernel, bias]."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGG19 weights file not found: {path}")
    try:
        file = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not an HDF5 weights file") from e
    with file:
        return {cmu: _read_keras2_layer(path, file, vgg) for cmu, vgg in VGG19_LAYERS.items()}


def imagenet_vgg19() -> dict[str, list[np.ndarray]]:
    """The ten convolutions of ``keras.applications.VGG19`` with ImageNet weights.

    Keras downloads the file into ``~/.keras/models`` the first time; without internet that
    fails, and the error says how to go on.
    """
    try:
        vgg = keras.applications.VGG19(include_top=False, weights="imagenet")
    # keras.utils.get_file reports a failed download as a bare Exception; its text is kept.
    except Exception as e:
        raise WeightsError(
            f"cannot get the ImageNet VGG19 weights ({str(e).splitlines()[0]}); pass "
            f"--vgg-weights PATH ({VGG19_FILE}) or --from-scratch"
        ) from e
    return {cmu: vgg.get_layer(name).get_weights() for cmu, name in VGG19_LAYERS.items()}


def set_vgg19_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Copy VGG19 convolutions into the model's ``conv1_1`` .. ``conv4_2``."""
    for name, arrays in weights.items():
        try:
            layer = model.get_layer(name)
        except ValueError as e:
            raise WeightsError(f"model {model.name} has no layer {name} for VGG19") from e
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise WeightsError(f"VGG19 {VGG19_LAYERS[name]} has shapes "
                               f"{[a.shape for a in arrays]}, {name} needs {expected}")
        layer.set_weights(arrays)


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copy every weighted layer of ``target`` from the layer of the same name in ``source``.

    Used between the testing and training variants of one architecture (Keras 3 weights files
    match layers by position, and the variants order their layers differently). Returns the
    number of layers copied; a layer missing in ``source`` or of another shape is an error.
    """
    found = {layer.name: layer for layer in source.layers if layer.weights}
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in found:
            raise WeightsError(f"{source.name} has no layer {layer.name}")
        arrays = found[layer.name].get_weights()
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise WeightsError(f"layer {layer.name}: shapes {[a.shape for a in arrays]} do not "
                               f"fit {expected}")
        layer.set_weights(arrays)
        copied += 1
    return copied
