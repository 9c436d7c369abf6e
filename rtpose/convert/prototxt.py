"""Caffe's network definition (``.prototxt``, protobuf text format) without Caffe.

:func:`read_prototxt` gives a :class:`NetSpec`: the input blobs' channel counts and the layers
in order, from which :meth:`NetSpec.convolutions` propagates each convolution's input channels
(so the weight shapes a ``.caffemodel`` must hold, (out, in, kh, kw), are known). Both the
current (``layer``, ``Input``) and the old (``layers``, ``input_dim``, V1 type names) forms
are read.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.convert.caffemodel import V1_LAYER_TYPES, CaffeFormatError

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
            type=next((t for _, v1, t in V1_LAYER_TYPES if v1 == first["type"]), first["type"]),
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
