"""Find the people in an image, draw their skeletons, and write them as OpenPose JSON.

    python demo_image.py --image sample_images/ski.jpg [--output result.png] [--json people.json]

--hands and --face add OpenPose's hand and face keypoints (rtpose.wholebody).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtpose.draw import draw_people
from rtpose.stream.images import (
    check_distinct,
    check_writable,
    read_image,
    write_image,
    write_json,
)
from rtpose.tools.common import (
    add_inference_args,
    add_max_image_pixels_arg,
    add_model_args,
    one_line_errors,
    pipeline_from_args,
)
from rtpose.wholebody import add_hands_face_args, draw_hands_face


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True, help="input image")
    parser.add_argument("--output", type=Path, default=Path("result.png"),
                        help="image with the skeletons drawn (default: result.png)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the people as OpenPose JSON to this file")
    add_model_args(parser)
    add_inference_args(parser)
    add_hands_face_args(parser)
    add_max_image_pixels_arg(parser)
    args = parser.parse_args(argv)

    with one_line_errors():
        check_distinct({"--image": args.image}, {"--output": args.output, "--json": args.json})
        check_writable(args.output, args.json)
        image = read_image(args.image, max_pixels=args.max_image_pixels)
        pipeline = pipeline_from_args(args)
        result = pipeline.run(image)
        people, drawn = result.people, draw_people(image, result.people, result.peaks)
        if args.hands or args.face:
            drawn = draw_hands_face(drawn, people)
        write_image(args.output, drawn)
        if args.json is not None:
            write_json(args.json, people.to_openpose_json())

    t = result.timings
    first_stage = "upsampling" if pipeline.decoder == "faithful" else "operators"
    print(f"{len(result.people)} people in {args.image}, written to {args.output}")
    print(f"network {t.network_s:.3f} s ({len(pipeline.inference.scales)} scales, "
          f"{pipeline.network.runtime} {args.precision}), "
          f"post-processing {t.postprocess_s:.3f} s, {pipeline.decoder} decoder "
          f"({first_stage} {t.maps_s:.3f} s, peaks {t.peaks_s:.3f} s, "
          f"association {t.association_s:.3f} s)")


if __name__ == "__main__":
    main()
