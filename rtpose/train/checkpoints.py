"""The checkpoint a run resumes from: ``last.keras`` (the training model with its optimiser
state), checked whole before anything else starts, and a one-line way on when it is damaged."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import keras

from rtpose.errors import WeightsError
from rtpose.models import Architecture
from rtpose.train import callbacks as cb


def damaged_checkpoint(path: Path, reason: str) -> WeightsError:
    """The error for a ``last.keras`` that cannot be read, saying how to go on without it."""
    epochs = sorted(path.parent.glob(cb.EPOCH_WEIGHTS.replace("{epoch:04d}", "[0-9]" * 4)))
    way_on = (f"move it away and run again with --init-weights {epochs[-1]} to go on from those "
              "weights (with a new optimiser state and log), or " if epochs else "move it away or ")
    return WeightsError(f"{path} is damaged ({reason}), so training cannot resume from it; "
                        f"{way_on}run again with --no-resume to start over")


def check_checkpoint(path: Path) -> None:
    """Fail early, before connecting to servers, on an empty, truncated or corrupted
    ``last.keras`` (every member of the archive is read and its CRC checked)."""
    if path.stat().st_size == 0:
        raise damaged_checkpoint(path, "0 bytes")
    if not zipfile.is_zipfile(path):
        raise damaged_checkpoint(path, "not a complete .keras archive")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise damaged_checkpoint(path, str(e).splitlines()[0] or type(e).__name__) from e
    if bad is not None:
        raise damaged_checkpoint(path, f"its member {bad} fails its check")


def load_checkpoint(path: Path, architecture: Architecture, stages: int) -> keras.Model:
    """The training model of ``last.keras``, compiled, with its optimiser state."""
    check_checkpoint(path)
    try:
        model = keras.saving.load_model(path)
    except (ValueError, OSError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise damaged_checkpoint(path, str(e).splitlines()[0] or type(e).__name__) from e
    fits = any(tuple(w.shape) == architecture.first_kernel_shape for w in model.weights)
    if not fits or len(model.outputs) != 2 * stages:
        raise WeightsError(f"{path} holds {model.name} with {len(model.outputs)} outputs, not the "
                           f"{architecture.name} training model with {2 * stages}; use "
                           "--no-resume or another --weights-dir")
    return model
