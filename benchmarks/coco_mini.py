"""COCO keypoint AP and time per image of a model on coco_mini val2017 (79 images).

    python -m benchmarks.coco_mini [--scales-sets 1.0 0.5,1,1.5,2] [--limit N] [--model ...]
    python -m benchmarks.coco_mini --variants original refine flip flip+refine accurate

Prints a markdown table: AP, AP50, and the mean seconds per image spent in the network and in
post-processing (up-sampling, peaks, association), for each variant (``VARIANTS``: the
original algorithm, sub-pixel keypoints, flip averaging, both, the ``accurate`` preset) and
set of scales. Every image goes through all the settings in turn, so that a change of machine
load slows them alike. ``--split train2017`` runs on coco_mini's train images instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_header
from rtpose.coco.evaluate import load_coco, run_pipelines, score_keypoints
from rtpose.config import apply_preset, parse_scales
from rtpose.pipeline import PosePipeline
from rtpose.tools.common import add_inference_args, add_model_args, pipeline_from_args

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
# Variant: (preset, InferenceParams changes, GroupingParams changes), over the flags' parameters.
VARIANTS = {
    "original": ("original", {}, {}),
    "refine": ("original", {}, {"refine": True}),
    "flip": ("original", {"flip": True}, {}),
    "flip+refine": ("original", {"flip": True}, {"refine": True}),
    "accurate": ("accurate", {}, {}),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, default=COCO_MINI, help="coco_mini folder")
    parser.add_argument("--scales-sets", nargs="+", default=["1.0", "0.5,1,1.5,2"],
                        help="sets of scales to evaluate, each comma-separated (replace --scales)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["original"],
                        help="settings to compare (default: original)")
    parser.add_argument("--split", default="val2017", choices=["val2017", "train2017"],
                        help="coco_mini split (default val2017)")
    add_model_args(parser)
    add_inference_args(parser)
    args = parser.parse_args(argv)
    if args.calibration is None:
        args.calibration = args.coco / "train2017"  # int8: calibrated on train, never on val

    coco_gt = load_coco(args.coco / "annotations" / f"person_keypoints_{args.split}.json")
    pipeline = pipeline_from_args(args)
    given = pipeline.inference, pipeline.grouping
    for batch in (1, 2):  # compile before timing (a batch of two: the flipped pass)
        pipeline.network(np.zeros((batch, 368, 368, 3), np.float32))
    settings = list(itertools.product(args.variants, args.scales_sets))
    pipelines = []
    for variant, text in settings:
        preset, inference_changes, grouping_changes = VARIANTS[variant]
        inference, grouping = apply_preset(preset, *given)
        pipelines.append(PosePipeline(
            pipeline.network,
            dataclasses.replace(inference, scales=parse_scales(text), **inference_changes),
            dataclasses.replace(grouping, **grouping_changes),
            pipeline.decoder, pipeline.max_pixels))
    runs = run_pipelines(pipelines, coco_gt, args.coco / args.split, args.limit)
    rows = []
    for (variant, text), run in zip(settings, runs, strict=True):
        stats = score_keypoints(coco_gt, run.results, run.image_ids)
        rows.append(f"| {variant} | {text} | {len(run.image_ids)} | {stats['AP']:.3f} "
                    f"| {stats['AP50']:.3f} "
                    f"| {run.mean_timing('network'):.3f} | {run.mean_timing('postprocess'):.3f} "
                    f"| {run.mean_timing('total'):.3f} |")
    print(f"\n{machine_header()}\n{pipeline.network.architecture}, runtime {args.runtime} "
          f"{args.precision}, coco_mini {args.split}, {len(rows)} settings\n")
    print("| variant | scales | images | AP | AP50 | network s/img | post-processing s/img "
          "| total s/img |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
