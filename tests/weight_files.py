"""Writers of the foreign weight files that the converters read, each written here on its own
(independent of the readers in ``rtpose.convert``), for tests to fill with generated weights:

* a ``.caffemodel``: a small protobuf encoder of ``caffe.NetParameter``, in the current
  (``layer``, BlobShape, packed) and the old (``layers``, num/channels/height/width, unpacked)
  forms;
* a Keras 2 ``model.h5`` as the original port wrote it;
* a PyTorch ``.pth`` in torch's zip and legacy formats, the pickles written opcode by opcode,
  so that no PyTorch is needed.
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

# --- .prototxt ----------------------------------------------------------------------------------


def cut_prototxt(prototxt: Path, last_stage: int, output: Path) -> Path:
    """The prototxt without the layers of the stages after ``last_stage``."""
    blocks = re.split(r"\n(?=layer \{)", prototxt.read_text())
    later = "|".join(str(s) for s in range(last_stage + 1, 7))
    kept = [b for b in blocks if not later or not re.search(rf'name: "\w*stage({later})\w*"', b)]
    output.write_text("\n".join(kept))
    return output


def random_layers(net, rng: np.random.Generator) -> list[tuple[str, str, list[np.ndarray]]]:
    """Every layer of a NetSpec, convolutions with random weights (out, in, kh, kw) and bias."""
    shapes = {c.name: (c.weight_shape, c.num_output) for c in net.convolutions()}
    return [
        (
            layer.name,
            layer.type,
            [rng.normal(0, 0.05, s).astype("float32") for s in shapes[layer.name]]
            if layer.name in shapes
            else [],
        )
        for layer in net.layers
    ]


def random_state(net, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A state dict of a NetSpec's convolutions as the ``.pth`` files key and shape them
    (``<layer>.weight`` (out, in, kh, kw), ``<layer>.bias``): He-normal kernels and small biases,
    so that a real image's maps through all the stages stay finite and hold peaks."""
    state = {}
    for conv in net.convolutions():
        cout, cin, kh, kw = conv.weight_shape
        scale = np.float32(np.sqrt(2 / (cin * kh * kw)))
        state[f"{conv.name}.weight"] = rng.standard_normal(conv.weight_shape, np.float32) * scale
        state[f"{conv.name}.bias"] = rng.normal(0, 0.05, cout).astype(np.float32)
    return state


# --- .caffemodel (protobuf) ---------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray, old_form: bool) -> bytes:
    if old_form:  # num, channels, height, width and one fixed32 field per number
        dims = (1,) * (4 - array.ndim) + array.shape
        out = b"".join(_key(f, 0) + _varint(d) for f, d in zip((1, 2, 3, 4), dims, strict=True))
        return out + b"".join(_key(5, 5) + struct.pack("<f", v) for v in array.ravel())
    shape = _bytes_field(1, b"".join(_varint(d) for d in array.shape))  # packed int64 dims
    return _bytes_field(7, shape) + _bytes_field(5, array.astype("<f4").tobytes())


def caffemodel_bytes(
    layers: list[tuple[str, str, list[np.ndarray]]], old_form: bool = False
) -> bytes:
    """A NetParameter: ``layer`` (100) messages, or old ``layers`` (2) V1LayerParameter ones."""
    parts = [_bytes_field(1, b"test_net")]
    for name, kind, blobs in layers:
        if old_form:
            v1_type = {"Convolution": 4, "ReLU": 18, "Pooling": 17, "Concat": 3}[kind]
            layer = _bytes_field(4, name.encode()) + _key(5, 0) + _varint(v1_type)
            layer += b"".join(_bytes_field(6, _blob(b, old_form)) for b in blobs)
            parts.append(_bytes_field(2, layer))
        else:
            layer = _bytes_field(1, name.encode()) + _bytes_field(2, kind.encode())
            layer += b"".join(_bytes_field(7, _blob(b, old_form)) for b in blobs)
            parts.append(_bytes_field(100, layer))
    return b"".join(parts)


# --- Keras 2 .h5 --------------------------------------------------------------------------------


def write_keras2_h5(path, weights: dict, full_model: bool, rename=lambda name: name) -> None:
    """A Keras 2 file as the original port wrote it: ``model.save`` puts the layers under
    ``model_weights``, ``save_weights`` at the root; datasets ``<layer>/<layer>/kernel:0``.
    ``weights``: layer name -> (kernel (kh, kw, in, out), bias)."""
    with h5py.File(path, "w") as file:
        root = file.create_group("model_weights") if full_model else file
        root.attrs["layer_names"] = [rename(n).encode() for n in weights]
        for name, (kernel, bias) in weights.items():
            name = rename(name)
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group[f"{name}/kernel:0"] = kernel
            group[f"{name}/bias:0"] = bias
        if full_model:
            file.attrs["keras_version"] = b"2.0.8"


# --- PyTorch .pth -------------------------------------------------------------------------------

_STORAGE_TYPES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as torch pickles it: elements of a storage at an offset, with strides."""

    storage: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def contiguous(state: dict[str, np.ndarray]) -> tuple[dict[str, TensorSpec], dict]:
    """Each array in a storage of its own, as ``torch.save`` of a state dict lays it out."""
    tensors, storages = {}, {}
    for i, (name, array) in enumerate(state.items()):
        strides = tuple(int(np.prod(array.shape[d + 1 :])) for d in range(array.ndim))
        tensors[name] = TensorSpec(str(i), 0, array.shape, strides)
        storages[str(i)] = np.ascontiguousarray(array).ravel()
    return tensors, storages


def _op_str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _op_int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def _op_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _op_global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


_ORDERED_DICT = _op_global("collections", "OrderedDict") + b")R"  # OrderedDict()


def state_pickle(tensors: dict[str, TensorSpec], storages: dict, legacy: bool) -> bytes:
    """Protocol 2 pickle of an OrderedDict of tensors, as torch writes a state dict: each value
    ``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``, each storage
    the persistent id ``('storage', type, key, 'cpu', numel)`` (legacy: and a view, None)."""
    items = []
    for name, t in tensors.items():
        data = storages[t.storage]
        pid = _op_tuple(
            _op_str("storage"),
            _op_global("torch", _STORAGE_TYPES[data.dtype.name]),
            _op_str(t.storage),
            _op_str("cpu"),
            _op_int(data.size),
            b"N" if legacy else b"",
        )
        args = _op_tuple(
            pid + b"Q",  # BINPERSID
            _op_int(t.offset),
            _op_tuple(*map(_op_int, t.size)),
            _op_tuple(*map(_op_int, t.stride)),
            b"\x89",  # NEWFALSE: requires_grad
            _ORDERED_DICT,  # backward hooks
        )
        items.append(_op_str(name) + _op_global("torch._utils", "_rebuild_tensor_v2") + args + b"R")
    return b"\x80\x02" + _ORDERED_DICT + b"(" + b"".join(items) + b"u."  # SETITEMS, STOP


def write_pth(
    path: Path,
    tensors: dict[str, TensorSpec],
    storages: dict,
    legacy: bool = False,
    data_pickle: bytes | None = None,
) -> Path:
    """A ``.pth`` in torch's zip format (``archive/data.pkl``, ``archive/data/<key>``) or its
    legacy format (magic number, protocol 1001, sys_info, object, storage keys, then each storage
    as an int64 element count and its bytes). ``data_pickle`` replaces the object's pickle."""
    data_pickle = data_pickle or state_pickle(tensors, storages, legacy)
    if not legacy:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("archive/data.pkl", data_pickle)
            archive.writestr("archive/byteorder", "little")
            for key, data in storages.items():
                little = data.astype(data.dtype.newbyteorder("<"))
                archive.writestr(f"archive/data/{key}", little.tobytes())
            archive.writestr("archive/version", "3\n")
        return path
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    with open(path, "wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            file.write(pickle.dumps(header, protocol=2))
        file.write(data_pickle)
        file.write(pickle.dumps(list(storages), protocol=2))
        for data in storages.values():
            file.write(struct.pack("<q", data.size))
            file.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return path
