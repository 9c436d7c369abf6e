"""Evaluate a pose model on COCO keypoints with pycocotools, or score an existing results file.

    python evaluate_coco.py --annotations ANN.json --images DIR [--scales 1.0] [--limit N]
    python evaluate_coco.py --annotations ANN.json --results results.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtpose.coco.evaluate import (
    check_images,
    check_people,
    evaluated_ids,
    load_coco,
    run_pipeline,
    score_keypoints,
)
from rtpose.people import SCORE_RULES
from rtpose.stream.images import check_distinct, check_writable, write_json
from rtpose.tools.common import (
    add_inference_args,
    add_max_image_pixels_arg,
    add_model_args,
    one_line_errors,
    pipeline_from_args,
    positive_int,
)
from rtpose.wholebody import add_hands_face_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, required=True,
                        help="COCO person_keypoints_*.json")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of the annotation file's images")
    source.add_argument("--results", type=Path, help="score this COCO results JSON instead")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="only the first N images (N >= 1)")
    parser.add_argument("--output", type=Path, default=Path("coco_results.json"),
                        help="where to write the results JSON (default: coco_results.json)")
    parser.add_argument("--score", choices=sorted(SCORE_RULES), default="total",
                        help="person score rule (default: total, the original's)")
    parser.add_argument("--offset", type=float, default=0.0,
                        help="added to keypoint x and y (default 0: the integer peak pixel)")
    add_model_args(parser)
    add_inference_args(parser)
    add_hands_face_args(parser)
    add_max_image_pixels_arg(parser)
    args = parser.parse_args(argv)

    with one_line_errors():
        coco_gt = load_coco(args.annotations, keypoints=True)
        if args.results is not None:
            print(score_keypoints(coco_gt, args.results).table)
            return
        check_distinct({"--annotations": args.annotations}, {"--output": args.output})
        check_writable(args.output)
        ids = evaluated_ids(coco_gt, args.limit)
        check_people(coco_gt, ids, args.annotations)
        check_images(coco_gt, args.images, ids)
        pipeline = pipeline_from_args(args)
        run = run_pipeline(pipeline, coco_gt, args.images, args.limit, args.offset, args.score,
                           max_image_pixels=args.max_image_pixels)
        write_json(args.output, run.results)
        stats = score_keypoints(coco_gt, run.results, run.image_ids)
    network_s, post_s = run.mean_timing("network"), run.mean_timing("postprocess")
    print(f"{len(run.image_ids)} images, {len(run.results)} people, results in {args.output}; "
          f"mean per image: network {network_s:.3f} s, post-processing {post_s:.3f} s")
    print(stats.table)
    network = pipeline.network  # the precision's AP beside its speed
    print(f"{network.runtime} {getattr(network, 'precision', 'fp32')}: AP {stats['AP']:.3f} at "
          f"{network_s + post_s:.3f} s per image")


if __name__ == "__main__":
    main()
