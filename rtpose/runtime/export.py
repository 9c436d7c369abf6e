"""Write a testing model as a TensorFlow SavedModel, an ONNX file or a TFLite (LiteRT) file.

Every format keeps the model's input, float32 BGR 0..255 ``(N, H, W, 3)``, and its outputs in
the model's own order (CMU: PAFs then heatmaps; MobileNet-thin: one tensor, heatmaps then
PAFs; ``rtpose.models.Architecture.split_outputs`` reads both). Batch, height and width stay
free unless ``input_size`` fixes them (batch 1); TFLite is fixed-size by default
(``TFLITE_INPUT_SIZE``) because dynamic shapes suit few LiteRT delegates. All three go
through Keras's ``model.export`` (SavedModel natively, ONNX via tf2onnx, TFLite via the
TensorFlow Lite converter), so they need the TensorFlow backend.

Loading them back::

    tf.saved_model.load(path).serve(batch)
    onnxruntime.InferenceSession(path).run(None, {"image": batch})
    tf.lite.Interpreter(model_path=path)  # then allocate_tensors, set_tensor, invoke
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import keras

from rtpose.errors import RtposeError
from rtpose.files import remove_stale_temporaries, temporary_name

FORMATS = ("saved_model", "onnx", "tflite")
KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
TFLITE_INPUT_SIZE = (368, 368)


class ExportError(RtposeError):
    """The model cannot be written in the requested format."""


def input_spec(input_size: tuple[int, int] | None = None) -> keras.InputSpec:
    """The image input: ``(None, None, None, 3)``, or ``(1, H, W, 3)`` for a fixed size."""
    shape = (None, None, None, 3) if input_size is None else (1, *input_size, 3)
    return keras.InputSpec(shape=shape, dtype="float32", name="image")


def export_model(
    model: keras.Model,
    fmt: str,
    output: str | Path,
    input_size: tuple[int, int] | None = None,
) -> Path:
    """Write ``model`` to ``output`` in format ``fmt`` (one of ``FORMATS``); return the path.

    ``input_size`` (H, W) fixes the input to ``(1, H, W, 3)``; ``None`` keeps it free, except
    for TFLite, which then uses ``TFLITE_INPUT_SIZE``. The file (or the SavedModel folder) is
    written under a temporary name beside ``output`` and renamed into place, so a reader never
    sees half of it and a failed export leaves nothing behind; the temporaries of an export
    killed outright (``kill -9``) are removed by the next export into that folder.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"exporting needs the TensorFlow backend, not "
                          f"{keras.backend.backend()} (set KERAS_BACKEND=tensorflow)")
    if fmt == "tflite" and input_size is None:
        input_size = TFLITE_INPUT_SIZE
    if input_size is not None and (len(input_size) != 2 or min(input_size) < 8):
        raise ExportError(f"input size must be a height and a width of at least 8, "
                          f"got {input_size}")
    output = Path(output)
    tmp = temporary_name(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output.parent)
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # writable? (fails fast)
        tmp.unlink()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's and the TFLite converter's deprecations
            model.export(str(tmp), format=KERAS_FORMATS[fmt],
                         input_signature=[input_spec(input_size)], verbose=False)
        if output.is_dir() and not output.is_symlink():
            shutil.rmtree(output)
        elif tmp.is_dir() and (output.exists() or output.is_symlink()):
            output.unlink()
        os.replace(tmp, output)
    except ImportError as e:
        raise ExportError(f"{fmt} export needs a missing package: {e}") from e
    except OSError as e:
        raise ExportError(f"cannot write {output}: {e.strerror or e}") from e
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return output
