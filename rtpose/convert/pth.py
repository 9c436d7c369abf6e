"""PyTorch ``.pth`` state dicts without PyTorch (their conversion into Keras weights:
``rtpose.convert.state_dict``).

Both of torch's formats are read (``torch/serialization.py``):

* zip (``torch.save``'s default since torch 1.6): ``<prefix>/data.pkl`` pickles the object, each
  storage as the persistent id ``('storage', storage_type, key, location, numel)``, and the
  member ``<prefix>/data/<key>`` holds that storage's raw bytes (byte order in
  ``<prefix>/byteorder``, little when absent);
* legacy: pickles of the magic number, the protocol version (1001) and a ``sys_info`` dict, the
  object with persistent ids ``('storage', storage_type, key, location, numel, view)``, the list
  of storage keys, then each of those storages in turn: an int64 element count and its bytes.

A tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, offset and
strides counted in elements. The pickles go through an unpickler that knows only
``collections.OrderedDict``, the tensor rebuild functions and the storage types: anything else
is refused, so nothing in a file ever runs.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from rtpose.errors import ConversionError

if TYPE_CHECKING:
    pass

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"
_BFLOAT16 = "bfloat16"  # no numpy dtype: read as uint16, widened to float32
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": _BFLOAT16,
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


class PthFormatError(ConversionError):
    """A ``.pth`` file is missing, truncated, malformed, or holds more than tensors."""


# --- the objects a pickle may build -------------------------------------------------------------


@dataclass(frozen=True)
class _StorageType:
    name: str  # torch's class name, e.g. FloatStorage


@dataclass
class _Storage:
    key: str
    kind: _StorageType
    numel: int
    data: np.ndarray | None = None

    def dtype(self, little_endian: bool = True) -> np.dtype:
        """The dtype of the stored bytes (bfloat16 as uint16)."""
        code = _STORAGE_DTYPES[self.kind.name]
        return np.dtype(("<" if little_endian else ">") + ("u2" if code == _BFLOAT16 else code))

    def fill(self, raw: bytes, little_endian: bool, path: Path) -> None:
        """Set the storage's elements from its raw bytes (``numel`` elements exactly)."""
        dtype = self.dtype(little_endian)
        if len(raw) != self.numel * dtype.itemsize:
            raise PthFormatError(
                f"{path}: truncated: storage {self.key} holds {len(raw)} bytes, "
                f"{self.numel} {self.kind.name} elements need "
                f"{self.numel * dtype.itemsize}"
            )
        data = np.frombuffer(raw, dtype)
        if _STORAGE_DTYPES[self.kind.name] == _BFLOAT16:
            data = (data.astype(np.uint32) << 16).view(np.float32)
        self.data = data


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it; its storage's bytes may come later in the file."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any
) -> _TensorRef:
    """Stands for torch._utils._rebuild_tensor and _rebuild_tensor_v2 (requires_grad, hooks,
    metadata follow; they do not change the values)."""
    if not isinstance(storage, _Storage):  # reported with the file's name by _unpickle
        raise TypeError(f"a tensor is built from {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    """Stands for torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Builds only what ``_GLOBALS`` names; storages come from ``load_storage``."""

    def __init__(
        self, file: IO[bytes], path: Path, load_storage: Callable[[tuple], _Storage] | None
    ):
        super().__init__(file, encoding="utf-8")  # as torch reads Python 2 pickles
        self._path, self._load_storage = path, load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise PthFormatError(
                f"{self._path}: refused to load {module}.{name}: only state dicts "
                "of tensors are read (no code in a .pth is ever run)"
            )
        return _GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        if self._load_storage is None:
            raise PthFormatError(f"{self._path}: a storage ({pid!r}) where the format has none")
        return self._load_storage(pid)


def _unpickle(
    file: IO[bytes], path: Path, load_storage: Callable[[tuple], _Storage] | None = None
) -> Any:
    try:
        return _Unpickler(file, path, load_storage).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        MemoryError,
    ) as e:
        raise PthFormatError(
            f"{path}: truncated or not a PyTorch file ({type(e).__name__}: {e})"
        ) from e


def _storage_id(pid: Any, fields: int, path: Path) -> tuple:
    """Check a persistent id ``('storage', storage_type, key, location, numel[, view])``."""
    if not (
        isinstance(pid, tuple)
        and len(pid) == fields
        and pid[0] == "storage"
        and isinstance(pid[1], _StorageType)
        and isinstance(pid[2], str)
        and isinstance(pid[4], int)
        and pid[4] >= 0
    ):
        raise PthFormatError(f"{path}: unexpected storage reference {pid!r}")
    return pid


# --- the two formats ----------------------------------------------------------------------------


def _read_zip(path: Path, progress: bool, data: bool = True) -> dict[str, _TensorRef]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise PthFormatError(
            f"{path}: truncated or not a PyTorch file (not a whole zip archive: {e})"
        ) from e
    with archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise PthFormatError(
                f"{path}: a zip archive without one <name>/data.pkl; not a PyTorch file"
            )
        prefix = pickles[0].removesuffix("data.pkl")
        storages: dict[str, _Storage] = {}

        def load_storage(pid: Any) -> _Storage:
            _, kind, key, _, numel = _storage_id(pid, 5, path)
            return storages.setdefault(key, _Storage(key, kind, numel))

        try:
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        except KeyError:
            byteorder = "little"  # files from torch < 2.1 have no byteorder record
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as e:
            raise PthFormatError(f"{path}: unreadable byteorder record ({e})") from e
        try:
            result = _tensors(_unpickle(io.BytesIO(archive.read(pickles[0])), path, load_storage),
                              path)
            if not data:
                return result
            total = sum(archive.getinfo(f"{prefix}data/{key}").file_size for key in storages)
            with tqdm(
                total=total, unit="B", unit_scale=True, desc="reading .pth", disable=not progress
            ) as bar:
                for key, storage in storages.items():
                    member = archive.getinfo(f"{prefix}data/{key}")
                    if member.file_size != storage.numel * storage.dtype().itemsize:
                        raise PthFormatError(
                            f"{path}: storage {key} holds {member.file_size} bytes, its "
                            f"{storage.numel} {storage.kind.name} elements need "
                            f"{storage.numel * storage.dtype().itemsize}"
                        )
                    storage.fill(archive.read(member), byteorder == "little", path)
                    bar.update(member.file_size)
        except KeyError as e:
            raise PthFormatError(f"{path}: the archive has no member {e}") from e
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise PthFormatError(f"{path}: corrupt zip archive ({e})") from e
    return result


def _read_legacy(path: Path, progress: bool, data: bool = True) -> dict[str, _TensorRef]:
    storages: dict[str, _Storage] = {}

    def load_storage(pid: Any) -> _Storage:
        _, kind, key, _, numel, view = _storage_id(pid, 6, path)
        if view is not None:
            raise PthFormatError(f"{path}: storage views (torch < 0.4 files) are not supported")
        return storages.setdefault(key, _Storage(key, kind, numel))

    end = path.stat().st_size
    with open(path, "rb") as file:
        if _unpickle(file, path) != LEGACY_MAGIC:
            raise PthFormatError(f"{path}: a pickle, but not a PyTorch file (no magic number)")
        version = _unpickle(file, path)
        if version != LEGACY_PROTOCOL:
            raise PthFormatError(f"{path}: PyTorch legacy protocol {version!r}, expected 1001")
        sys_info = _unpickle(file, path)
        little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
        result = _tensors(_unpickle(file, path, load_storage), path)
        if not data:
            return result
        keys = _unpickle(file, path)
        if not isinstance(keys, list) or sorted(keys) != sorted(storages):
            raise PthFormatError(f"{path}: the list of storages does not match the object's")
        total = sum(storages[k].numel for k in keys)
        with tqdm(
            total=total, unit=" numbers", unit_scale=True, desc="reading .pth", disable=not progress
        ) as bar:
            for key in keys:
                storage = storages[key]
                count = file.read(8)
                if len(count) < 8:
                    raise PthFormatError(f"{path}: truncated: the file ends before storage {key}")
                (numel,) = struct.unpack("<q" if little else ">q", count)
                if numel != storage.numel:
                    raise PthFormatError(
                        f"{path}: storage {key} has {numel} elements, its "
                        f"reference says {storage.numel}"
                    )
                size = numel * storage.dtype().itemsize
                if size > end - file.tell():  # checked before reading: no huge allocation
                    raise PthFormatError(
                        f"{path}: truncated: storage {key} needs {size} bytes, "
                        f"{end - file.tell()} remain"
                    )
                storage.fill(file.read(size), little, path)
                bar.update(numel)
    return result


def _tensors(result: Any, path: Path) -> dict[str, _TensorRef]:
    """The named tensors of an unpickled state dict, each checked against its storage's declared
    size (no view beyond its storage, no more elements than it holds), before any storage is
    read: together with the storages' sizes checked against the file's, what is allocated is
    bounded by what the file holds."""
    if not isinstance(result, Mapping):
        raise PthFormatError(f"{path}: holds a {type(result).__name__}, not a state dict")
    tensors = {}
    for name, value in result.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise PthFormatError(f"{path}: entry {name!r} is not a named tensor; not a state dict")
        size, stride, offset = value.size, value.stride, value.offset
        if len(size) != len(stride) or min((offset, *size, *stride)) < 0:
            raise PthFormatError(f"{path}: tensor {name} has a malformed layout")
        count, numel = math.prod(size), value.storage.numel
        if count and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= numel:
            raise PthFormatError(f"{path}: tensor {name} runs past the end of its storage")
        if count > numel:
            raise PthFormatError(f"{path}: tensor {name} claims {count:,} elements, its storage "
                                 f"holds {numel:,}")
        tensors[name] = value
    return tensors


def _array(tensor: _TensorRef) -> np.ndarray:
    data, size, stride, offset = tensor.storage.data, tensor.size, tensor.stride, tensor.offset
    if 0 in size:
        return np.zeros(size, data.dtype)
    view = np.lib.stride_tricks.as_strided(
        data[offset:], size, [s * data.itemsize for s in stride], writeable=False
    )
    return np.ascontiguousarray(view)


def _read(path: str | Path, progress: bool, data: bool) -> dict[str, _TensorRef]:
    path = Path(path)
    if not path.is_file():
        raise PthFormatError(f".pth file not found: {path}")
    with open(path, "rb") as file:
        head = file.read(4)
    if head == ZIP_MAGIC:
        return _read_zip(path, progress, data)
    if head[:1] == b"\x80":  # a pickle's PROTO opcode
        return _read_legacy(path, progress, data)
    raise PthFormatError(
        f"{path}: not a PyTorch file (neither torch's zip nor its "
        f"legacy format)" + ("; the file is empty" if not head else "")
    )


def pth_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The names and shapes of a PyTorch state dict file's tensors, from its pickle alone: no
    tensor data is read (each tensor is checked against its storage's declared size)."""
    return {name: tensor.size for name, tensor in _read(path, False, data=False).items()}


def read_pth(path: str | Path, progress: bool = True) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file (zip or legacy format) by name, as numpy arrays
    of their own dtype and shape, without PyTorch. Each tensor is checked against its storage,
    and each storage against the bytes the file holds, before anything is allocated: a small
    file cannot claim a huge tensor."""
    return {name: _array(tensor) for name, tensor in _read(path, progress, data=True).items()}
