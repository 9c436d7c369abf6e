"""Image and JSON files: reading with one-line errors, writing atomically.

Every writer writes to a temporary name in the destination's folder and renames it into place
(``rtpose.files``), so an interrupted run never leaves a half-written file under the final
name, nor destroys the previous one.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtpose.errors import RtposeError
from rtpose.files import atomic_path, remove_stale_temporaries

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
# The largest image decoded by default: 100 MP is 300 MB as BGR uint8 (a 30000 x 30000 PNG of
# 0.9 MB would take 2.7 GB, and several times that on its way through the pipeline).
MAX_IMAGE_PIXELS = 100_000_000


def check_image_size(source: str | Path | bytes, max_pixels: int | None) -> None:
    """``RtposeError`` when the image file (a path, or its bytes) states in its header more
    than ``max_pixels`` pixels (None: no limit); read from the header only, before anything is
    decoded. A header Pillow cannot read is left to the decoder to refuse."""
    if max_pixels is None:
        return
    from PIL import Image

    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # this one's ours
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            width, height = image.size
    except (OSError, ValueError):
        return
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    if width * height > max_pixels:
        name = "the image" if isinstance(source, bytes) else f"image {source}"
        raise RtposeError(f"cannot read {name}: {width} x {height} is {width * height:,} "
                          f"pixels, more than the limit of {max_pixels:,} "
                          "(--max-image-pixels)")
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"


def read_image(path: str | Path, warn: Callable[[str], None] | None = None) -> np.ndarray:
    """A BGR uint8 image (H, W, 3). A JPEG whose end marker is missing (a truncated file, which
    OpenCV decodes with its lower part grey) is read, with one warning line through ``warn``
    (default: standard error)."""
    path = Path(path)
    if not path.is_file():
        reason = "no such file" if not path.exists() else "not a file"
        raise RtposeError(f"cannot read image {path}: {reason}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise RtposeError(f"cannot read image {path}: not a readable image")
    if _truncated_jpeg(path):
        message = (f"warning: {path} is damaged (the JPEG is truncated): its lower part is "
                   "missing and people there will not be found")
        (warn or (lambda text: print(text, file=sys.stderr)))(message)
    return image


def _truncated_jpeg(path: Path) -> bool:
    """A JPEG file (start marker) without its end marker in its last bytes."""
    with open(path, "rb") as file:
        start = file.read(2)
        file.seek(max(path.stat().st_size - 64, 0))
        return truncated_jpeg(start, file.read())


def truncated_jpeg(start: bytes, tail: bytes) -> bool:
    """Whether data beginning with ``start`` and ending with ``tail`` (its last 64 bytes) is a
    JPEG (start marker) without its end marker."""
    return start[:2] == JPEG_START and JPEG_END not in tail[-64:]


def _truncated_png(data: bytes) -> bool:
    """A PNG (signature) without its closing IEND chunk."""
    return data[:8] == PNG_START and PNG_END not in data[-64:]


def decode_image(data: bytes) -> np.ndarray:
    """A BGR uint8 image (H, W, 3) from an image file's bytes (any format OpenCV reads).
    ``RtposeError``: ``not an image``, or ``truncated``: a JPEG without its end marker (which
    OpenCV would decode with its lower part grey) or a PNG without its IEND chunk."""
    if not data:
        raise RtposeError("not an image: the data is empty")
    if truncated_jpeg(data[:2], data[-64:]):
        raise RtposeError("truncated image: the JPEG ends before its end marker")
    if _truncated_png(data):
        raise RtposeError("truncated image: the PNG ends before its IEND chunk")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RtposeError("not an image, or a truncated one: OpenCV cannot decode it")
    return image


def _write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """``writer(temporary)`` then the rename into ``path`` (``rtpose.files.atomic_path``), with
    one-line errors; first the temporaries that killed runs left beside ``path`` are removed."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RtposeError(f"cannot write {path}: no folder {path.parent}")
    try:
        remove_stale_temporaries(path.parent)
        with atomic_path(path) as temporary:
            writer(temporary)
    except OSError as e:
        raise RtposeError(f"cannot write {path}: {e.strerror or e}") from e


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an image atomically; the format follows the file extension."""

    def write(temporary: Path) -> None:
        try:
            written = cv2.imwrite(str(temporary), image)
        except cv2.error:
            written = False
        if not written:
            raise RtposeError(f"cannot write image {path} (check the folder and the extension)")

    _write(path, write)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    _write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1) + "\n"))


def check_writable(*paths: str | Path | None) -> None:
    """Raise ``RtposeError`` unless every given path's folder exists and is writable: checked
    before long work, so that it does not fail at the end."""
    for path in paths:
        if path is None:
            continue
        folder = Path(path).parent
        if not folder.is_dir():
            raise RtposeError(f"cannot write {path}: no folder {folder}")
        if not os.access(folder, os.W_OK):
            raise RtposeError(f"cannot write {path}: folder {folder} is not writable")
