"""The CMU body model from Caffe to Keras without Caffe: ``.npy`` dumps, then Keras weights.

:func:`dump_caffe_layers` reads the convolutions of a ``.prototxt`` (:mod:`rtpose.convert.prototxt`)
from a ``.caffemodel`` (:mod:`rtpose.convert.caffemodel`), checks their shapes and writes
``W_<layer>.npy`` and ``b_<layer>.npy``; :func:`convert_caffe_layers` sets the CMU testing model
from them and saves it. Convolution weights are (out, in, kh, kw) in Caffe and (kh, kw, in, out)
in Keras.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from rtpose.convert.caffemodel import CaffeFormatError, CaffeLayer, read_caffemodel
from rtpose.convert.prototxt import NetSpec, read_prototxt
from rtpose.files import atomic_path, remove_stale_temporaries

if TYPE_CHECKING:
    import keras


ConvWeights = dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (W (out, in, kh, kw), b (out,))


def conv_weights(layers: Mapping[str, CaffeLayer], net: NetSpec) -> ConvWeights:
    """The weights and bias of every convolution of ``net``, checked against its shapes."""
    weights = {}
    for conv in net.convolutions():
        layer = layers.get(conv.name)
        if layer is None:
            raise CaffeFormatError(f"layer {conv.name} of the prototxt is not in the caffemodel")
        if len(layer.blobs) != 2:
            raise CaffeFormatError(f"layer {conv.name}: {len(layer.blobs)} blobs, expected 2")
        w, b = layer.blobs
        if w.shape != conv.weight_shape or b.size != conv.num_output:
            raise CaffeFormatError(
                f"layer {conv.name}: weights {w.shape} and bias {b.shape} do not fit the "
                f"prototxt's {conv.weight_shape} and ({conv.num_output},)"
            )
        weights[conv.name] = (w, b.reshape(-1))
    return weights


def dump_caffe_layers(
    prototxt: str | Path, caffemodel: str | Path, output_dir: str | Path, progress: bool = True
) -> list[Path]:
    """Write ``W_<layer>.npy`` (out, in, kh, kw) and ``b_<layer>.npy`` of every convolution of
    the prototxt, read from the caffemodel, into ``output_dir``; return the written paths."""
    net = read_prototxt(prototxt)
    weights = conv_weights(read_caffemodel(caffemodel, progress), net)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    written = []
    for name, (w, b) in tqdm(weights.items(), desc="writing layers", disable=not progress):
        for prefix, array in (("W", w), ("b", b)):
            written.append(output_dir / f"{prefix}_{name}.npy")
            with atomic_path(written[-1]) as temporary:
                np.save(temporary, array)
    return written


def load_caffe_layers(layers_dir: str | Path, names: Iterable[str]) -> ConvWeights:
    """Read ``W_<name>.npy`` and ``b_<name>.npy`` of each layer name from ``layers_dir``."""
    layers_dir = Path(layers_dir)
    if not layers_dir.is_dir():
        raise CaffeFormatError(f"{layers_dir} not found; run dump_caffe_layers.py first")
    weights = {}
    for name in names:
        arrays = []
        for prefix in ("W", "b"):
            path = layers_dir / f"{prefix}_{name}.npy"
            if not path.is_file():
                raise CaffeFormatError(f"layer {name}: {path} not found")
            try:
                arrays.append(np.load(path, allow_pickle=False))
            except (ValueError, OSError, EOFError) as e:
                raise CaffeFormatError(f"layer {name}: cannot read {path} ({e})") from e
        weights[name] = (arrays[0], arrays[1])
    return weights


def set_conv_weights(model: keras.Model, weights: ConvWeights) -> None:
    """Set every convolution of a Keras model from Caffe weights of the same layer name,
    transposing (out, in, kh, kw) to Keras' (kh, kw, in, out)."""
    for layer in model.layers:
        if not hasattr(layer, "kernel"):
            continue
        if layer.name not in weights:
            raise CaffeFormatError(f"layer {layer.name}: no Caffe weights for it")
        w, b = weights[layer.name]
        kernel = np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w
        if kernel.shape != tuple(layer.kernel.shape) or b.shape != tuple(layer.bias.shape):
            raise CaffeFormatError(
                f"layer {layer.name}: Caffe weights {w.shape} and bias {b.shape} do not fit the "
                f"Keras kernel {tuple(layer.kernel.shape)} and bias {tuple(layer.bias.shape)}"
            )
        layer.set_weights([kernel, b])


def convert_caffe_layers(
    layers_dir: str | Path, output: str | Path, stages: int = 6, progress: bool = True
) -> Path:
    """Build the CMU testing model, set its weights from the ``.npy`` dump and save them.

    ``output`` ending in ``.weights.h5``: Keras 3 weights (``model.save_weights``). Ending in
    plain ``.h5``: the whole model in Keras' legacy HDF5 format (``model.save``), which
    ``keras.models.load_model`` and ``rtpose.models.cmu.load_cmu_weights`` both read.
    """
    from rtpose.models.cmu import build_cmu_model, conv_layers  # Keras only for this step

    output = Path(output)
    if not output.name.endswith(".h5"):
        raise CaffeFormatError(f"output must end with .weights.h5 or .h5: {output}")
    model = build_cmu_model(stages=stages)
    names = [layer.name for layer in conv_layers(model)]
    names = tqdm(names, desc="reading layers", disable=not progress)
    weights = load_caffe_layers(layers_dir, names)
    set_conv_weights(model, weights)
    save = model.save_weights if output.name.endswith(".weights.h5") else model.save
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output.parent)
    with atomic_path(output) as temporary:
        save(temporary)
    return output
