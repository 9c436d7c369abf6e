"""COCO keypoint AP and time per image of a model on coco_mini val2017 (79 images).

    python -m benchmarks.coco_mini [--scales-sets 1.0 0.5,1,1.5,2] [--limit N] [--model ...]

Prints a markdown table: AP, AP50, and the mean seconds per image spent in the network and in
post-processing (up-sampling, peaks, association), for each set of scales.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
from pathlib import Path

from rtpose.coco.evaluate import load_coco, run_pipeline, score_keypoints
from rtpose.config import parse_scales
from rtpose.tools.common import add_inference_args, add_model_args, pipeline_from_args

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, default=COCO_MINI, help="coco_mini folder")
    parser.add_argument("--scales-sets", nargs="+", default=["1.0", "0.5,1,1.5,2"],
                        help="sets of scales to evaluate, each comma-separated (replace --scales)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    add_model_args(parser)
    add_inference_args(parser)
    args = parser.parse_args(argv)

    coco_gt = load_coco(args.coco / "annotations" / "person_keypoints_val2017.json")
    pipeline = pipeline_from_args(args)
    rows = []
    for text in args.scales_sets:
        pipeline.inference = dataclasses.replace(pipeline.inference, scales=parse_scales(text))
        run = run_pipeline(pipeline, coco_gt, args.coco / "val2017", args.limit)
        stats = score_keypoints(coco_gt, run.results, run.image_ids)
        rows.append(f"| {text} | {len(run.image_ids)} | {stats['AP']:.3f} | {stats['AP50']:.3f} "
                    f"| {run.mean_timing('network'):.3f} | {run.mean_timing('postprocess'):.3f} "
                    f"| {run.mean_timing('total'):.3f} |")
    print(f"\n{platform.processor() or platform.machine()}, {len(rows)} settings\n")
    print("| scales | images | AP | AP50 | network s/img | post-processing s/img | total s/img |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
