"""Native libraries kept quiet: TensorFlow's start-up lines off standard error.

TensorFlow prints absl, oneDNN and "failed call to cuInit" lines (on a machine without a GPU)
from C++ when it starts; they read as errors but are not. ``quiet_native_stderr`` drops what
native code writes to file descriptor 2 within a block; Python's exceptions still propagate.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (found, not imported; a broken or blocked
    installation counts as missing)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


@contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, what native code writes to file descriptor 2 is dropped (``enabled``
    False: kept, for ``--verbose``)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow(verbose: bool = False) -> None:
    """Where TensorFlow is installed, import it and start its runtime (where it probes for
    CUDA) inside ``quiet_native_stderr`` unless ``verbose``: before anything else imports it;
    TensorFlow prints nothing more afterwards. Without TensorFlow (the inference install, on
    Keras's OpenVINO backend) there is nothing to start."""
    if not installed("tensorflow"):
        return
    with quiet_native_stderr(not verbose):
        import tensorflow as tf

        tf.constant(0)
