"""Faults of export (issue 15, cases 3b and 16): an unwritable place, a killed export."""

from __future__ import annotations

import signal
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import exit_message, python, temporaries


def tiny_model() -> keras.Model:
    image = keras.Input((None, None, 3), name="image")
    return keras.Model(image, keras.layers.Conv2D(2, 1, name="conv")(image))


def test_export_to_an_unwritable_place(random_weights: Path):
    """Case 16: one line, before the (slow) conversion starts."""
    from export import main

    with pytest.raises(SystemExit) as excinfo:
        main(["--weights", str(random_weights), "--format", "onnx", "--output", "/proc/e.onnx"])
    assert exit_message(excinfo).startswith("error: cannot write /proc/e.onnx: ")


EXPORT_KILLED = """
import os, signal, sys

import cv2
import keras

from rtpose.runtime.export import export_model


def killed(self, path, *args, **kwargs):  # the converter has written part of the file
    with open(path, "wb") as file:
        file.write(b"half an ONNX file")
    os.kill(os.getpid(), signal.SIGKILL)


keras.Model.export = killed
image = keras.Input((None, None, 3), name="image")
export_model(keras.Model(image, keras.layers.Conv2D(2, 1)(image)), "onnx", sys.argv[1])
"""


def test_export_killed_leaves_only_what_the_next_export_removes(repo_root: Path,
                                                                 tmp_path: Path):
    """Case 3b: kill -9 mid-export leaves a temporary named by its process, no output; the next
    export into the folder removes it."""
    import onnxruntime

    from rtpose.runtime.export import export_model

    out = tmp_path / "mz.onnx"
    done = python(repo_root, "-c", EXPORT_KILLED, str(out))
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert not out.exists() and len(temporaries(tmp_path)) == 1
    export_model(tiny_model(), "onnx", out)
    assert [p.name for p in tmp_path.iterdir()] == ["mz.onnx"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (maps,) = session.run(None, {"image": np.zeros((1, 16, 24, 3), np.float32)})
    assert maps.shape == (1, 16, 24, 2)
