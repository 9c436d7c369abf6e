"""Export a pose network as a TensorFlow SavedModel, an ONNX file or a TFLite file.

    python export.py --arch mobilenet_thin --weights model/keras/mobilenet_thin.weights.h5 \\
        --format onnx --output model/export/mobilenet_thin.onnx
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rtpose.files import sigterm_as_interrupt
from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime.export import FORMATS, TFLITE_INPUT_SIZE, export_model
from rtpose.tools.common import one_line_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=ARCHITECTURES,
                        help="network architecture (default: read off the weights file)")
    parser.add_argument("--weights", type=Path,
                        help="Keras weights file (default: the first of model/keras/)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt",
                        help="saved_model (a folder), onnx or tflite")
    parser.add_argument("--output", type=Path, required=True, help="file or folder to write")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="fix the input to 1 x H x W x 3 (default: any size; tflite: "
                             f"{TFLITE_INPUT_SIZE[0]} {TFLITE_INPUT_SIZE[1]})")
    args = parser.parse_args(argv)

    with one_line_errors():
        model, arch = load_model(args.arch, args.weights)
        print(f"{arch.name}: {model.count_params():,} parameters; writing {args.fmt} ...")
        start = time.perf_counter()
        with sigterm_as_interrupt():
            path = export_model(model, args.fmt, args.output, args.input_size)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")



if __name__ == "__main__":
    main()
