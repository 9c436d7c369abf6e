"""ControlNet "openpose" conditioning images (and the web UIs' pose JSON) of an image or a folder.

    rtpose controlnet IMAGE --processor openpose_full -o pose.png --json pose.json
    rtpose controlnet FOLDER --processor openpose -o poses/ --json poses/

The body network is the repository's (``--model``/``--arch``, default: CMU, else MobileNet-thin);
the hand and face networks are ``model/keras/hand.weights.h5`` and ``face.weights.h5``
(``bash model/get_cmu_model.sh --hands --face``). Pictures and JSON as controlnet_aux's
``OpenposeDetector`` makes them (``rtpose.controlnet``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from rtpose.controlnet import PROCESSORS, OpenposeDetector, encode_poses_as_dict
from rtpose.decode import DECODERS
from rtpose.errors import RtposeError
from rtpose.tools.common import add_model_args, network_from_args, one_line_errors
from rtpose.wholebody import part_networks_from_args

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RtposeError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.is_file():
        raise RtposeError(f"{path}: no such image or folder")
    return [path]


def _target(output: Path | None, source: Path, many: bool, suffix: str) -> Path | None:
    if output is None:
        return None
    return output / f"{source.stem}{suffix}" if many else output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="an image, or a folder of images")
    parser.add_argument("--processor", choices=list(PROCESSORS), default="openpose",
                        help="controlnet_aux's processor (default openpose)")
    parser.add_argument("-o", "--output", type=Path, default=Path("pose.png"),
                        help="the picture (a folder for a folder of images; default pose.png)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also the web UIs' pose JSON (a folder for a folder of images)")
    parser.add_argument("--detect-resolution", type=int, default=512)
    parser.add_argument("--image-resolution", type=int, default=512)
    parser.add_argument("--decoder", choices=DECODERS[::-1], default="faithful",
                        help="faithful (default): controlnet_aux's keypoints; fast: rtpose's "
                        "decoder on the low-resolution maps (a pixel or two off, faster)")
    add_model_args(parser)
    args = parser.parse_args(argv)
    flags = PROCESSORS[args.processor]
    args.hands, args.face = flags["include_hand"], flags["include_face"]

    with one_line_errors():
        from rtpose.stream.images import read_image, write_image, write_json

        sources = _inputs(args.image)
        many = args.image.is_dir()
        for folder in (args.output, args.json):
            if many and folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        detector = OpenposeDetector(network_from_args(args), *part_networks_from_args(args),
                                    args.decoder)
        for source in tqdm(sources, desc="controlnet", disable=len(sources) == 1):
            rgb = read_image(source)[:, :, ::-1]
            canvas, poses, size = detector.run(rgb, args.detect_resolution,
                                               args.image_resolution, **flags)
            write_image(_target(args.output, source, many, ".png"), canvas[:, :, ::-1])
            json_path = _target(args.json, source, many, ".json")
            if json_path is not None:
                write_json(json_path, encode_poses_as_dict(poses, *size))
    print(f"{len(sources)} image(s), {args.processor}, written to {args.output}")


if __name__ == "__main__":
    main()
