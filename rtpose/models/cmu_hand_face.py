"""The CMU hand and face networks of OpenPose (Simon et al., "Hand Keypoint Detection in Single
Images using Multiview Bootstrapping", CVPR 2017; OpenPose's face model), layer for layer as
``pose_deploy.prototxt`` of ``models/hand`` and ``models/face``, with their Caffe layer names.

Both are the same convolutional pose machine; only the number of maps differs (``PART_NETWORKS``):

- VGG19 ``conv1_1`` .. ``conv4_4``, ``conv5_1``, ``conv5_2`` and ``conv5_3_CPM`` (128 channels)
  give stride-8 features F;
- stage 1: ``conv6_1_CPM`` (1x1, 512, ReLU), ``conv6_2_CPM`` (1x1, the maps);
- stages 2..6: ``concat_stage{t}`` = [previous stage's maps, F], then ``Mconv1..5_stage{t}``
  (7x7, 128, ReLU), ``Mconv6_stage{t}`` (1x1, 128, ReLU), ``Mconv7_stage{t}`` (1x1, the maps).

Input: float32 BGR 0..255, NHWC (H and W multiples of 8); the model divides by 256 and subtracts
0.5 itself. Output: the last stage's heatmaps ``(N, H/8, W/8, C)``: hand C = 22 (21 keypoints in
OpenPose's hand order, then background), face C = 71 (70 keypoints, then background).

The weights are the ``.pth`` state dicts that ControlNet's annotators use (``hand_pose_model.pth``,
``facenet.pth``), keyed ``<Caffe layer>.weight`` / ``.bias``; ``rtpose.convert.state_dict`` converts
them (``bash model/get_cmu_model.sh --hands --face``).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from rtpose.errors import WeightsError, first_line
from rtpose.models import PART_NETWORKS, get_part_network  # noqa: F401 (re-exported)
from rtpose.models.cmu import (
    VGG19_TO_CONV4_2,
    backbone,
    convolutions,
    later_stage_layers,
    relu_but_last,
)

STRIDE = 8
STAGES = 6
# The body's VGG19 up to conv4_2, then VGG19's conv4_3 .. conv5_2 and one CPM layer.
_BACKBONE = (*VGG19_TO_CONV4_2, ("conv4_3", 512), ("conv4_4", 512), ("conv5_1", 512),
             ("conv5_2", 512), ("conv5_3_CPM", 128))


def stage_layers(stage: int, channels: int) -> list[tuple[str, int, int, bool]]:
    """One stage's convolutions after the features: ``(name, filters, kernel size, relu)``."""
    if stage == 1:
        return relu_but_last([("conv6_1_CPM", 512, 1), ("conv6_2_CPM", channels, 1)])
    return later_stage_layers(f"Mconv{{}}_stage{stage}", channels)


def build_part_model(network: str) -> keras.Model:
    """The hand (``"hand"``) or face (``"face"``) network: input ``image`` (N, H, W, 3) float32
    BGR 0..255, output the last stage's heatmaps (N, H/8, W/8, C).

    >>> heat = build_part_model("hand")(np.zeros((2, 368, 368, 3), "float32"))  # (2, 46, 46, 22)
    """
    spec = get_part_network(network)
    image = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1 / 256, offset=-0.5, name="input_normalization")(image)
    features = x = backbone(x, _BACKBONE)
    for stage in range(1, STAGES + 1):
        if stage > 1:
            x = layers.Concatenate(name=f"concat_stage{stage}")([x, features])
        x = convolutions(x, stage_layers(stage, spec.channels))
    return keras.Model(image, x, name=f"cmu_{network}")


def load_part_model(network: str, weights: str | Path) -> keras.Model:
    """The network with its Keras 3 weights (``*.weights.h5``, as ``rtpose.convert.state_dict``
    writes them) loaded; ``WeightsError`` if the file is missing or does not fit."""
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    model = build_part_model(network)
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError, RuntimeError) as e:
        raise WeightsError(f"{path}: not the {network} network's weights ({first_line(e)})") from e
    return model
