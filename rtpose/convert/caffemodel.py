"""Caffe's binary ``.caffemodel`` without Caffe: the layers that carry parameter blobs.

A ``.caffemodel`` is a serialized ``caffe.NetParameter`` protobuf. It is decoded here from the
wire format, reading only the fields that carry weights (caffe.proto numbers):

* NetParameter: ``name`` 1, ``layers`` 2 (old V1LayerParameter), ``layer`` 100 (LayerParameter)
* LayerParameter: ``name`` 1, ``type`` 2 (string), ``blobs`` 7
* V1LayerParameter: ``name`` 4, ``type`` 5 (enum), ``blobs`` 6
* BlobProto: ``num`` 1, ``channels`` 2, ``height`` 3, ``width`` 4 (old shape), ``data`` 5
  (float32), ``shape`` 7 (BlobShape: ``dim`` 1, int64), ``double_data`` 8

Repeated numbers may be packed or not. Blobs keep Caffe's layout: convolution weights are
(out, in, kh, kw).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtpose.errors import ConversionError


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
V1_LAYER_TYPES = (
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
                kind = next((t for n, _, t in V1_LAYER_TYPES if n == value), f"V1 type {value}")
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
