"""The OpenVINO IR of a Keras model, converted once and cached beside its weights.

``openvino_network(arch, weights, ...)`` converts and caches (``cached_ir`` does it for any
Keras model: the hand and face networks). The Keras model is converted once
(``convert_outputs``: ``ov.convert_model`` of its TensorFlow function, or Keras's own OpenVINO
export without TensorFlow; no ONNX step) and the IR is cached beside the weights,
``<stem>.openvino.xml`` (+ ``.bin``; ``<stem>.openvino-int8.xml`` for int8, quantised over
the calibration batches the caller gives), e.g.
``model/keras/mobilenet_thin.openvino.xml`` for ``model/keras/mobilenet_thin.weights.h5``.
The IR records the weights file's size, mtime and SHA-256; it is reused while the size matches
and the mtime or, failing that, the SHA-256 does, and is converted again otherwise. The IR's
own content is checked too: the SHA-256 of its ``.xml`` and ``.bin`` are kept beside them
(``<stem>.openvino.sha256``, ``sha256sum``'s format) and checked on every load (about 1 ms per
MB), so a damaged IR is converted again (with a warning), never silently used. Each file is
written under a temporary name in the same folder and renamed (``rtpose.files.atomic_path``:
``.bin`` first, then ``.xml``, the hashes last); the temporaries of a conversion killed with -9
are swept before the next one writes. Without a weights path, or when that folder is read-only
or the cache cannot be replaced (immutable files, a folder in its place), the IR goes to a
temporary folder removed when the process exits. Loading a cached IR imports neither TensorFlow
nor Keras.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.errors import first_line
from rtpose.files import atomic_path, remove_stale_temporaries, sha256
from rtpose.runtime.openvino.network import (
    OUTPUTS,
    OpenVinoError,
    OpenVinoNetwork,
    _core,
    check_precision,
    import_openvino,
    ir_precision,
    read_info,
    read_ir,
)

if TYPE_CHECKING:
    import keras
    import openvino as ov

    from rtpose.models import Architecture

CACHE_FORMAT = "1"  # bump when the IR's layout (inputs, outputs, recorded fields) changes
_REPORTED: set[Path] = set()  # damaged caches already reported


def openvino_cache_path(weights: str | Path, precision: str = "fp32") -> Path:
    """Where the IR of a weights file is cached: beside it, ``<stem>.openvino.xml`` (fp32 and
    bf16) or ``<stem>.openvino-int8.xml``."""
    check_precision(precision)
    weights = Path(weights)
    stem = weights.name.removesuffix(".h5").removesuffix(".weights")
    suffix = "-int8" if precision == "int8" else ""
    return weights.with_name(f"{stem}.openvino{suffix}.xml")


def weights_fingerprint(weights: str | Path, digest: bool = True) -> dict[str, str]:
    """The weights file's size, mtime (ns) and, if ``digest``, SHA-256, as strings."""
    stat = Path(weights).stat()
    found = {"weights_size": str(stat.st_size), "weights_mtime_ns": str(stat.st_mtime_ns)}
    if digest:
        found["weights_sha256"] = sha256(Path(weights))
    return found


def cache_is_fresh(path: str | Path, weights: str | Path, precision: str = "fp32") -> bool:
    """Whether the IR at ``path`` was made, at ``precision``, from the current ``weights``."""
    return _fresh_cache(path, weights, precision) is not None


def _fresh_cache(path: str | Path, weights: str | Path, precision: str) -> ov.Model | None:
    """The IR at ``path``, read, if it is intact (``ir_intact``) and was made at ``precision``
    from the current ``weights``; else None (with a warning when it is damaged)."""
    path = Path(path)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        return None
    intact = ir_intact(path)
    if not intact:
        if intact is False and path not in _REPORTED:
            _REPORTED.add(path)  # once per process, however often it is looked at
            print(f"warning: the OpenVINO cache {path} does not match the hashes recorded in "
                  f"{digest_path(path).name} (damaged); converting the weights again",
                  file=sys.stderr)
        return None
    try:
        model = read_ir(path)
    except OpenVinoError:
        return None
    return model if _made_from(read_info(model), weights, precision) else None


def _made_from(info: dict[str, str], weights: str | Path, precision: str) -> bool:
    """Whether an IR's recorded ``info`` says it was made at ``precision`` from ``weights``
    as they are now."""
    quick = weights_fingerprint(weights, digest=False)
    if (info.get("format") != CACHE_FORMAT or info.get("precision") != ir_precision(precision)
            or info.get("weights_size") != quick["weights_size"]):
        return False
    if info.get("weights_mtime_ns") == quick["weights_mtime_ns"]:
        return True
    return info.get("weights_sha256") == weights_fingerprint(weights)["weights_sha256"]


def digest_path(path: str | Path) -> Path:
    """Where the SHA-256 of an IR's ``.xml`` and ``.bin`` are kept: ``<stem>.sha256``."""
    return Path(path).with_suffix(".sha256")


def _digests(xml: Path, weights_bin: Path, names: tuple[str, str]) -> str:
    """``sha256sum``'s lines for an IR's ``xml`` and ``weights_bin``, listed under ``names``."""
    files = (xml, weights_bin)
    return "".join(f"{sha256(f)}  {name}\n" for f, name in zip(files, names, strict=True))


def ir_intact(path: str | Path) -> bool | None:
    """Whether the IR at ``path`` (.xml) and its .bin have the SHA-256 recorded beside them
    (``digest_path``); None when no hashes are recorded (an IR of an older rtpose)."""
    path = Path(path)
    try:
        recorded = digest_path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        bin_path = path.with_suffix(".bin")
        return recorded == _digests(path, bin_path, (path.name, bin_path.name))
    except OSError:
        return False


def convert_keras(model: keras.Model, arch: Architecture) -> ov.Model:
    """The Keras model as an OpenVINO model: input ``image`` (free batch, H, W; 3 channels),
    outputs ``heat`` then ``paf`` (``convert_outputs`` with ``arch.split_outputs``)."""
    return convert_outputs(model, arch.split_outputs, OUTPUTS, arch.name)


def convert_outputs(model: keras.Model, split: Callable[[Any], Sequence[Any]],
                    names: Sequence[str], label: str) -> ov.Model:
    """The Keras model as an OpenVINO model with input ``image`` (free batch, H, W; 3 channels)
    and the outputs ``split(model(image))`` named ``names``. On the TensorFlow backend,
    ``ov.convert_model`` of its TensorFlow function; on Keras's own OpenVINO backend
    (``KERAS_BACKEND=openvino``), Keras's export, without TensorFlow (the same maps, to 0.0).
    ``label`` names the model in the one-line error."""
    ov = import_openvino()
    import keras

    try:
        if keras.backend.backend() == "openvino":
            converted = _export_openvino_backend(model, split)
        else:
            import tensorflow as tf

            spec = tf.TensorSpec((None, None, None, 3), tf.float32, name="image")
            forward = tf.function(lambda image: tuple(split(model(image, training=False))),
                                  input_signature=[spec])
            converted = ov.convert_model(forward.get_concrete_function())
    except Exception as e:  # OpenVINO's frontends raise several unrelated types
        raise OpenVinoError(f"OpenVINO cannot convert {label}: {first_line(e)}") from e
    converted.inputs[0].get_tensor().set_names({"image"})
    for output, name in zip(converted.outputs, names, strict=True):
        output.get_tensor().set_names({name})
    return converted


def _export_openvino_backend(model: keras.Model, split: Callable[[Any], Sequence[Any]]
                             ) -> ov.Model:
    """``model`` with its outputs ``split``, exported by Keras's OpenVINO backend and read
    back."""
    import keras

    image = keras.Input((None, None, 3), name="image")
    outputs = keras.Model(image, list(split(model(image))))
    with tempfile.TemporaryDirectory(prefix="rtpose-keras-openvino-") as folder:
        path = Path(folder) / "model.xml"
        with contextlib.redirect_stdout(io.StringIO()):  # "Saved OpenVINO IR at ..."
            outputs.export(str(path), format="openvino")
        return _core().read_model(str(path))


def _write_ir(model: ov.Model, path: Path, info: dict[str, str]) -> Path:
    """Save ``model`` with ``info`` as ``path`` (.xml), its .bin and their SHA-256
    (``digest_path``), each through ``atomic_path``: renamed .bin first, the hashes last (an
    IR interrupted half-way does not match them)."""
    ov = import_openvino()
    for key, value in info.items():
        model.set_rt_info(value, ["rtpose", key])
    weights_bin = path.with_suffix(".bin")
    remove_stale_temporaries(path.parent)  # those of a conversion killed with -9
    with (atomic_path(digest_path(path)) as digests, atomic_path(path) as xml,
          atomic_path(weights_bin) as tmp_bin):
        saved_bin = xml.with_suffix(".bin")  # ov.save_model writes it beside the .xml
        try:
            ov.save_model(model, str(xml), compress_to_fp16=False)
            os.replace(saved_bin, tmp_bin)
        finally:
            saved_bin.unlink(missing_ok=True)
        digests.write_text(_digests(xml, tmp_bin, (path.name, weights_bin.name)),
                           encoding="utf-8")
    return path


def _temporary_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rtpose-openvino-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def openvino_ir(
    arch: Architecture | str,
    weights: str | Path | None = None,
    model: keras.Model | None = None,
    precision: str = "fp32",
    calibration: Iterable[np.ndarray] | None = None,
) -> Path:
    """The IR of the model at ``precision``: the cache beside ``weights`` if it was made from
    them, else a fresh conversion written there (or, without ``weights`` or a writable folder,
    in a temporary folder removed when the process exits).

    ``arch``: the architecture or its name (a name keeps Keras and TensorFlow unimported while
    the cache is fresh). ``model``: the Keras model, if already loaded; else it is loaded from
    ``weights`` only when a conversion is needed. ``calibration`` (int8 only, and needed
    there): the calibration batches, iterated only when the int8 IR is converted; a
    ``rtpose.runtime.calibration.CalibrationImages`` also records its folder in the IR.
    """
    check_precision(precision)
    import_openvino()
    if weights is None and model is None:
        raise OpenVinoError("the openvino runtime needs the weights file or the Keras model")
    if weights is not None and not Path(weights).is_file():
        raise OpenVinoError(f"weights file not found: {weights}")

    def convert() -> ov.Model:
        from rtpose.models import get_architecture, load_model

        architecture = get_architecture(arch) if isinstance(arch, str) else arch
        keras_model = model
        if keras_model is None:
            keras_model, architecture = load_model(architecture.name, weights)
        return convert_keras(keras_model, architecture)

    return cached_ir(convert, arch if isinstance(arch, str) else arch.name, weights, precision,
                     calibration)


def cached_ir(
    convert: Callable[[], ov.Model],
    name: str,
    weights: str | Path | None,
    precision: str = "fp32",
    calibration: Iterable[np.ndarray] | None = None,
    float_layers: Callable[[ov.Model], list[str]] | None = None,
) -> Path:
    """The IR at ``precision`` of the fp32 model that ``convert()`` makes, recorded as ``name``:
    the cache beside ``weights`` if it was made from them, else a fresh conversion (int8:
    quantised over ``calibration`` by ``quantize_int8``, ``float_layers`` left in float,
    from the fp32 IR when that is cached and fresh) written there, or in a temporary folder
    (``openvino_ir``)."""
    cache = openvino_cache_path(weights, precision) if weights is not None else None
    if cache is not None and cache_is_fresh(cache, weights, precision):
        return cache
    converted = None
    if precision == "int8" and weights is not None:  # int8 starts from a fresh fp32 IR
        converted = _fresh_cache(openvino_cache_path(weights), weights, "fp32")
    if converted is None:
        converted = convert()
    info = {"format": CACHE_FORMAT, "precision": ir_precision(precision), "arch": name}
    if precision == "int8":
        if calibration is None:
            raise OpenVinoError("int8 needs calibration batches (e.g. "
                                "rtpose.runtime.calibration.CalibrationImages)")
        if getattr(calibration, "folder", None) is not None:
            info["calibration"] = str(calibration.folder)
        batches = list(calibration)
        info["calibration_images"] = str(len(batches))
        from rtpose.runtime.openvino.quantize import quantize_int8

        converted = quantize_int8(converted, batches, float_layers)
    if cache is not None:
        info.update(weights_fingerprint(weights))
        if os.access(cache.parent, os.W_OK):
            try:
                return _write_ir(converted, cache, info)
            except OSError as e:  # immutable files, a folder in the cache's place, a full disk
                print(f"warning: cannot replace the OpenVINO cache {cache} "
                      f"({e.strerror or e}); this run uses a temporary copy", file=sys.stderr)
        target = _temporary_folder() / cache.name
    else:
        target = _temporary_folder() / f"{name}.openvino.xml"
    try:
        return _write_ir(converted, target, info)
    except OSError as e:
        raise OpenVinoError(f"cannot write the OpenVINO model to {target.parent}: "
                            f"{e.strerror or e}") from e


def cached_openvino_network(
    weights: str | Path,
    precision: str = "fp32",
    threads: int | None = None,
    hint: str = "latency",
    **options: Any,
) -> OpenVinoNetwork | None:
    """``OpenVinoNetwork`` of the IR cached beside ``weights`` at ``precision`` if it is fresh,
    else None (also without OpenVINO). Reads the IR once, and imports neither Keras nor
    TensorFlow nor h5py: the architecture is the one the IR records."""
    if not Path(weights).is_file():
        return None
    path = openvino_cache_path(weights, precision)
    try:
        import_openvino()  # the process's Core, once made, would not notice it missing
    except OpenVinoError:
        return None
    model = _fresh_cache(path, weights, precision)
    if model is None:
        return None
    return OpenVinoNetwork(path, precision, threads, hint, model=model, **options)


def openvino_network(
    arch: Architecture | str,
    weights: str | Path | None = None,
    model: keras.Model | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    hint: str = "latency",
    calibration: Iterable[np.ndarray] | None = None,
    **options: Any,
) -> OpenVinoNetwork:
    """``OpenVinoNetwork`` of ``openvino_ir(arch, weights, model, precision, calibration)``;
    ``threads``, ``hint`` and ``options`` (``in_flight``, ``static_shapes``) go to it."""
    if weights is not None:
        cached = cached_openvino_network(weights, precision, threads, hint, **options)
        if cached is not None:
            return cached
    if isinstance(arch, str):
        from rtpose.models import get_architecture

        arch = get_architecture(arch)
    path = openvino_ir(arch, weights, model, precision, calibration)
    return OpenVinoNetwork(path, precision, threads, hint, **options)
