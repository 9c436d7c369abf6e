"""Readers of foreign weight formats (Caffe, PyTorch ``.pth``, frozen TensorFlow graphs) into
Keras weights, and the atomic write that every converter's output goes through."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(output: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a new name beside ``output`` that ends as ``output`` does
    (``.weights.h5``, ``.h5``: Keras picks its format from the ending), then rename it to
    ``output``. An interrupted write leaves neither a partial file under the real name nor a
    destroyed previous one; a failed one removes its temporary file."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    ending = ".weights.h5" if output.name.endswith(".weights.h5") else output.suffix
    handle, name = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=f".partial{ending}", dir=output.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return output
