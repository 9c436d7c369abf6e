"""Presets: ``original`` is the CMU algorithm, ``accurate`` its refinements; the flags override
the preset, which overrides the config file. On coco_mini val (slow: the real MobileNet-thin
on 79 images at four scales, with their mirrors, once for all four settings), the original's AP
is unchanged and ``accurate`` reaches its targets."""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest

from rtpose.config import (
    CMU_GROUPING,
    CMU_INFERENCE,
    PRESETS,
    GroupingParams,
    InferenceParams,
    apply_preset,
)
from rtpose.errors import RtposeError
from rtpose.runtime.network import Network
from rtpose.tools.common import add_inference_args, params_from_args


def _params(*argv: str) -> tuple[InferenceParams, GroupingParams]:
    parser = argparse.ArgumentParser()
    add_inference_args(parser)
    return params_from_args(parser.parse_args(list(argv)))


def test_original_is_the_cmu_algorithm_and_accurate_its_refinements():
    assert apply_preset("original") == (CMU_INFERENCE, CMU_GROUPING)
    inference, grouping = apply_preset("accurate")
    assert inference == InferenceParams(flip=True)
    accurate = PRESETS["accurate"]
    assert grouping == GroupingParams(thre1=accurate.thre1,
                                      min_mean_score=accurate.min_mean_score)
    with pytest.raises(RtposeError, match="unknown preset 'best'; choose one of original, "
                                          "accurate"):
        apply_preset("best")


def test_flags_override_the_preset_which_overrides_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config here
    assert _params() == (CMU_INFERENCE, CMU_GROUPING)
    assert _params("--flip", "--refine") == (InferenceParams(flip=True),
                                             GroupingParams(refine=True))
    config = tmp_path / "config"
    config.write_text("[param]\nthre1 = 0.3\nscale_search = 1.0\n")
    inference, grouping = _params("--config", str(config), "--preset", "accurate")
    assert inference.flip and inference.scales == (1.0,)
    assert grouping.thre1 == PRESETS["accurate"].thre1
    inference, grouping = _params("--config", str(config), "--preset", "accurate",
                                  "--no-flip", "--thre1", "0.05", "--refine")
    assert not inference.flip and grouping.thre1 == 0.05 and grouping.refine
    assert _params("--config", str(config))[1].thre1 == 0.3


class _SharedOutputs:
    """``network`` remembering its outputs per input image: settings that feed it the same
    image (the same scale; the flipped pass's first image is the plain pass's) run it once.
    It forgets everything when it would hold more than ``size`` images."""

    def __init__(self, network: Network, size: int = 16) -> None:
        self.network, self.size, self.outputs = network, size, {}
        self.runtime, self.architecture = network.runtime, network.architecture
        self.stride = network.stride

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = [(image.shape, hashlib.sha1(image.tobytes()).digest()) for image in batch]
        missing = [i for i, key in enumerate(keys) if key not in self.outputs]
        if missing:
            if len(self.outputs) + len(missing) > self.size:
                self.outputs.clear()
            heat, paf = self.network(batch[missing])
            for i, h, p in zip(missing, heat, paf, strict=True):
                self.outputs[keys[i]] = h, p
        heat, paf = zip(*(self.outputs[key] for key in keys), strict=True)
        return np.stack(heat), np.stack(paf)


FOUR_SCALES = (0.5, 1.0, 1.5, 2.0)
# (preset, scales, AP bounds) on coco_mini val. The original's AP exactly (0.263 and 0.343);
# ``accurate``'s measured AP less 0.002 (0.3229 and 0.3993; issue 16's targets: 0.290 and
# 0.355). The flipped four scales come first: their network outputs serve all four settings.
AP_BOUNDS = [
    ("accurate", FOUR_SCALES, 0.397, 1.0),
    ("accurate", (1.0,), 0.321, 1.0),
    ("original", (1.0,), 0.2625, 0.2635),
    ("original", FOUR_SCALES, 0.3425, 0.3435),
]


@pytest.mark.slow
def test_ap_on_coco_mini_val(shared_data, mobilenet_weights):
    from rtpose.coco.evaluate import load_coco, run_pipelines, score_keypoints
    from rtpose.models import load_model
    from rtpose.pipeline import PosePipeline
    from rtpose.runtime import make_network

    root = shared_data / "coco_mini"
    coco_gt = load_coco(root / "annotations" / "person_keypoints_val2017.json")
    model, arch = load_model(None, mobilenet_weights)
    # The scripts' default runtime on a CPU (OpenVINO fp32), the fastest here too.
    network = _SharedOutputs(make_network(model, arch, "openvino", mobilenet_weights))
    pipelines = [PosePipeline(network, *apply_preset(preset, InferenceParams(scales=scales)))
                 for preset, scales, _, _ in AP_BOUNDS]
    runs = run_pipelines(pipelines, coco_gt, root / "val2017", progress=False)
    aps = [score_keypoints(coco_gt, run.results, run.image_ids)["AP"] for run in runs]
    outside = [f"{preset} at {len(scales)} scale(s): AP {ap:.4f} not in [{low}, {high}]"
               for (preset, scales, low, high), ap in zip(AP_BOUNDS, aps, strict=True)
               if not low <= ap <= high]
    assert not outside, outside
