"""rtpose: realtime multi-person 2D pose estimation with Part Affinity Fields in Keras 3.

    >>> import rtpose
    >>> model = rtpose.load("mobilenet_thin", scales=(1.0,))   # or rtpose.load(): the best present
    >>> people = model(SKI)                                     # a path, BGR array or PIL image
    >>> people.keypoints.shape, people.scores.shape             # x, y, score of 18 CMU parts
    ((5, 18, 3), (5,))
    >>> cv2.imwrite("result.png", model.draw(SKI, people))      # doctest: +SKIP

The names below are imported on first use: ``import rtpose`` imports neither TensorFlow nor
Keras (nor OpenCV); a model imports what its runtime needs when it is loaded.
"""

import importlib
import os
from typing import TYPE_CHECKING, Any

# TensorFlow's start-up chatter (CUDA probing, CPU features) is noise for rtpose's users; a value
# set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def default_keras_backend() -> str | None:
    """Keras's backend when ``KERAS_BACKEND`` is unset and TensorFlow, Keras's default, is not
    installed (``pip install rtpose``, the inference install): Keras's own OpenVINO backend,
    which builds the networks and converts them for OpenVINO without TensorFlow. None
    otherwise (``KERAS_BACKEND`` set by the user wins)."""
    from rtpose.native import installed

    if "KERAS_BACKEND" in os.environ or installed("tensorflow"):
        return None
    return "openvino"


if (_backend := default_keras_backend()) is not None:
    os.environ["KERAS_BACKEND"] = _backend

__version__ = "0.1.0"

_EXPORTS = {
    "load": "rtpose.api",
    "Model": "rtpose.api",
    "People": "rtpose.people",
    "read_image": "rtpose.stream.images",
    "draw_people": "rtpose.draw",
}
__all__ = ["Model", "People", "__version__", "draw_people", "load", "read_image"]

if TYPE_CHECKING:
    from rtpose.api import Model, load
    from rtpose.draw import draw_people
    from rtpose.people import People
    from rtpose.stream.images import read_image


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtpose' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
