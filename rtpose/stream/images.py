"""Image and JSON files: reading with one-line errors, writing atomically, outputs checked up
front.

Images are read through bytes (``np.fromfile``-like, then ``cv2.imdecode``) and written from bytes
(``cv2.imencode``): OpenCV's own file functions crash on names that are not UTF-8 (a byte such as
0xe9 in a Latin-1 name). Before decoding, the image's size is read from its header (Pillow's lazy
open) and an image of more than ``max_pixels`` pixels is refused (``MAX_IMAGE_PIXELS``):
a small PNG can hold a huge image. Every writer writes to a temporary name in the destination's
folder and renames it into place (``rtpose.files``), so an interrupted run never leaves a
half-written file under the final name, nor destroys the previous one.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtpose.errors import RtposeError
from rtpose.files import atomic_path, remove_stale_temporaries

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
FULL_DISK = "no space left on the device (the disk or quota is full)"
# The largest image decoded by default: 100 MP is 300 MB as BGR uint8 (a 30000 x 30000 PNG of
# 0.9 MB would take 2.7 GB, and several times that on its way through the pipeline).
MAX_IMAGE_PIXELS = 100_000_000
_PIL_LIMIT = threading.Lock()  # Pillow's own bomb limit is lifted while a header is read
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                (stat.S_ISSOCK, "a socket"))


def check_input_file(path: str | Path, kind: str = "file") -> Path:
    """``path`` if it is a regular file that this process may read, else ``RtposeError``
    saying why not: no such file, a folder, a FIFO or device (which would block or never end),
    or permission denied."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RtposeError(f"cannot read {kind} {path}: no such file") from None
    except OSError as e:
        raise RtposeError(f"cannot read {kind} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
        raise RtposeError(f"cannot read {kind} {path}: {what}, not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise RtposeError(f"cannot read {kind} {path}: {e.strerror or e}") from None
    return path


def image_size(source: str | Path | bytes) -> tuple[int, int] | None:
    """(width, height) from an image file's header (a path, or its bytes), read without
    decoding it (Pillow's lazy open: PNG, JPEG, BMP, TIFF, WebP, GIF, PPM...); None for a file
    Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    with _PIL_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # ours applies instead
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                return image.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def check_image_size(source: str | Path | bytes, max_pixels: int | None,
                     name: str | Path | None = None) -> None:
    """``RtposeError`` when the image file (a path, or its bytes: ``name`` then names it)
    states in its header more than ``max_pixels`` pixels (None: no limit); read from the header
    only, before anything is decoded. A header Pillow cannot read is left to the decoder (and
    OpenCV's own bound) to refuse."""
    if max_pixels is None:
        return
    size = image_size(source)
    if size is not None and size[0] * size[1] > max_pixels:
        width, height = size
        label = f"image {name}" if name is not None else (
            "the image" if isinstance(source, bytes) else f"image {source}")
        raise RtposeError(f"cannot read {label}: {width} x {height} is {width * height:,} "
                          f"pixels, more than the limit of {max_pixels:,} "
                          "(--max-image-pixels)")


def read_image(path: str | Path, warn: Callable[[str], None] | None = None,
               max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """A BGR uint8 image (H, W, 3). An image larger than ``max_pixels`` pixels (as its header
    says; None: no bound) is refused before it is decoded. A JPEG whose end marker is missing (a
    truncated file, which OpenCV decodes with its lower part grey) is read, with one warning
    line through ``warn`` (default: standard error).

    >>> rtpose.read_image(SKI).shape
    (674, 712, 3)
    """
    path = check_input_file(path, "image")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RtposeError(f"cannot read image {path}: {e.strerror or e}") from None
    check_image_size(data, max_pixels, path)
    truncated = truncated_jpeg(data[:2], data[-64:])
    # A truncated JPEG ends with an end marker added, as libjpeg's file reader (cv2.imread)
    # does by itself: its lower part decodes grey.
    image = _decode(data + JPEG_END if truncated else data)
    if image is None:
        raise RtposeError(f"cannot read image {path}: not a readable image")
    if truncated:
        message = (f"warning: {path} is damaged (the JPEG is truncated): its lower part is "
                   "missing and people there will not be found")
        (warn or (lambda text: print(text, file=sys.stderr)))(message)
    return image


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
    image = _decode(data)
    if image is None:
        raise RtposeError("not an image, or a truncated one: OpenCV cannot decode it")
    return image


def _decode(data: bytes) -> np.ndarray | None:
    """``cv2.imdecode`` of a file's bytes into BGR, or None."""
    if not data:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. over OpenCV's own bound, for a format Pillow does not know
        return None


def _write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """``writer(temporary)`` then the rename into ``path`` (``rtpose.files.atomic_path``), with
    one-line errors that say why (a full disk, a read-only folder); first the temporaries that
    killed runs left beside ``path`` are removed."""
    path = Path(path)
    check_writable(path)
    try:
        remove_stale_temporaries(path.parent)
        with atomic_path(path) as temporary:
            writer(temporary)
    except OSError as e:
        raise RtposeError(f"cannot write {path}: {write_failure(e)}") from e


def write_failure(error: OSError) -> str:
    """Why a write failed, in words: a full disk and a read-only file system said plainly."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return FULL_DISK
    if error.errno == errno.EROFS:
        return "the file system is read-only"
    return error.strerror or str(error)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an image atomically; the format follows the file extension."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".", image)
    except cv2.error:
        ok = False
    if not ok:
        raise RtposeError(f"cannot write image {path}: OpenCV cannot encode an image as "
                          f"{path.suffix or 'a file without extension'!r} (use e.g. .png or .jpg)")
    _write(path, lambda temporary: temporary.write_bytes(encoded.tobytes()))


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    _write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1) + "\n"))


def check_writable(*paths: str | Path | None) -> None:
    """Raise ``RtposeError`` unless every given path can be written as a file: its folder exists
    and is writable, and the path is not a folder, a FIFO or a device. Checked before long
    work, so that it does not fail at the end."""
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        folder = path.parent
        if not folder.is_dir():
            raise RtposeError(f"cannot write {path}: no folder {folder}")
        mode = path.stat().st_mode if path.exists() else stat.S_IFREG
        if not stat.S_ISREG(mode):  # replacing a folder, a FIFO or a device is never meant
            what = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
            raise RtposeError(f"cannot write {path}: it is {what}, not a regular file")
        if not os.access(folder, os.W_OK):
            raise RtposeError(f"cannot write {path}: folder {folder} is not writable")


def check_folder_writable(folder: str | Path, flag: str) -> None:
    """Raise ``RtposeError`` unless ``folder`` is, or can be made as, a writable folder: not a
    file, and a file can be created in it or in its nearest existing ancestor (tried: a
    permission check alone passes for root, also where nothing can be created, as in /proc)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise RtposeError(f"{flag} {folder} is not a folder{where}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".rtpose-probe-", dir=existing)
    except OSError as e:
        raise RtposeError(f"{flag} {folder}: cannot write in {existing} "
                          f"({write_failure(e)})") from None
    os.close(handle)
    os.unlink(probe)


def check_distinct(inputs: Mapping[str, str | Path | None],
                   outputs: Mapping[str, str | Path | None]) -> None:
    """Raise ``RtposeError`` when an output is the same file as an input or as another output
    (the same path, a path through a symbolic link, or a hard link: ``os.path.samefile`` for
    files that exist, resolved paths otherwise), before anything is written. Keys name the
    paths for the message (flags such as ``--image``); None values are skipped."""
    named = [(flag, Path(path), flag in outputs) for given in (inputs, outputs)
             for flag, path in given.items() if path is not None]
    for i, (flag, path, is_output) in enumerate(named):
        for other_flag, other, other_is_output in named[i + 1:]:
            if (is_output or other_is_output) and _same_file(path, other):
                raise RtposeError(f"{other_flag} {other} is the same file as {flag} {path}: "
                                  "give another output")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()
