"""The CMU COCO body model of Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part
Affinity Fields" (CVPR 2017), layer for layer as ``model/_trained_COCO/pose_deploy.prototxt``.

VGG19 ``conv1_1`` .. ``conv4_2`` and ``conv4_3_CPM``, ``conv4_4_CPM`` give stride-8 features F.
Stage 1 runs two branches on F: L1 predicts the 38 PAF maps, L2 the 19 heatmaps. Each later stage
``t`` runs both branches again on ``concat_stage{t}`` = [L1 output, L2 output, F] (the prototxt's
order). Every layer carries its Caffe name, so converted weights map by name.

Input: float32 BGR 0..255, NHWC, any size; the model divides by 256 and subtracts 0.5 itself.
Outputs at stride 8, ``ceil(H / 8) x ceil(W / 8)`` (max-pooling rounds up as Caffe's does):
PAFs ``(N, H/8, W/8, 38)`` (limb i: channel 2i = x, 2i+1 = y) and heatmaps ``(N, H/8, W/8, 19)``
(18 parts, then background).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import keras
import numpy as np
from keras import layers

from rtpose.errors import WeightsError, first_line
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS

OUTPUT_ORDER = ("paf", "heatmap")  # the testing model's outputs: stage-6 L1, then stage-6 L2
BRANCH_CHANNELS = {1: NUM_PAFS, 2: NUM_HEATMAPS}  # branch L1: PAFs, branch L2: heatmaps
STRIDE = 8

# VGG19 up to conv4_2: (name, filters) for a 3x3 conv + ReLU, or a pool name; the hand and face
# networks (rtpose.models.cmu_hand_face) start the same way.
VGG19_TO_CONV4_2 = (
    ("conv1_1", 64), ("conv1_2", 64), "pool1_stage1",
    ("conv2_1", 128), ("conv2_2", 128), "pool2_stage1",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256), "pool3_stage1",
    ("conv4_1", 512), ("conv4_2", 512),
)  # fmt: skip
# The body's backbone: VGG19 up to conv4_2, then the two CPM layers.
_BACKBONE = (*VGG19_TO_CONV4_2, ("conv4_3_CPM", 256), ("conv4_4_CPM", 128))

# Caffe lr_mult of (kernel, bias): backbone and stage 1, then stages 2 and later.
FIRST_STAGE_LR_MULT = (1.0, 2.0)
LATER_STAGE_LR_MULT = (4.0, 8.0)
_LATER_STAGE_LAYER = re.compile(r"Mconv\d+_stage\d+_L\d+")


def stage_layers(stage: int, branch: int) -> list[tuple[str, int, int, bool]]:
    """The convolutions of one branch of one stage: ``(name, filters, kernel size, relu)``."""
    out = BRANCH_CHANNELS[branch]
    if stage == 1:
        specs = [(f"conv5_{i}_CPM_L{branch}", 128, 3) for i in (1, 2, 3)]
        specs += [(f"conv5_4_CPM_L{branch}", 512, 1), (f"conv5_5_CPM_L{branch}", out, 1)]
        return relu_but_last(specs)
    return later_stage_layers(f"Mconv{{}}_stage{stage}_L{branch}", out)


def later_stage_layers(name: str, out: int) -> list[tuple[str, int, int, bool]]:
    """A stage after the first: ``Mconv1..5`` (7x7, 128), ``Mconv6`` (1x1, 128), ``Mconv7``
    (1x1, ``out`` maps, no ReLU), named by ``name.format(i)``; as ``stage_layers``."""
    specs = [(name.format(i), 128, 7) for i in range(1, 6)]
    return relu_but_last(specs + [(name.format(6), 128, 1), (name.format(7), out, 1)])


def relu_but_last(specs: list[tuple[str, int, int]]) -> list[tuple[str, int, int, bool]]:
    """``(name, filters, kernel)`` rows with a ReLU flag: on every convolution but the last."""
    return [(*spec, i < len(specs) - 1) for i, spec in enumerate(specs)]


def conv(x, name: str, filters: int, kernel: int, relu: bool, regularizer=None):
    """A "same" convolution with Caffe's initialisation (Gaussian 0.01, zero bias)."""
    return layers.Conv2D(
        filters, kernel, padding="same", activation="relu" if relu else None, name=name,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="zeros", kernel_regularizer=regularizer,
    )(x)  # fmt: skip


def backbone(x, table=_BACKBONE, regularizer=None):
    """``table``'s layers on ``x``: (name, filters) a 3x3 convolution + ReLU, a name a 2x2 max
    pool of stride 2."""
    for item in table:
        if isinstance(item, str):
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=item)(x)
        else:
            x = conv(x, item[0], item[1], 3, True, regularizer)
    return x


def convolutions(x, specs: list[tuple[str, int, int, bool]], regularizer=None):
    """The convolutions ``(name, filters, kernel, relu)`` of ``specs`` in a chain on ``x``."""
    for name, filters, kernel, relu in specs:
        x = conv(x, name, filters, kernel, relu, regularizer)
    return x


def _label_shape(input_shape: tuple, channels: int) -> tuple:
    return tuple(None if s is None else -(-s // STRIDE) for s in input_shape[:2]) + (channels,)


def build_cmu_model(
    training: bool = False,
    stages: int = 6,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    weight_decay: float | None = None,
) -> keras.Model:
    """Build the CMU body model (Cao et al., CVPR 2017) with its Caffe layer names.

    Testing variant (``training=False``): input ``image`` (N, H, W, 3) float32 BGR 0..255;
    outputs ``[paf, heatmap]`` of the last stage, (N, H/8, W/8, 38) then (N, H/8, W/8, 19), see
    ``OUTPUT_ORDER``.

    Training variant: inputs ``image``, ``paf_mask`` (N, H/8, W/8, 38) and ``heat_mask``
    (N, H/8, W/8, 19); ``2 * stages`` outputs ``weight_stage{s}_L1`` (PAF x paf_mask) and
    ``weight_stage{s}_L2`` (heatmap x heat_mask) in the order stage 1 L1, stage 1 L2, stage 2 L1...

    ``weight_decay`` adds an L2 penalty on every kernel (Caffe's decay_mult is 0 for biases).

    >>> model = build_cmu_model()
    >>> paf, heatmap = model(np.zeros((1, 368, 368, 3), "float32"))  # (1, 46, 46, 38), (..., 19)
    """
    if stages < 1:
        raise ValueError(f"stages must be at least 1, got {stages}")
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    image = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 256, offset=-0.5, name="input_normalization")(image)
    features = backbone(x, _BACKBONE, regularizer)

    outputs = []  # (PAF, heatmap) of every stage
    x = features
    for stage in range(1, stages + 1):
        if stage > 1:
            x = layers.Concatenate(name=f"concat_stage{stage}")([*outputs[-1], features])
        outputs.append(tuple(convolutions(x, stage_layers(stage, branch), regularizer)
                             for branch in (1, 2)))

    if not training:
        return keras.Model(image, list(outputs[-1]), name="cmu_pose")
    paf_mask = keras.Input(_label_shape(input_shape, NUM_PAFS), name="paf_mask")
    heat_mask = keras.Input(_label_shape(input_shape, NUM_HEATMAPS), name="heat_mask")
    weighted = [
        layers.Multiply(name=f"weight_stage{stage}_L{branch}")([out, mask])
        for stage, stage_outputs in enumerate(outputs, start=1)
        for branch, out, mask in zip((1, 2), stage_outputs, (paf_mask, heat_mask), strict=True)
    ]
    return keras.Model([image, paf_mask, heat_mask], weighted, name="cmu_pose_training")


def lr_multipliers(model: keras.Model) -> dict[str, float]:
    """Caffe's ``lr_mult`` of every trainable variable, keyed by ``variable.path``.

    Backbone and stage 1: kernel 1, bias 2. Stages 2 and later (``Mconv*_stage{t}_L*``): kernel 4,
    bias 8, as in ``pose_deploy.prototxt``.
    """
    multipliers = {}
    for variable in model.trainable_variables:
        layer_path, _, kind = variable.path.rpartition("/")
        if kind not in ("kernel", "bias"):
            raise ValueError(f"unexpected trainable variable {variable.path}")
        later = _LATER_STAGE_LAYER.fullmatch(layer_path.rpartition("/")[2])
        kernel_mult, bias_mult = LATER_STAGE_LR_MULT if later else FIRST_STAGE_LR_MULT
        multipliers[variable.path] = kernel_mult if kind == "kernel" else bias_mult
    return multipliers


def conv_layers(model: keras.Model) -> list[layers.Conv2D]:
    """The model's convolutions, in build order."""
    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]


def _keras2_aliases(name: str) -> list[str]:
    """Names a layer may have in Keras 2 files of the original port: its own, and for stage 1
    the later port's ``Mconv{i}_stage1_L{b}`` for ``conv5_{i}_CPM_L{b}``."""
    match = re.fullmatch(r"conv5_(\d)_CPM_L(\d)", name)
    return [name, f"Mconv{match[1]}_stage1_L{match[2]}"] if match else [name]


def _read_keras2_layer(group: h5py.Group) -> list[np.ndarray]:
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", ())]
    if not names:
        group.visit(lambda n: names.append(n) if isinstance(group[n], h5py.Dataset) else None)
    return [np.asarray(group[n]) for n in names]


def _load_keras2_h5(model: keras.Model, path: Path) -> None:
    try:
        file = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not an HDF5 weights file ({e})") from e
    with file:
        root = file["model_weights"] if "model_weights" in file else file
        for layer in conv_layers(model):
            group = next((root[n] for n in _keras2_aliases(layer.name) if n in root), None)
            if group is None:
                raise WeightsError(f"{path}: no weights for layer {layer.name}")
            arrays = sorted(_read_keras2_layer(group), key=lambda a: -a.ndim)  # kernel, bias
            expected = [tuple(v.shape) for v in layer.weights]
            if [a.shape for a in arrays] != expected:
                raise WeightsError(
                    f"{path}: layer {layer.name} has weights of shapes "
                    f"{[a.shape for a in arrays]}, the model needs {expected}"
                )
            layer.set_weights(arrays)


def load_cmu_weights(model: keras.Model, path: str | Path) -> None:
    """Load CMU weights into a model of ``build_cmu_model`` (testing or training variant).

    Accepts a Keras 3 ``*.weights.h5`` saved from either variant with the same stage count, or
    a Keras 2 / legacy ``*.h5`` (the original port's ``model.h5``, a full model or weights only,
    or what ``caffe_to_keras.py`` writes to ``.h5``), read with h5py and matched by layer name;
    such a file may hold more stages than the model. Unfit files raise ``WeightsError``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.name.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except (ValueError, OSError) as e:
            raise WeightsError(f"{path}: cannot load into {model.name}: {first_line(e)}") from e
    elif path.suffix == ".h5":
        _load_keras2_h5(model, path)
    else:
        raise WeightsError(f"{path}: expected a .weights.h5 (Keras 3) or .h5 (Keras 2) file")
