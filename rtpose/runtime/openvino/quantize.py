"""int8 for OpenVINO: post-training quantisation of an fp32 IR by NNCF (``nncf.quantize``).

``quantize_int8(model, batches)`` quantises an ``ov.Model`` (input ``image``, outputs ``heat``
and ``paf``) over calibration ``batches`` the caller prepares, float32 ``(1, H, W, 3)`` each
as the pipeline feeds the network (``rtpose.runtime.calibration``: COCO **train2017** at scale
1, never val). Before NNCF, ``equalize_depthwise`` evens out the channels between depthwise and
pointwise convolutions; ``float_convolutions`` are left in float.

Needs NNCF (``pip install -e .[openvino]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rtpose.runtime.openvino.network import OpenVinoError, import_openvino

if TYPE_CHECKING:
    import openvino as ov

INSTALL = "pip install -e .[openvino]"  # NNCF, for int8


def _depthwise_pairs(model: ov.Model) -> list[tuple[Any, Any]]:
    """(depthwise, convolution) node pairs where a GroupConvolution with constant weights
    feeds only a Convolution with constant weights, nothing in between."""
    pairs = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Convolution":
            continue
        source = node.input_value(0).get_node()
        if (source.get_type_name() == "GroupConvolution"
                and len(source.output(0).get_target_inputs()) == 1
                and all(n.input_value(1).get_node().get_type_name() == "Constant"
                        for n in (source, node))):
            pairs.append((source, node))
    return pairs


def _channel_absmax(model: ov.Model, nodes: Sequence[Any],
                    batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per output channel (axis 1, OpenVINO's NCHW), the largest |value| of each node's output
    over ``batches``, computed in f32."""
    ov = import_openvino()
    probe = model.clone()
    by_name = {n.get_friendly_name(): n for n in probe.get_ordered_ops()}
    outputs = probe.add_outputs([by_name[n.get_friendly_name()].output(0) for n in nodes])
    compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    absmax = [np.zeros(n.get_output_partial_shape(0)[1].get_length(), np.float32) for n in nodes]
    for batch in batches:
        request.infer({0: batch})
        for found, output in zip(absmax, outputs, strict=True):
            np.maximum(found, np.abs(request.get_tensor(output).data).max(axis=(0, 2, 3)),
                       out=found)
    return absmax


def equalize_depthwise(model: ov.Model, batches: Sequence[np.ndarray],
                       alpha: float = 0.5) -> int:
    """Rescale the channels between each depthwise convolution and the convolution it feeds,
    in place, so that int8 can hold them; returns the number of pairs rescaled.

    A separable convolution has no bias or activation between its depthwise and pointwise
    halves, so dividing depthwise output channel c by ``s_c`` and multiplying the pointwise
    weights of input c by ``s_c`` leaves the model's function unchanged. With MobileNet-thin's
    batch norms folded, those channels' ranges differ by orders of magnitude, and one int8
    scale per tensor rounds the small ones away (maps off by 0.1 on average). ``s_c =
    a_c^alpha / w_c^(1 - alpha)`` (``a_c``: the channel's largest |activation| over
    ``batches``, ``w_c``: the largest |pointwise weight| of input c) evens activations and
    weights out, as SmoothQuant does (Xiao et al. 2023), but folded into the weights rather
    than added as multiplications.
    """
    ov = import_openvino()
    from openvino import opset13

    pairs = _depthwise_pairs(model)
    if not pairs:
        return 0
    activations = _channel_absmax(model, [depthwise for depthwise, _ in pairs], batches)
    for (depthwise, pointwise), act in zip(pairs, activations, strict=True):
        dw_node, pw_node = (n.input_value(1).get_node() for n in (depthwise, pointwise))
        dw, pw = dw_node.get_data().astype(np.float32), pw_node.get_data().astype(np.float32)
        weight = np.abs(pw).max(axis=tuple(i for i in range(pw.ndim) if i != 1))
        scale = np.maximum(act, 1e-6) ** alpha / np.maximum(weight, 1e-6) ** (1 - alpha)
        scale = np.where((act > 0) & (weight > 0), scale, 1.0).astype(np.float32)
        dw = (dw.reshape(len(scale), -1) / scale[:, None]).reshape(dw.shape)
        pw = pw * scale.reshape((1, -1) + (1,) * (pw.ndim - 2))
        for node, values in ((depthwise, dw), (pointwise, pw)):
            node.input(1).replace_source_output(opset13.constant(values, ov.Type.f32).output(0))
    model.validate_nodes_and_infer_types()
    return len(pairs)


def _producer(node: Any) -> Any:
    """The node that computes ``node``'s first non-constant input."""
    for value in node.input_values():
        if value.get_node().get_type_name() != "Constant":
            return value.get_node()
    raise ValueError(f"{node.get_friendly_name()} has only constant inputs")


def float_convolutions(model: ov.Model) -> list[str]:
    """Names of the convolutions that int8 leaves in float: in each stage branch (a chain of
    convolutions from a concatenation or a fork to a map output, i.e. a biased convolution
    without ReLU), all but the first full convolution.

    Measured on MobileNet-thin: int8 weights and activations in the backbone and in each
    branch's first pointwise convolution (921 -> 64 channels, most of a stage's multiply-adds)
    cost maps about as much as bf16 does; quantising the rest of the stages as well gives maps
    off by 0.025 on average and COCO AP 0.19 instead of 0.26.
    """
    names = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Add" or _producer(node).get_type_name() != "Convolution":
            continue
        if any(target.get_node().get_type_name() == "Relu"
               for target in node.output(0).get_target_inputs()):
            continue
        chain, current = [], _producer(node)
        while current.get_type_name() not in ("Concat", "Parameter"):
            if current.get_type_name() in ("Convolution", "GroupConvolution"):
                chain.append(current)
            source = _producer(current)
            if len(source.output(0).get_target_inputs()) > 1:
                break
            current = source
        first = [n for n in chain if n.get_type_name() == "Convolution"][-1:]
        names += [n.get_friendly_name() for n in chain if n not in first]
    return names


def quantize_int8(model: ov.Model, batches: Sequence[np.ndarray],
                  float_layers: Callable[[ov.Model], list[str]] | None = None) -> ov.Model:
    """Post-training int8 quantisation of an fp32 OpenVINO model by NNCF over ``batches``,
    after ``equalize_depthwise``, leaving the layers ``float_layers(model)`` names (default
    ``float_convolutions``) in float."""
    try:
        import nncf
    except ImportError as e:
        raise OpenVinoError(f"int8 needs NNCF: {INSTALL}") from e
    batches = list(batches)
    equalize_depthwise(model, batches)
    logging.getLogger("nncf").setLevel(logging.WARNING)  # one INFO line per float layer
    ignored = nncf.IgnoredScope(names=(float_layers or float_convolutions)(model))
    return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                         fast_bias_correction=True, ignored_scope=ignored)
