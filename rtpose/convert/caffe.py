"""Caffe model files without Caffe: a ``.caffemodel`` reader, a ``.prototxt`` reader, ``.npy``
dumps, and the ``.npy`` -> Keras conversion of the CMU body model.

A ``.caffemodel`` is a serialized ``caffe.NetParameter`` protobuf. It is decoded here from the
wire format, reading only the fields that carry weights (caffe.proto numbers):

* NetParameter: ``name`` 1, ``layers`` 2 (old V1LayerParameter), ``layer`` 100 (LayerParameter)
* LayerParameter: ``name`` 1, ``type`` 2 (string), ``blobs`` 7
* V1LayerParameter: ``name`` 4, ``type`` 5 (enum), ``blobs`` 6
* BlobProto: ``num`` 1, ``channels`` 2, ``height`` 3, ``width`` 4 (old shape), ``data`` 5
  (float32), ``shape`` 7 (BlobShape: ``dim`` 1, int64), ``double_data`` 8

Repeated numbers may be packed or not. Convolution weights are (out, in, kh, kw) in Caffe and
(kh, kw, in, out) in Keras.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from rtpose.convert import write_atomically
from rtpose.errors import ConversionError

if TYPE_CHECKING:
    import keras


class CaffeFormatError(ConversionError):
    """A Caffe file is missing, truncated, malformed, or does not match the network."""


# --- protobuf wire format ---------------------------------------------------------------------

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise CaffeFormatError(f"a number at byte {pos} runs past the end of its data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeFormatError(f"malformed number ending at byte {pos}")


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, object, int]]:
    """Yield ``(field number, wire type, value, end position)`` of each field in buf[start:end].

    The value is an int for varints, bytes for fixed32/fixed64, and a ``(start, end)`` span for
    length-delimited fields.
    """
    pos = start
    while pos < end:
        at = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CaffeFormatError(f"malformed field at byte {at} (field number 0)")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire in (_FIXED64, _FIXED32, _BYTES):
            if wire == _BYTES:
                size, pos = _varint(buf, pos, end)
            else:
                size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise CaffeFormatError(
                    f"field {number} at byte {at} needs {size} bytes, only {end - pos} remain"
                )
            value = (pos, pos + size) if wire == _BYTES else buf[pos : pos + size]
            pos += size
        else:
            raise CaffeFormatError(f"malformed field at byte {at} (wire type {wire})")
        yield number, wire, value, pos


def _string(buf: bytes, span: object, what: str) -> str:
    if not isinstance(span, tuple):
        raise CaffeFormatError(f"{what} is not a string")
    try:
        return bytes(buf[span[0] : span[1]]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CaffeFormatError(f"{what} is not valid UTF-8") from e


def _varints(buf: bytes, wire: int, value: object) -> list[int]:
    """One field of a repeated integer: packed (a span) or a single varint."""
    if wire == _VARINT:
        return [value]
    (start, end), values = value, []
    while start < end:
        number, start = _varint(buf, start, end)
        values.append(number)
    return values


# --- .caffemodel ------------------------------------------------------------------------------

# Old (V1) layer types: enum number, prototxt spelling, current name.
_V1_LAYER_TYPES = (
    (3, "CONCAT", "Concat"), (4, "CONVOLUTION", "Convolution"), (6, "DROPOUT", "Dropout"),
    (14, "INNER_PRODUCT", "InnerProduct"), (15, "LRN", "LRN"), (17, "POOLING", "Pooling"),
    (18, "RELU", "ReLU"), (19, "SIGMOID", "Sigmoid"),
)  # fmt: skip
# (name, type, blobs) field numbers of LayerParameter (NetParameter field 100) and
# V1LayerParameter (NetParameter field 2).
_LAYER_FIELDS = {100: (1, 2, 7), 2: (4, 5, 6)}


@dataclass(frozen=True)
class CaffeLayer:
    """A layer of a .caffemodel with its parameter blobs (Caffe layout, float32)."""

    name: str
    type: str
    blobs: tuple[np.ndarray, ...]


def _blob(buf: bytes, start: int, end: int, where: str) -> np.ndarray:
    shape, legacy, chunks = None, {}, {"<f4": [], "<f8": []}
    for number, wire, value, _ in _fields(buf, start, end):
        if number == 7 and wire == _BYTES:  # BlobShape
            dims = [_varints(buf, w, v) for n, w, v, _ in _fields(buf, *value) if n == 1]
            shape = tuple(d for field in dims for d in field)
        elif number in (1, 2, 3, 4) and wire == _VARINT:  # num, channels, height, width
            legacy[number] = value
        elif (number, wire) in ((5, _BYTES), (5, _FIXED32), (8, _BYTES), (8, _FIXED64)):
            span = memoryview(buf)[value[0] : value[1]] if wire == _BYTES else value
            chunks["<f4" if number == 5 else "<f8"].append(span)
    dtype = "<f8" if chunks["<f8"] and not chunks["<f4"] else "<f4"
    data = np.frombuffer(b"".join(chunks[dtype]), dtype).astype(np.float32)
    if shape is None:
        shape = tuple(legacy.get(n, 0) for n in (1, 2, 3, 4)) if legacy else (data.size,)
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f"{where}: a blob of shape {shape} holds {data.size} numbers")
    return data.reshape(shape)


def _layer(buf: bytes, start: int, end: int, field: int) -> CaffeLayer:
    name_field, type_field, blobs_field = _LAYER_FIELDS[field]
    name, kind, blob_spans = "", "", []
    for number, wire, value, _ in _fields(buf, start, end):
        if number == name_field:
            name = _string(buf, value, f"the name of a layer at byte {start}")
        elif number == type_field:
            if wire == _VARINT:
                kind = next((t for n, _, t in _V1_LAYER_TYPES if n == value), f"V1 type {value}")
            else:
                kind = _string(buf, value, f"the type of layer {name!r}")
        elif number == blobs_field and wire == _BYTES:
            blob_spans.append(value)
    blobs = tuple(_blob(buf, s, e, f"layer {name}") for s, e in blob_spans)
    return CaffeLayer(name, kind, blobs)


def read_caffemodel(path: str | Path, progress: bool = True) -> dict[str, CaffeLayer]:
    """The layers that have parameter blobs in a binary ``.caffemodel``, by layer name."""
    path = Path(path)
    if not path.is_file():
        raise CaffeFormatError(
            f"caffemodel not found: {path} (bash model/get_caffe_model.sh fetches the CMU one)"
        )
    buf = path.read_bytes()
    layers = {}
    try:
        with tqdm(total=len(buf), unit="B", unit_scale=True, desc="reading caffemodel",
                  disable=not progress) as bar:  # fmt: skip
            done = 0
            for number, wire, value, pos in _fields(buf, 0, len(buf)):
                if number in _LAYER_FIELDS and wire == _BYTES:
                    layer = _layer(buf, *value, number)
                    if layer.blobs:
                        layers[layer.name] = layer
                bar.update(pos - done)
                done = pos
    except CaffeFormatError as e:
        raise CaffeFormatError(f"{path}: truncated or not a caffemodel: {e}") from e
    if not layers:
        raise CaffeFormatError(f"{path}: no layers with weights; not a Caffe .caffemodel")
    return layers


# --- .prototxt --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<punct>[{}:])"""
    r"""|(?P<word>[^\s{}:"'\#]+)"""
)
Message = dict[str, list]  # a text-format protobuf message: field name -> values


def _tokens(text: str, path: Path) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise CaffeFormatError(f"{path}: cannot parse the text at line {_line(text, pos)}")
        if match.lastgroup == "str":
            tokens.append(("str", ast.literal_eval(match.group())))
        elif match.lastgroup:
            tokens.append((match.lastgroup, match.group()))
        pos = match.end()
    return tokens


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _message(tokens: list, i: int, nested: bool, path: Path) -> tuple[Message, int]:
    """Parse ``name: value`` and ``name { ... }`` fields from token ``i`` to the closing brace."""
    message: Message = {}
    while i < len(tokens):
        kind, name = tokens[i]
        if nested and tokens[i] == ("punct", "}"):
            return message, i + 1
        if kind != "word":
            raise CaffeFormatError(f"{path}: expected a field name, found {name!r}")
        i += 1
        if tokens[i : i + 1] == [("punct", ":")]:
            i += 1
        if i >= len(tokens):
            raise CaffeFormatError(f"{path}: the file ends after the field name {name!r}")
        if tokens[i] == ("punct", "{"):
            value, i = _message(tokens, i + 1, True, path)
        elif tokens[i][0] == "punct":
            raise CaffeFormatError(f"{path}: unexpected {tokens[i][1]!r} after {name!r}")
        else:
            value, i = tokens[i][1], i + 1
        message.setdefault(name, []).append(value)
    if nested:
        raise CaffeFormatError(f"{path}: unbalanced braces, the file ends inside a message")
    return message, i


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a prototxt: what the converter needs to know of it."""

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    num_output: int | None = None
    kernel_size: tuple[int, int] | None = None
    pad: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    lr_mult: tuple[float, ...] = ()  # per parameter blob (weights, bias); Caffe's default is 1


@dataclass(frozen=True)
class ConvSpec:
    """A convolution with its input channels propagated through the network."""

    name: str
    in_channels: int
    num_output: int
    kernel_size: tuple[int, int]
    pad: tuple[int, int]
    stride: tuple[int, int]
    lr_mult: tuple[float, float]

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """Caffe's weight blob shape (out, in, kh, kw)."""
        return (self.num_output, self.in_channels, *self.kernel_size)

    @property
    def param_count(self) -> int:
        return int(np.prod(self.weight_shape)) + self.num_output


@dataclass(frozen=True)
class NetSpec:
    """A network definition: its input blobs' channel counts and its layers in order."""

    inputs: dict[str, int]
    layers: tuple[LayerSpec, ...]

    def convolutions(self) -> list[ConvSpec]:
        """The Convolution layers, in order, with their input channels."""
        channels = dict(self.inputs)
        convs = []
        for layer in self.layers:
            missing = [b for b in layer.bottoms if b not in channels]
            if missing:
                raise CaffeFormatError(f"layer {layer.name}: input {missing[0]!r} is not defined")
            if layer.type == "Convolution":
                out = layer.num_output
                if out is None or layer.kernel_size is None:
                    raise CaffeFormatError(f"layer {layer.name}: no num_output or kernel_size")
                lr = (layer.lr_mult + (1.0, 1.0))[:2]
                convs.append(ConvSpec(layer.name, channels[layer.bottoms[0]], out,
                                      layer.kernel_size, layer.pad, layer.stride, lr))  # fmt: skip
            elif layer.type == "Concat":
                out = sum(channels[b] for b in layer.bottoms)
            elif layer.type in _CHANNEL_PRESERVING:
                out = channels[layer.bottoms[0]]
            else:
                raise CaffeFormatError(f"layer {layer.name}: unsupported type {layer.type}")
            channels.update(dict.fromkeys(layer.tops, out))
        return convs


_CHANNEL_PRESERVING = {"ReLU", "Pooling", "Dropout", "LRN", "BatchNorm", "Scale", "Sigmoid"}


def _pair(param: Message, key: str, default: int | None) -> tuple[int, int] | None:
    """A Caffe size parameter: ``key`` (one or two values) or ``key_h`` and ``key_w``."""
    base = key.removesuffix("_size")
    values = [int(v) for v in param.get(key, [])]
    if f"{base}_h" in param or f"{base}_w" in param:
        return int(param.get(f"{base}_h", [default])[0]), int(param.get(f"{base}_w", [default])[0])
    if not values:
        return None if default is None else (default, default)
    return (values[0], values[-1])


def _layer_spec(message: Message, path: Path) -> LayerSpec:
    first = {key: values[0] for key, values in message.items()}
    if "name" not in first or "type" not in first:
        raise CaffeFormatError(f"{path}: a layer without name or type")
    conv = first.get("convolution_param", {})
    try:
        return LayerSpec(
            name=first["name"],
            type=next((t for _, v1, t in _V1_LAYER_TYPES if v1 == first["type"]), first["type"]),
            bottoms=tuple(message.get("bottom", ())), tops=tuple(message.get("top", ())),
            num_output=int(conv["num_output"][0]) if "num_output" in conv else None,
            kernel_size=_pair(conv, "kernel_size", None), pad=_pair(conv, "pad", 0),
            stride=_pair(conv, "stride", 1),
            lr_mult=tuple(float(p.get("lr_mult", [1.0])[0]) for p in message.get("param", ()))
            or tuple(float(v) for v in message.get("blobs_lr", ())),
        )  # fmt: skip
    except (ValueError, TypeError, AttributeError) as e:
        raise CaffeFormatError(f"{path}: layer {first['name']}: bad parameter ({e})") from e


def _input_channels(shape_holder: Message, path: Path, index: int = 0) -> int:
    """Channels of input ``index``: from ``input_dim`` N C H W, or from ``shape { dim }``."""
    shapes = shape_holder.get("input_shape") or shape_holder.get("shape", [])
    dims = shape_holder.get("input_dim") or [d for shape in shapes for d in shape.get("dim", [])]
    try:
        return int(dims[4 * index + 1])
    except (IndexError, ValueError) as e:
        raise CaffeFormatError(f"{path}: input {index} has no channel count") from e


def _legacy_inputs(net: Message, path: Path) -> dict[str, int]:
    """``input: "data"`` with ``input_dim`` or ``input_shape``, before the layers."""
    return {name: _input_channels(net, path, i) for i, name in enumerate(net.get("input", []))}


def read_prototxt(path: str | Path) -> NetSpec:
    """Parse a Caffe network definition (``pose_deploy.prototxt``)."""
    path = Path(path)
    if not path.is_file():
        raise CaffeFormatError(f"prototxt not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    net, _ = _message(_tokens(text, path), 0, False, path)
    inputs, layers = _legacy_inputs(net, path), []
    for message in net.get("layer", []) + net.get("layers", []):
        layer = _layer_spec(message, path)
        if layer.type == "Input":
            inputs[layer.tops[0]] = _input_channels(message.get("input_param", [{}])[0], path)
        else:
            layers.append(layer)
    if not layers:
        raise CaffeFormatError(f"{path}: no layers; not a Caffe prototxt")
    return NetSpec(inputs, tuple(layers))


# --- weights ----------------------------------------------------------------------------------

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
    written = []
    for name, (w, b) in tqdm(weights.items(), desc="writing layers", disable=not progress):
        for prefix, array in (("W", w), ("b", b)):
            written.append(output_dir / f"{prefix}_{name}.npy")
            np.save(written[-1], array)
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
    return write_atomically(
        output, model.save_weights if output.name.endswith(".weights.h5") else model.save
    )
