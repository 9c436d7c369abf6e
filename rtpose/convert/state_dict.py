"""A PyTorch state dict of a CMU network (``rtpose.convert.pth`` reads the file) onto its Keras
model, by name: the ``.pth`` -> Keras conversion of the CMU body, hand and face models.

The CMU models' state dicts are keyed ``<Caffe layer>.weight`` / ``<Caffe layer>.bias``
(``conv1_1.weight``, ``Mconv7_stage6_L2.bias``); kernels are (out, in, kh, kw) as Caffe's,
(kh, kw, in, out) in Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtpose.convert.caffe import ConvWeights, set_conv_weights
from rtpose.convert.pth import pth_shapes, read_pth
from rtpose.errors import ConversionError
from rtpose.files import atomic_path, remove_stale_temporaries

if TYPE_CHECKING:
    import keras


class PthArchitectureError(ConversionError):
    """A state dict's names or shapes are not those of the network it is converted to."""



def _listing(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def conv_shapes(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """The state-dict names and (out, in, kh, kw) / (out,) shapes of ``model``'s
    convolutions: ``<layer>.weight`` and ``<layer>.bias``."""
    from rtpose.models.cmu import conv_layers

    expected = {}
    for layer in conv_layers(model):
        kh, kw, cin, cout = layer.kernel.shape
        expected[f"{layer.name}.weight"] = (cout, cin, kh, kw)
        expected[f"{layer.name}.bias"] = (cout,)
    return expected


def check_shapes(shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                 source: str, model_name: str) -> None:
    """One ``PthArchitectureError`` naming the missing, extra and misshapen tensors of a state
    dict (``shapes``: {name: shape}) against a model's (``expected``)."""
    missing = [name for name in expected if name not in shapes]
    extra = [name for name in shapes if name not in expected]
    if missing or extra:
        found = [
            f"{len(missing)} of its {len(expected)} tensors missing ({_listing(missing)})"
            if missing
            else "",
            f"{len(extra)} extra ({_listing(extra)})" if extra else "",
        ]
        raise PthArchitectureError(
            f"{source}: wrong architecture, not the layers of {model_name} "
            f"({len(expected) // 2} convolutions): "
            f"{', '.join(f for f in found if f)}"
        )
    misfits = [
        f"{name} is {tuple(shapes[name])}, the model's {tuple(shape)}"
        for name, shape in expected.items()
        if tuple(shapes[name]) != tuple(shape)
    ]
    if misfits:
        raise PthArchitectureError(
            f"{source}: wrong architecture, {len(misfits)} tensors do not "
            f"fit {model_name}: {_listing(misfits, 2)}"
        )


def conv_weights_from_state(
    state: Mapping[str, np.ndarray], model: keras.Model, source: str
) -> ConvWeights:
    """The (out, in, kh, kw) weights and the bias of every convolution of ``model`` from a state
    dict keyed ``<layer>.weight`` / ``<layer>.bias``, as float32. Every name and shape is checked;
    missing, extra and misshapen tensors raise one ``PthArchitectureError`` naming them."""
    expected = conv_shapes(model)
    check_shapes({name: array.shape for name, array in state.items()}, expected, source,
                 model.name)
    not_float = [name for name in expected if not np.issubdtype(state[name].dtype, np.floating)]
    if not_float:
        raise PthArchitectureError(
            f"{source}: tensors that are not floating point: {_listing(not_float)}"
        )
    return {
        name.removesuffix(".weight"): (
            state[name].astype(np.float32, copy=False),
            state[f"{name.removesuffix('.weight')}.bias"].astype(np.float32, copy=False),
        )
        for name in expected
        if name.endswith(".weight")
    }


NETWORKS = ("body", "hand", "face")


def network_of_state(state: Mapping[str, np.ndarray]) -> str | None:
    """Which CMU network a state dict is for, by its last layer's shape: the body's
    ``Mconv7_stage6_L2`` (19 maps), or ``Mconv7_stage6``'s 22 maps (hand) or 71 (face)."""
    if "Mconv7_stage6_L2.bias" in state:
        return "body"
    maps = {22: "hand", 71: "face"}
    bias = state.get("Mconv7_stage6.bias")
    return maps.get(bias.shape[0]) if bias is not None and bias.ndim == 1 else None


def convert_pth(
    pth: str | Path, output: str | Path, stages: int = 6, progress: bool = True,
    network: str = "body",
) -> Path:
    """Convert a ``.pth`` state dict of a CMU network into Keras 3 weights ``output``
    (``*.weights.h5``), written under a temporary name then renamed. Returns ``output``.

    ``network``: ``body`` (``body_pose_model.pth`` into ``build_cmu_model(stages=stages)``),
    ``hand`` (``hand_pose_model.pth``) or ``face`` (``facenet.pth``) into
    ``rtpose.models.cmu_hand_face.build_part_model``; every name and shape is checked."""
    if network not in NETWORKS:
        raise ConversionError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    output = Path(output)
    if not output.name.endswith(".weights.h5"):
        raise ConversionError(f"output must end with .weights.h5: {output}")
    shapes = pth_shapes(pth)  # a file that is not a state dict fails here, before Keras starts
    if network == "body":
        from rtpose.models.cmu import build_cmu_model

        model = build_cmu_model(stages=stages)
    else:
        from rtpose.models.cmu_hand_face import build_part_model

        model = build_part_model(network)
    # Names and shapes against the model's before the file's data is read: a file that claims
    # other (or huge) tensors is refused before anything is allocated for them.
    check_shapes(shapes, conv_shapes(model), str(pth), model.name)
    state = read_pth(pth, progress)
    set_conv_weights(model, conv_weights_from_state(state, model, str(pth)))
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output.parent)
    with atomic_path(output) as temporary:
        model.save_weights(temporary)
    return output
