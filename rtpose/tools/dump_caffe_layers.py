"""Dump the convolution weights of the CMU Caffe model to .npy files, without Caffe.

Writes W_<layer>.npy (Caffe layout: out x in x kh x kw, float32) and b_<layer>.npy for every
convolution of the prototxt. Then run caffe_to_keras.py.
"""

import argparse
from pathlib import Path

from rtpose.convert.caffe import dump_caffe_layers
from rtpose.tools.common import one_line_errors

COCO_DIR = Path("model/_trained_COCO")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prototxt", type=Path, default=COCO_DIR / "pose_deploy.prototxt",
                        help="network definition (default: %(default)s)")
    parser.add_argument("--caffemodel", type=Path, default=COCO_DIR / "pose_iter_440000.caffemodel",
                        help="trained weights, from model/get_caffe_model.sh "
                             "(default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("model/caffe/layers"),
                        help="where the .npy files go (default: %(default)s)")
    args = parser.parse_args(argv)
    with one_line_errors():
        written = dump_caffe_layers(args.prototxt, args.caffemodel, args.output_dir)
    print(f"wrote {len(written) // 2} layers to {args.output_dir}")


if __name__ == "__main__":
    main()
