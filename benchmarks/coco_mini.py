"""COCO keypoint AP and time per image on coco_mini val2017 (79 images), per runtime and
precision, side by side.

    python benchmarks/coco_mini.py [--scales-sets 1.0 0.5,1,1.5,2] [--limit N] [--model ...]
    python benchmarks/coco_mini.py --scales-sets 1.0 --runtime keras openvino \\
        --precision fp32 bf16 int8

Prints a markdown table: per runtime, precision and set of scales, AP, AP50, the mean seconds
per image spent in the network and in post-processing (up-sampling, peaks, association), and
on how many images the people found differ from the first row's of the same scales (runtimes
at the same precision should find the same people). Precisions other than fp32 run on the
openvino runtime only (``rtpose.openvino_network``; int8 calibrated on coco_mini train2017).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from machine import machine_header

from rtpose.cli import add_inference_args, params_from_args
from rtpose.coco.evaluate import load_coco, run_pipeline, score_keypoints
from rtpose.config import parse_scales
from rtpose.models import ARCHITECTURES, find_default_weights, load_model
from rtpose.openvino_network import PRECISIONS, openvino_network
from rtpose.pipeline import PosePipeline
from rtpose.runtime import make_network

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
RUNTIMES = ("keras", "onnx", "openvino")


def networks(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """(runtime, precision, network) for every runtime and the precisions it has."""
    weights = args.model if args.model is not None else find_default_weights(args.arch)[1]
    model, arch = load_model(args.arch, weights)
    found = []
    for runtime in args.runtime:
        for precision in args.precision:
            if runtime == "openvino":
                found.append((runtime, precision,
                              openvino_network(arch, weights, model, precision)))
            elif precision == "fp32":
                found.append((runtime, precision, make_network(model, arch, runtime, weights)))
    return found


def differing_images(run, reference) -> int:
    """Images on which two runs found different people (keypoints to 1 pixel, or count)."""
    def people(r):
        by_image = {image_id: [] for image_id in r.image_ids}
        for person in r.results:
            by_image[person["image_id"]].append(np.round(person["keypoints"]))
        return by_image

    ours, theirs = people(run), people(reference)
    return sum(len(ours[i]) != len(theirs[i])
               or any((a != b).any() for a, b in zip(ours[i], theirs[i], strict=True))
               for i in ours)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, default=COCO_MINI, help="coco_mini folder")
    parser.add_argument("--scales-sets", nargs="+", default=["1.0", "0.5,1,1.5,2"],
                        help="sets of scales to evaluate, each comma-separated (replace --scales)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--model", type=Path, default=None,
                        help="weights file (default: the default weights in model/keras)")
    parser.add_argument("--arch", choices=list(ARCHITECTURES), default=None,
                        help="architecture (default: read off the weights file)")
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=["keras"])
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32"],
                        help="bf16 and int8 run on the openvino runtime only")
    add_inference_args(parser)
    args = parser.parse_args(argv)

    print(machine_header())
    coco_gt = load_coco(args.coco / "annotations" / "person_keypoints_val2017.json")
    inference, grouping = params_from_args(args)
    rows = []
    for runtime, precision, network in networks(args):
        pipeline = PosePipeline(network, inference, grouping, args.decoder)
        for text in args.scales_sets:
            pipeline.inference = dataclasses.replace(inference, scales=parse_scales(text))
            run = run_pipeline(pipeline, coco_gt, args.coco / "val2017", args.limit)
            rows.append((runtime, precision, text, run,
                         score_keypoints(coco_gt, run.results, run.image_ids)))
    first = {}
    print(f"\n{machine_header()}\n")
    print("| runtime | precision | scales | images | AP | AP50 | network s/img "
          "| post-processing s/img | total s/img | images with other people |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for runtime, precision, text, run, stats in rows:
        reference = first.setdefault(text, run)
        print(f"| {runtime} | {precision} | {text} | {len(run.image_ids)} | {stats['AP']:.3f} "
              f"| {stats['AP50']:.3f} | {run.mean_timing('network'):.3f} "
              f"| {run.mean_timing('postprocess'):.3f} | {run.mean_timing('total'):.3f} "
              f"| {differing_images(run, reference)} |")


if __name__ == "__main__":
    main()
