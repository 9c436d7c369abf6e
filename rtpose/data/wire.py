"""The dataset server's message format, byte for byte as the original C++ ``rmpe_dataset_server``.

One training sample is one ZeroMQ multipart message of four frames:

1. a JSON header, one ``numpy``-style description per array, e.g. for the default crop exactly
   ``[{"descr":"uint8","shape":"(3, 368,368)","fortran_order":false},{"descr":"<f8","shape":
   "(46,46)","fortran_order":false},{"descr":"<f8","shape":"(57,46,46)","fortran_order":false}]``
   (no spaces; the shape is a string, with one space after the image's first comma, as the C++
   wrote it; readers parse it with ``ast.literal_eval``);
2. the image, uint8 (3, H, W), BGR, C order;
3. the mask, float64 little-endian (h, w), 0..1 (1 = the loss counts);
4. the label, float64 little-endian (57, h, w), already multiplied by the mask: 38 PAF channels
   then 18 part heatmaps and the background.

:func:`encode_message` writes these frames and :func:`decode_message` reads them (also headers
with other spacing, ``fortran_order`` true, or other numeric dtypes, as the original client did).
Anything else (an object or string dtype, a frame of another length than its header's shape) is
a one-line ``WireError``.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Sequence

import numpy as np

from rtpose.errors import RtposeError

NUM_FRAMES = 4
NUM_LABEL_CHANNELS = 57
NUMERIC_KINDS = "biuf"  # numpy dtype kinds: bool, signed and unsigned integers, floats


class WireError(RtposeError):
    """A message that is not a dataset-server sample."""


def _header(descr: str, shape: str) -> str:
    return f'{{"descr":"{descr}","shape":"{shape}","fortran_order":false}}'


def encode_header(image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> bytes:
    """The header frame for an image (3, H, W) and a label grid (h, w), spaced like the C++."""
    (height, width), (h, w) = image_hw, grid_hw
    parts = [
        _header("uint8", f"(3, {height},{width})"),
        _header("<f8", f"({h},{w})"),
        _header("<f8", f"({NUM_LABEL_CHANNELS},{h},{w})"),
    ]
    return ("[" + ",".join(parts) + "]").encode("ascii")


def encode_message(image: np.ndarray, mask: np.ndarray, label: np.ndarray) -> list[bytes]:
    """The four frames of one sample: image uint8 (3, H, W), mask (h, w), label (57, h, w)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise WireError(f"image must be uint8 (3, H, W), got {image.dtype} {image.shape}")
    if mask.ndim != 2 or label.shape != (NUM_LABEL_CHANNELS, *mask.shape):
        raise WireError(f"need mask (h, w), label (57, h, w); got {mask.shape}, {label.shape}")
    return [
        encode_header(image.shape[1:], mask.shape),
        np.ascontiguousarray(image).tobytes(),
        np.ascontiguousarray(mask, "<f8").tobytes(),
        np.ascontiguousarray(label, "<f8").tobytes(),
    ]


def _array(header: object, frame: bytes | memoryview) -> np.ndarray:
    """The array a header describes, over its frame's bytes; only numeric dtypes (bool,
    integers, floats) are read, and the frame's length must be the shape's exactly."""
    try:
        dtype = np.dtype(header["descr"])
        shape = tuple(int(v) for v in ast.literal_eval(header["shape"]))
        fortran = bool(header.get("fortran_order", False))
    except (KeyError, TypeError, ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise WireError(f"bad array header {header!r:.200}: {err}") from err
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {dtype} is not a plain numeric type (bool, integer or "
                        "float)")
    if any(n < 0 for n in shape):
        raise WireError(f"array shape {shape} has a negative size")
    expected = math.prod(shape) * dtype.itemsize
    if len(frame) != expected:
        raise WireError(f"frame holds {len(frame)} bytes, header says {dtype} {shape}: "
                        f"{expected} bytes")
    array = np.frombuffer(frame, dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def decode_message(
    frames: Sequence[bytes | memoryview],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (3, H, W) uint8, mask (h, w) and label (57, h, w) of one message (read-only views)."""
    if len(frames) != NUM_FRAMES:
        raise WireError(f"a sample has {NUM_FRAMES} frames, got {len(frames)}")
    try:
        headers = json.loads(bytes(frames[0]))
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError(f"header frame is not JSON: {err}") from err
    if not isinstance(headers, list) or len(headers) != NUM_FRAMES - 1:
        raise WireError(f"header must list 3 arrays, got {headers!r:.200}")
    image, mask, label = (_array(h, f) for h, f in zip(headers, frames[1:], strict=True))
    if image.ndim != 3 or mask.ndim != 2 or label.shape != (NUM_LABEL_CHANNELS, *mask.shape):
        raise WireError(
            f"unexpected shapes image {image.shape}, mask {mask.shape}, label {label.shape}"
        )
    return image, mask, label
